import Foundation
import QieImaging
import QieProviders
import Testing

/// Parses JSON for structural comparison (key order aside).
private func parse(_ data: Data) throws -> NSDictionary {
    try #require(try JSONSerialization.jsonObject(with: data) as? NSDictionary)
}

private func parse(_ text: String) throws -> NSDictionary { try parse(Data(text.utf8)) }

private func body(
    _ profile: ProviderProfile, _ request: EditRequest, size: SizeRequest = .automatic
) throws -> (BuiltRequest, Data) {
    let plan = try SizePlanner.plan(input: PixelSize(width: 1000, height: 1000), for: profile, request: size)
    let built = try RequestBuilder.build(request, plan: plan, for: profile, apiKey: "sk-test-SECRET", boundary: "BOUNDARY")
    return (built, try built.body.data())
}

/// Splits a multipart body into (name, filename, content type, value) parts.
private func multipartParts(_ data: Data, boundary: String) -> [(name: String, filename: String?, type: String?, value: Data)] {
    var parts: [(String, String?, String?, Data)] = []
    let delimiter = Data("--\(boundary)".utf8)
    var chunks: [Data] = []
    var rest = data[...]
    while let range = rest.range(of: delimiter) {
        chunks.append(Data(rest[..<range.lowerBound]))
        rest = rest[range.upperBound...]
    }
    for chunk in chunks.dropFirst() {
        guard let split = chunk.range(of: Data("\r\n\r\n".utf8)) else { continue }
        let head = String(decoding: chunk[..<split.lowerBound], as: UTF8.self)
        var value = Data(chunk[split.upperBound...])
        if value.suffix(2) == Data("\r\n".utf8) { value = value.dropLast(2) }
        func attribute(_ key: String) -> String? {
            guard let start = head.range(of: "\(key)=\"") else { return nil }
            return String(head[start.upperBound...].prefix { $0 != "\"" })
        }
        let type = head.split(separator: "\r\n").first { $0.hasPrefix("Content-Type:") }
            .map { String($0.dropFirst("Content-Type: ".count)) }
        parts.append((attribute("name") ?? "", attribute("filename"), type, value))
    }
    return parts
}

@Suite("Request bodies match the documents")
struct GoldenBodyTests {
    @Test("RunPod qwen-image-edit-2511: the document's example, field for field")
    func runpod2511() throws {
        let request = EditRequest(
            prompt: "Change the background to a futuristic cityscape", images: [.url("https://example.com/portrait.jpg")],
            outputFormat: .png, seed: -1)
        let (built, data) = try body(.runpodQwenImageEdit2511, request, size: .size(PixelSize(width: 1024, height: 1024)))
        #expect(try parse(data) == parse("""
            {"input": {"prompt": "Change the background to a futuristic cityscape",
              "images": ["https://example.com/portrait.jpg"], "size": "1024*1024", "seed": -1, "output_format": "png"}}
            """))
        #expect(built.url == "https://api.runpod.ai/v2/qwen-image-edit-2511/runsync")
        #expect(built.headers.contains { $0 == ("Authorization", "Bearer sk-test-SECRET") })
        #expect(built.headers.contains { $0 == ("Content-Type", "application/json") })
        #expect(built.emulations.isEmpty)
    }

    @Test("RunPod qwen-image-edit: the document's example, field for field")
    func runpodEdit() throws {
        let request = EditRequest(
            prompt: "change the trench coat and high heels color to light grey",
            images: [.url("https://example.com/fashion-photo.png")], outputFormat: .png, negativePrompt: "", seed: -1,
            safetyChecker: true)
        let (built, data) = try body(.runpodQwenImageEdit, request)
        #expect(try parse(data) == parse("""
            {"input": {"prompt": "change the trench coat and high heels color to light grey", "negative_prompt": "",
              "seed": -1, "image": "https://example.com/fashion-photo.png", "output_format": "png",
              "enable_safety_checker": true}}
            """))
        #expect(built.url == "https://api.runpod.ai/v2/qwen-image-edit/runsync")
    }

    @Test("Runflow: the document's example with callback_url at the top level")
    func runflow() throws {
        let request = EditRequest(
            prompt: "Move this person to a Mars colony habitat...",
            images: [.url("https://public.runflow.io/images/models/_shared/base-engineer.png")],
            callbackURL: "https://your-server.com/webhook")
        let (built, data) = try body(.runflowQwenImageEdit2511, request)
        #expect(try parse(data) == parse("""
            {"input": {"prompt": "Move this person to a Mars colony habitat...",
              "image_urls": ["https://public.runflow.io/images/models/_shared/base-engineer.png"]},
             "callback_url": "https://your-server.com/webhook"}
            """))
        #expect(built.url == "https://api.runflow.io/v1/models/alibaba/qwen-image-edit-2511/runs")

        let full = EditRequest(
            prompt: "p", images: [.url("u")], outputFormat: .webp, seed: 7, numImages: 2, syncMode: true,
            metadata: ["job": "42"], acceleration: "regular")
        let fullBody = try parse(try body(.runflowQwenImageEdit2511, full).1)
        #expect(fullBody == (try parse("""
            {"input": {"prompt": "p", "image_urls": ["u"], "seed": 7, "num_images": 2, "sync_mode": true,
              "acceleration": "regular", "output_format": "webp"}, "metadata": {"job": "42"}}
            """)))
    }

    @Test("Oxen: the document's 'all parameters' example, jpeg spelled jpg")
    func oxen() throws {
        let url = "https://hub.oxen.ai/api/repos/ox/Oxen-Character-Simple-Vector-Graphic/file/main/images/reference/bloxy_white_bg.png"
        let request = EditRequest(prompt: "Add a funny hat", images: [.url(url)], outputFormat: .png, negativePrompt: " ")
        let (built, data) = try body(.oxenQwenImageEdit2511, request, size: .aspectRatio(AspectRatio(16, 9)))
        #expect(try parse(data) == parse("""
            {"model": "qwen-image-edit-2511", "prompt": "Add a funny hat", "input_image": ["\(url)"],
             "aspect_ratio": "16:9", "negative_prompt": " ", "output_format": "png"}
            """))
        #expect(built.url == "https://hub.oxen.ai/api/ai/images/edit")
        let jpeg = try parse(try body(.oxenQwenImageEdit2511, EditRequest(prompt: "x", images: [.url(url)], outputFormat: .jpeg)).1)
        #expect(jpeg["output_format"] as? String == "jpg")
    }

    @Test("Lumenfall: multipart like the document's curl: model, image file, prompt, size")
    func lumenfall() throws {
        let png = Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3, 0, 255])
        let request = EditRequest(
            prompt: "Add a starry night sky to this image", images: [.bytes(png, format: .png, filename: "source.png")])
        let (built, data) = try body(.lumenfallQwenImageEdit2511, request, size: .size(PixelSize(width: 1024, height: 1024)))
        #expect(built.url == "https://api.lumenfall.ai/openai/v1/images/edits")
        #expect(built.headers.contains { $0 == ("Content-Type", "multipart/form-data; boundary=BOUNDARY") })
        let parts = multipartParts(data, boundary: "BOUNDARY")
        #expect(parts.map(\.name) == ["model", "prompt", "image", "size"])
        #expect(String(decoding: parts[0].value, as: UTF8.self) == "qwen-image-edit-2511")
        #expect(String(decoding: parts[1].value, as: UTF8.self) == "Add a starry night sky to this image")
        #expect(parts[2].filename == "source.png" && parts[2].type == "image/png" && parts[2].value == png)
        #expect(String(decoding: parts[3].value, as: UTF8.self) == "1024x1024")
        #expect(String(decoding: data.suffix(14), as: UTF8.self) == "--BOUNDARY--\r\n")

        let many = EditRequest(
            prompt: "p", images: [.bytes(png, format: .png, filename: "a.png"), .bytes(png, format: .png, filename: "b.png")],
            numImages: 3, responseFormat: "b64_json")
        let manyParts = multipartParts(try body(.lumenfallQwenImageEdit2511, many).1, boundary: "BOUNDARY")
        #expect(manyParts.filter { $0.name == "image[]" }.count == 2)
        #expect(manyParts.contains { $0.name == "n" && $0.value == Data("3".utf8) })
        #expect(manyParts.contains { $0.name == "response_format" && $0.value == Data("b64_json".utf8) })
    }
}

@Suite("Options an endpoint does not take")
struct RefusedOptionTests {
    @Test("Refused with the option and what the endpoint takes, as data a front end words its own way")
    func refused() throws {
        let image = PayloadImage.url("https://example.com/a.png")
        let flag = { (setting: Setting) in "--" + setting.rawValue.replacing(/[A-Z]/) { "-" + $0.output.lowercased() } }
        let cases: [(ProviderProfile, EditRequest, SettingError?, String)] = [
            (.runpodQwenImageEdit2511, EditRequest(prompt: "p", images: [image], negativePrompt: "blur"),
             SettingError(.negativePrompt, .notTaken(by: "runpod-qwen-image-edit-2511", takes: [.seed])),
             "runpod-qwen-image-edit-2511 does not take --negative-prompt; it takes --seed, --format and the size"),
            (.runpodQwenImageEdit, EditRequest(prompt: "p", images: [image, image]), nil,
             "runpod-qwen-image-edit takes at most 1 input image, got 2"),
            (.oxenQwenImageEdit2511, EditRequest(prompt: "p", images: [image], callbackURL: "https://x"), nil,
             "oxen-qwen-image-edit-2511 does not take --callback-u-r-l"),
            (.runflowQwenImageEdit2511, EditRequest(prompt: "p", images: [image], acceleration: "turbo"),
             SettingError(.acceleration, value: "\"turbo\"", .notOffered(by: "runflow-qwen-image-edit-2511", offered: ["none", "regular", "high"])),
             "runflow-qwen-image-edit-2511 does not offer --acceleration \"turbo\"; it offers none, regular, high"),
            (.runpodQwenImageEdit2511, EditRequest(prompt: "  ", images: [image]), nil, "--prompt is empty"),
            (.lumenfallQwenImageEdit2511, EditRequest(prompt: "p", images: [image], outputCompression: 120),
             SettingError(.outputCompression, value: "120", .invalid(expected: "from 0 to 100")),
             "--output-compression must be from 0 to 100; got 120"),
        ]
        for (profile, request, setting, message) in cases {
            let plan = try SizePlanner.plan(input: PixelSize(width: 800, height: 600), for: profile)
            let error = #expect(throws: ProvidersError.self) {
                try RequestBuilder.build(request, plan: plan, for: profile, apiKey: nil)
            }
            if let setting { #expect(error?.setting == setting) }
            let worded = error?.message(naming: flag) ?? "no error"
            #expect(worded.contains(message), "\(worded) should contain \(message)")
            // The library's own wording never spells a front end's flag.
            #expect(error?.description.contains("--") == false, "\(error?.description ?? "")")
        }
    }

    @Test("Formats an endpoint cannot produce are converted locally; missing num_images repeats the request")
    func emulated() throws {
        let image = PayloadImage.url("https://example.com/a.png")
        let plan = try SizePlanner.plan(input: PixelSize(width: 800, height: 600), for: .runpodQwenImageEdit)
        let avif = try RequestBuilder.build(
            EditRequest(prompt: "p", images: [image], outputFormat: .avif, numImages: 2), plan: plan,
            for: .runpodQwenImageEdit, apiKey: nil)
        #expect(avif.emulations == [.convertOutput(from: .png, to: .avif), .repeatRequest(times: 2)])
        #expect(avif.nativeFormat == .png)
        let input = try parse(try avif.body.data())["input"] as? NSDictionary
        #expect(input?["output_format"] as? String == "png")
        #expect(input?["num_images"] == nil)
    }

    @Test("Shown requests never carry the key")
    func redaction() throws {
        let plan = try SizePlanner.plan(input: PixelSize(width: 800, height: 600), for: .runpodQwenImageEdit2511)
        let built = try RequestBuilder.build(
            EditRequest(prompt: "p", images: [.url("u")]), plan: plan, for: .runpodQwenImageEdit2511, apiKey: "sk-live-TOPSECRET")
        var sink = DataSink()
        try built.writeRedacted(to: &sink)
        let text = String(decoding: sink.data, as: UTF8.self)
        #expect(!text.contains("TOPSECRET"))
        #expect(text.contains("Authorization: Bearer ***"))
        #expect(text.hasPrefix("POST https://api.runpod.ai/v2/qwen-image-edit-2511/runsync HTTP/1.1\r\n"))
    }
}

@Suite("Data URIs")
struct DataURITests {
    @Test("Bytes and files encode to data URIs that decode back to the same bytes", arguments: [0, 1, 2, 3, 100, 196_607, 196_608, 196_609, 700_001])
    func roundTrip(_ count: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let uri = DataURI.make(data, format: .jpeg)
        #expect(uri.hasPrefix("data:image/jpeg;base64,"))
        let decoded = try #require(DataURI.decode(uri))
        #expect(decoded.mediaType == "image/jpeg")
        #expect(Data(decoded.bytes) == data)
        #expect(uri.dropFirst("data:image/jpeg;base64,".count) == Substring(data.base64EncodedString()))

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("qie-uri-\(UUID().uuidString).png")
        try data.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        var sink = DataSink()
        try JSONValue.image(.file(path: file.path, format: .png)).write(to: &sink)
        let fromFile = String(decoding: sink.data, as: UTF8.self)
        #expect(fromFile == "\"data:image/png;base64,\(data.base64EncodedString())\"")
    }

    @Test("JSON strings are escaped")
    func escaping() throws {
        var sink = DataSink()
        try JSONValue.object([("prompt", .string("say \"hi\"\n\\ \u{01} ünï"))]).write(to: &sink)
        let parsed = try parse(sink.data)
        #expect(parsed["prompt"] as? String == "say \"hi\"\n\\ \u{01} ünï")
    }
}

@Suite("Bodies streamed piece by piece")
struct StreamedBodyTests {
    /// Reads a whole body through its reader, with buffers of `size` bytes.
    private func streamed(_ body: RequestBody, buffer size: Int) throws -> Data {
        var reader = try body.reader()
        var buffer = [UInt8](repeating: 0, count: size)
        var out = Data()
        while true {
            let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
            if count == 0 { return out }
            #expect(count <= size)
            out.append(contentsOf: buffer[0..<count])
        }
    }

    @Test("The streamed body is byte for byte the written one, its length known without encoding, for JSON and multipart", arguments: [5, 4096, 262_144])
    func sameBytes(buffer: Int) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qie-stream-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Sizes around the encoder's chunk, so chunk joins and base64 padding are both exercised.
        var images: [PayloadImage] = []
        for (index, size) in [1, 196_607, 196_609].enumerated() {
            let bytes = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) })
            let path = folder + "/\(index).png"
            try bytes.write(to: URL(fileURLWithPath: path))
            images.append(index == 0 ? .bytes(bytes, format: .png, filename: "0.png") : .file(path: path, format: .png))
        }
        for profile in [ProviderProfile.runpodQwenImageEdit2511, .lumenfallQwenImageEdit2511] {
            let plan = try SizePlanner.plan(input: PixelSize(width: 800, height: 600), for: profile)
            let built = try RequestBuilder.build(
                EditRequest(prompt: "a \"quoted\" prompt", images: images), plan: plan, for: profile, apiKey: "k", boundary: "B")
            let written = try built.body.data()
            #expect(try streamed(built.body, buffer: buffer) == written, "\(profile.id)")
            #expect(try built.body.contentLength() == written.count, "\(profile.id)")
            // A second reader starts from the beginning: a retried request sends it all again.
            #expect(try streamed(built.body, buffer: buffer) == written, "\(profile.id)")
        }
    }

    @Test("A file that cannot be read is reported with its path when the body is produced")
    func missingFile() throws {
        let plan = try SizePlanner.plan(input: PixelSize(width: 800, height: 600), for: .runpodQwenImageEdit2511)
        let built = try RequestBuilder.build(
            EditRequest(prompt: "p", images: [.file(path: "/nonexistent/a.png", format: .png)]), plan: plan,
            for: .runpodQwenImageEdit2511, apiKey: nil)
        let error = #expect(throws: ProvidersError.self) { try built.body.contentLength() }
        #expect(error?.message.contains("/nonexistent/a.png") == true)
    }
}
