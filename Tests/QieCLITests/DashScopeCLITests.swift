import Foundation
import QieImaging
import QieProviders
import Testing

@Suite("qie with Model Studio (DashScope)", .serialized)
struct DashScopeCLITests {
    @Test("qie edit --provider dashscope against qie emulate: two images from one request, restored and converted; the body the host received")
    func edit() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/bodies", withIntermediateDirectories: true)
        try writeImage(640, 360, to: root + "/in/wide.jpg")
        let emulator = try EmulatorProcess(recordBodies: root + "/bodies")
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "dashscope", "--prompt", "make it dusk", "--out", root + "/out",
                "--num-images", "2", "--seed", "7", "--negative-prompt", "blur", "--format", "webp", "--restore", "exact",
                "--base-url", emulator.address,
            ], environment: ["DASHSCOPE_API_KEY": "cli-key"])
        #expect(status == 0, "\(output)")
        #expect(!output.contains("cli-key"))
        for copy in ["-1", "-2"] {
            let info = try ImageProbe.probe(file: root + "/out/wide\(copy).webp")
            #expect(info.format == .webp && info.width == 640 && info.height == 360, "wide\(copy): \(info.width)x\(info.height) \(info.format)")
        }
        #expect(emulator.count(of: "POST /api/v1/services/aigc/multimodal-generation/generation -> 200") == 1, "\(emulator.output)")

        let index = try String(contentsOfFile: root + "/bodies/index.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(index.count == 1)
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(index[0].utf8)) as? [String: Any])
        #expect(entry["path"] as? String == "/api/v1/services/aigc/multimodal-generation/generation")
        #expect((entry["contentType"] as? String)?.hasPrefix("application/json") == true)
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/bodies/" + (entry["file"] as? String ?? "")))
        let body = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(body["model"] as? String == "qwen-image-edit-plus")
        let parameters = try #require(body["parameters"] as? [String: Any])
        #expect(parameters["n"] as? Int == 2 && parameters["seed"] as? Int == 7 && parameters["negative_prompt"] as? String == "blur")
        #expect(parameters["prompt_extend"] as? Bool == false && parameters["watermark"] as? Bool == false && parameters["size"] == nil)
        let messages = try #require((body["input"] as? [String: Any])?["messages"] as? [[String: Any]])
        let content = try #require(messages.first?["content"] as? [[String: Any]])
        #expect(messages.count == 1 && messages[0]["role"] as? String == "user" && content.count == 2)
        let image = try #require(content.first?["image"] as? String)
        #expect(image.hasPrefix("data:image/jpeg;base64,"))
        // The input went at the planned 1360x768 (about a megapixel at 16:9).
        let sent = try #require(DataURI.decode(image))
        let sentInfo = try ImageProbe.probe(data: Data(sent.bytes))
        #expect(sentInfo.width == 1360 && sentInfo.height == 768)
        #expect(content.last?["text"] as? String == "make it dusk")

        let sidecar = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/wide.json"))) as? [String: Any])
        #expect((sidecar["endpoint"] as? String) == "dashscope-qwen-image-edit-plus" && sidecar["flow"] as? String == "sync", "\(sidecar)")
    }

    @Test("qie edit --provider dashscope-edit: the result at the planned size as PNG; a prompt over 800 characters is refused before anything is sent")
    func editModel() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(300, 450, to: root + "/in/tall.jpg")
        let emulator = try EmulatorProcess()
        let arguments = ["edit", root + "/in", "--provider", "dashscope-edit", "--out", root + "/out", "--base-url", emulator.address]
        let environment = ["DASHSCOPE_API_KEY": "cli-key"]
        let (refused, refusal) = try runQie(arguments + ["--prompt", String(repeating: "x", count: 801)], environment: environment)
        #expect(refused != 0 && refusal.contains("--prompt must be at most 800 characters on dashscope-qwen-image-edit"), "\(refusal)")
        #expect(emulator.count(of: "/generation -> ") == 0, "\(emulator.output)")

        let (status, output) = try runQie(arguments + ["--prompt", "snow"], environment: environment)
        #expect(status == 0, "\(output)")
        let info = try ImageProbe.probe(file: root + "/out/tall.png")
        #expect(info.format == .png && info.width == 832 && info.height == 1248, "\(info.width)x\(info.height)")
        #expect(emulator.count(of: "POST /api/v1/services/aigc/multimodal-generation/generation -> 200") == 1, "\(emulator.output)")
    }

    @Test("qie providers lists both endpoints with their notes (text and JSON); qie cost prices n images per request")
    func listedAndPriced() throws {
        let text = try QieBinary.run(["providers"])
        #expect(text.status == 0)
        for expected in [
            "dashscope-qwen-image-edit-plus  (Alibaba Cloud Model Studio qwen-image-edit-plus, alias dashscope, alias dashscope-plus)",
            "dashscope-qwen-image-edit  (Alibaba Cloud Model Studio qwen-image-edit, alias dashscope-edit)",
            "endpoint: POST https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/multimodal-generation/generation  (base URL from QIE_DASHSCOPE_BASE_URL if set)",
            "auth:     Authorization: Bearer $DASHSCOPE_API_KEY", "$0.03 per image", "$0.045 per image",
            "result at output.choices[].message.content[].image",
            "note:     prompt_extend is always sent false",
        ] {
            #expect(text.stdout.contains(expected), "missing \(expected)")
        }
        let json = try QieBinary.run(["providers", "--json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        let plus = try #require(list.first { $0["id"] as? String == "dashscope-qwen-image-edit-plus" })
        #expect((plus["notes"] as? [String])?.contains { $0.contains("QIE_DASHSCOPE_BASE_URL=https://dashscope.aliyuncs.com") } == true)
        #expect(plus["price"] as? String == "$0.03 per image" && plus["flows"] as? [String] == ["sync"])

        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeImage(1000, 800, to: root + "/l.jpg")
        let cost = try QieBinary.run(["cost", root + "/l.jpg", "--provider", "dashscope", "--num-images", "2"])
        #expect(cost.status == 0, "\(cost.stderr)")
        #expect(cost.stdout.contains("l.jpg\t1000x800\t0.80\t1152x912\t1.050624\t2\t$0.06"), "\(cost.stdout)")
        let edit = try QieBinary.run(["cost", root + "/l.jpg", "--provider", "dashscope-edit", "--num-images", "2"])
        #expect(edit.stdout.contains("\t$0.09"), "\(edit.stdout)")
    }
}
