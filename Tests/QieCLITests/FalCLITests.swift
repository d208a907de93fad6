import Foundation
import QieImaging
import QieTestSupport
import Testing

@Suite("fal.ai through the qie binary", .serialized)
struct FalCLITests {
    @Test("qie providers lists the four fal.ai endpoints with Key auth, both hosts and the assumptions; --json too")
    func providers() throws {
        let text = try QieBinary.run(["providers"])
        #expect(text.status == 0)
        for line in [
            "fal-qwen-image-edit-2511  (fal.ai fal-ai/qwen-image-edit-2511, alias fal-2511, alias fal)",
            "fal-qwen-image-edit-plus  (fal.ai fal-ai/qwen-image-edit-plus, alias fal-plus)",
            "fal-qwen-image-edit-2509  (fal.ai fal-ai/qwen-image-edit-2509, alias fal-2509)",
            "fal-qwen-image-edit  (fal.ai fal-ai/qwen-image-edit, alias fal-edit)",
            "endpoint: POST https://fal.run/fal-ai/qwen-image-edit-2511  (base URL from QIE_FAL_BASE_URL if set)",
            "queue:    POST /fal-ai/qwen-image-edit-2511", "poll:     GET /fal-ai/qwen-image-edit-2511/requests/{id}/status",
            "result:   GET /fal-ai/qwen-image-edit-2511/requests/{id}",
            "auth:     Authorization: Key $FAL_KEY", "flow:     sync, poll, callback; result at images[].url",
            "note:     Cancel's HTTP statuses are not confirmed",
        ] {
            #expect(text.stdout.contains(line), "missing \(line)")
        }
        let json = try QieBinary.run(["providers", "--json"])
        let all = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        let fal = try #require(all.first { $0["id"] as? String == "fal-qwen-image-edit-2511" })
        #expect((fal["auth"] as? [String: Any])?["scheme"] as? String == "Key")
        #expect((fal["routes"] as? [String: Any])?["result"] as? String == "/fal-ai/qwen-image-edit-2511/requests/{id}")
        #expect(((fal["notes"] as? [String]) ?? []).contains { $0.contains("QIE_FAL_JWKS_URL") })
    }

    @Test("qie edit --provider fal against qie emulate: the queue, two images per file at the input's size, the body as recorded")
    func editThroughTheQueue() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/bodies", withIntermediateDirectories: true)
        try writeImage(640, 360, to: root + "/in/wide.jpg")
        try writeImage(300, 450, to: root + "/in/tall.jpg")
        let emulator = try EmulatorProcess(latency: 0.2, recordBodies: root + "/bodies")
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "fal", "--prompt", "make it dusk", "--out", root + "/out", "--restore", "exact",
                "--format", "png", "--num-images", "2", "--guidance-scale", "5", "--base-url", emulator.address,
                "--poll-interval", "0.1",
            ], environment: ["FAL_KEY": "cli-key"])
        #expect(status == 0, "\(output)")
        #expect(!output.contains("cli-key"))
        for (name, width, height) in [("wide", 640, 360), ("tall", 300, 450)] {
            for copy in ["-1", "-2"] {
                let info = try ImageProbe.probe(file: root + "/out/\(name)\(copy).png")
                #expect(info.format == .png && info.width == width && info.height == height, "\(name)\(copy)")
            }
            let sidecar = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/\(name).json"))) as? [String: Any])
            #expect(sidecar["endpoint"] as? String == "fal-qwen-image-edit-2511" && sidecar["flow"] as? String == "poll")
            #expect(sidecar["submissions"] as? Int == 1 && (sidecar["requestIDs"] as? [String])?.count == 1)
        }
        // What the emulator took: one queue submission per file, fal's fields only.
        let index = try String(contentsOfFile: root + "/bodies/index.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(index.count == 2)
        var sizes: Set<String> = []
        for line in index {
            let entry = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            #expect(entry["path"] == "/fal-ai/qwen-image-edit-2511" && entry["contentType"] == "application/json")
            let data = try Data(contentsOf: URL(fileURLWithPath: root + "/bodies/" + (entry["file"] ?? "")))
            let body = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(Set(body.keys) == ["prompt", "image_urls", "image_size", "num_images", "guidance_scale", "output_format"])
            #expect(body["prompt"] as? String == "make it dusk" && body["num_images"] as? Int == 2)
            #expect(body["guidance_scale"] as? Double == 5 && body["output_format"] as? String == "png")
            #expect((body["image_urls"] as? [String])?.first?.hasPrefix("data:image/") == true)
            let size = try #require(body["image_size"] as? [String: Int])
            sizes.insert("\(size["width"] ?? 0)x\(size["height"] ?? 0)")
        }
        #expect(sizes == ["1360x768", "832x1248"])
        // Each job: its status polled, its result fetched once.
        #expect(emulator.count(of: "POST /fal-ai/qwen-image-edit-2511 -> 200") == 2)
        #expect(emulator.output.components(separatedBy: "\n").filter { $0.hasPrefix("GET /fal-ai/qwen-image-edit-2511/requests/") && !$0.contains("/status ") && $0.contains("-> 200") }.count == 2)
    }

    @Test("qie edit --flow callback: the webhook verified against the emulator's published keys (QIE_FAL_JWKS_URL)")
    func editWithWebhook() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(500, 300, to: root + "/in/a.jpg")
        let emulator = try EmulatorProcess(latency: 0.2)
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "fal-edit", "--prompt", "night", "--out", root + "/out", "--flow", "callback",
                "--callback-url", "http://127.0.0.1:\(try freeLocalPort())/fal", "--base-url", emulator.address,
                "--format", "jpeg", "--restore", "exact",
            ], environment: ["FAL_KEY": "cli-key", "QIE_FAL_JWKS_URL": emulator.address + "/.well-known/jwks.json"])
        #expect(status == 0, "\(output)")
        let info = try ImageProbe.probe(file: root + "/out/a.jpg")
        #expect(info.format == .jpeg && info.width == 500 && info.height == 300)
        let sidecar = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/a.json"))) as? [String: Any])
        #expect(sidecar["flow"] as? String == "callback")
        #expect(emulator.waitForLog("GET /.well-known/jwks.json -> 200"))
        #expect(emulator.count(of: "POST /fal-ai/qwen-image-edit -> 200") == 1)
    }
}
