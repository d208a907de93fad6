import Foundation
import QieImaging
import QieTestSupport
import Testing

/// Status polls the emulator answered (its request lines, not its banner's list of routes).
private func statusPolls(_ emulator: EmulatorProcess) -> Int {
    emulator.output.split(separator: "\n").filter { $0.hasPrefix("GET /v1/predictions/") && $0.contains(" -> ") }.count
}

@Suite("Replicate through the qie binary", .serialized)
struct ReplicateCLITests {
    @Test("qie providers lists Replicate's three endpoints with their key variable, price and notes, as text and JSON")
    func providers() throws {
        let text = try QieBinary.run(["providers"])
        #expect(text.status == 0, "\(text.stderr)")
        for fragment in [
            "replicate-qwen-image-edit-2511", "replicate-qwen-image-edit-plus", "replicate-qwen-image-edit ", "$REPLICATE_API_TOKEN",
            "$0.03 per image", "jpeg as \"jpg\"", "note:     Every submission carries Cancel-After", "unconfirmed",
        ] {
            #expect(text.stdout.contains(fragment), "missing \(fragment)")
        }
        let json = try QieBinary.run(["providers", "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        let replicate = list.filter { ($0["id"] as? String)?.hasPrefix("replicate-") == true }
        #expect(replicate.compactMap { $0["id"] as? String }
            == ["replicate-qwen-image-edit-2511", "replicate-qwen-image-edit-plus", "replicate-qwen-image-edit"])
        let main = try #require(replicate.first)
        #expect((main["aliases"] as? [String])?.contains("replicate") == true)
        #expect(main["model"] as? String == "qwen/qwen-image-edit-2511" && main["price"] as? String == "$0.03 per image")
        #expect((main["flows"] as? [String]) == ["sync", "poll", "callback"])
        #expect((main["notes"] as? [String])?.contains { $0.contains("Prefer: wait") } == true)
    }

    @Test("qie edit --provider replicate against qie emulate: polled, restored to the input's size; the recorded body is Replicate's")
    func editPolled() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/bodies", withIntermediateDirectories: true)
        try writeImage(500, 300, to: root + "/in/a.jpg")
        let emulator = try EmulatorProcess(latency: 0.3, recordBodies: root + "/bodies")
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "replicate", "--prompt", "night", "--out", root + "/out", "--restore", "exact",
                "--format", "png", "--output-compression", "90", "--no-safety-checker", "--base-url", emulator.address,
                "--poll-interval", "0.1",
            ], environment: ["REPLICATE_API_TOKEN": "cli-key"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("edited 1 of 1 files") && !output.contains("cli-key"))
        let info = try ImageProbe.probe(file: root + "/out/a.png")
        #expect(info.width == 500 && info.height == 300 && info.format == .png)

        let sidecar = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/a.json"))) as? [String: Any])
        #expect(sidecar["endpoint"] as? String == "replicate-qwen-image-edit-2511" && sidecar["flow"] as? String == "poll")
        #expect((sidecar["requestIDs"] as? [String])?.first?.count == 26)
        #expect(statusPolls(emulator) >= 1)

        // What the emulator received: one prediction, created on the model's route, in Replicate's fields.
        let index = try String(contentsOfFile: root + "/bodies/index.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(index.count == 1)
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(index[0].utf8)) as? [String: Any])
        #expect(entry["path"] as? String == "/v1/models/qwen/qwen-image-edit-2511/predictions")
        #expect((entry["contentType"] as? String)?.hasPrefix("application/json") == true)
        let file = try #require(entry["file"] as? String)
        let body = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/bodies/" + file))) as? [String: Any])
        #expect(Set(body.keys) == ["input"])
        let input = try #require(body["input"] as? [String: Any])
        #expect(Set(input.keys) == ["prompt", "image", "output_quality", "disable_safety_checker", "output_format"])
        #expect(input["prompt"] as? String == "night" && input["output_format"] as? String == "png")
        #expect(input["output_quality"] as? Int == 90 && input["disable_safety_checker"] as? Bool == true)
        let images = try #require(input["image"] as? [String])
        #expect(images.count == 1 && images[0].hasPrefix("data:image/"))
        // The input was prepared at the planned size: about one megapixel at 5:3.
        let encoded = try #require(images[0].split(separator: ",", maxSplits: 1).last)
        let sent = try ImageProbe.probe(data: try #require(Data(base64Encoded: String(encoded))))
        #expect(sent.width == 1328 && sent.height == 800)
    }

    @Test("qie edit --flow sync on the first model: answered within Prefer: wait, no status poll; webp when no format is asked")
    func editSync() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(300, 450, to: root + "/in/tall.jpg")
        let emulator = try EmulatorProcess(latency: 0.3)
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "replicate-edit", "--flow", "sync", "--prompt", "dusk", "--out", root + "/out",
                "--restore", "exact", "--base-url", emulator.address,
            ], environment: ["REPLICATE_API_TOKEN": "cli-key"])
        #expect(status == 0, "\(output)")
        let written = try FileManager.default.contentsOfDirectory(atPath: root + "/out").filter { $0.hasPrefix("tall.") && !$0.hasSuffix(".json") }
        #expect(written == ["tall.webp"], "\(written)")
        let info = try ImageProbe.probe(file: root + "/out/tall.webp")
        #expect(info.width == 300 && info.height == 450 && info.format == .webp)
        let sidecar = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/tall.json"))) as? [String: Any])
        #expect(sidecar["endpoint"] as? String == "replicate-qwen-image-edit" && sidecar["flow"] as? String == "sync")
        #expect(emulator.count(of: "POST /v1/models/qwen/qwen-image-edit/predictions -> 201") == 1)
        #expect(statusPolls(emulator) == 0)
    }
}
