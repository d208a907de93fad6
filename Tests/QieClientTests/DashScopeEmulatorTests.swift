import AsyncHTTPClient
import Foundation
import NIOCore
import QieClient
import QieEmulator
import QieImaging
import QieProviders
import Testing

/// The route both Model Studio endpoints share.
private let route = "/api/v1/services/aigc/multimodal-generation/generation"

/// A data URI of a small JPEG.
private func imageURI(_ width: Int = 40, _ height: Int = 30) throws -> String {
    DataURI.make(try photo(width, height), format: .jpeg)
}

/// A body in the host's shape, with `content` and `parameters` as given.
private func chat(model: String = "qwen-image-edit-plus", content: [[String: Any]], parameters: [String: Any] = [:], extra: [String: Any] = [:]) -> [String: Any] {
    ["model": model, "input": ["messages": [["role": "user", "content": content]]], "parameters": parameters].merging(extra) { $1 }
}

/// POSTs `body` to the emulator's route: the HTTP status and the JSON answer.
private func post(_ body: [String: Any], to base: String, key: String = "test-key") async throws -> (Int, [String: Any]) {
    try await withHTTPClient(HTTPClient.Configuration()) { http in
        var request = HTTPClientRequest(url: base + route)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        let response = try await http.execute(request, timeout: .seconds(60))
        let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]))
    }
}

/// The JSON bodies the emulator received for `profile`.
private func received(_ emulator: EditEmulator, _ profile: ProviderProfile) throws -> [[String: Any]] {
    try emulator.bodies(sentTo: profile).map { try #require(try JSONSerialization.jsonObject(with: $0) as? [String: Any]) }
}

@Suite("Model Studio (DashScope) through the client against the emulator", .serialized, .hangGuard)
struct DashScopeEmulatorTests {
    @Test("qwen-image-edit-plus with n = 3: one request, three PNG results at the planned size, each fetched")
    func severalResults() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.dashscopeQwenImageEditPlus
            let input = try photo(400, 300)
            let request = EditRequest(
                prompt: "make it blue", images: [.bytes(input, format: .jpeg, filename: "in.jpg")], outputFormat: .webp,
                negativePrompt: "blur", seed: 7, numImages: 3)
            let sent = try build(profile, base: base, request: request)
            #expect(sent.emulations == [.convertOutput(from: .png, to: .webp)])
            let outcome = try await client.send(sent, to: profile)
            guard case .completed(let images, let cost, let id) = outcome else { Issue.record("\(outcome)"); return }
            #expect(images.count == 3 && cost == nil && id?.count == 36)
            for image in images {
                let data = try await client.fetch(image, from: profile, checks: ResultChecks(endpoint: base))
                let info = try ImageProbe.probe(data: data)
                #expect(info.displaySize == PixelSize(width: 1184, height: 880) && info.format == .png, "\(info.displaySize) \(info.format)")
            }
            #expect(emulator.submissions(to: profile) == 1 && emulator.submissions(to: .dashscopeQwenImageEdit) == 0)
            let body = try #require(try received(emulator, profile).first)
            let expected = try JSONSerialization.jsonObject(
                with: Data(#"{"n": 3, "negative_prompt": "blur", "prompt_extend": false, "watermark": false, "seed": 7}"#.utf8))
            #expect(body["parameters"] as? NSDictionary == expected as? NSDictionary)
        } }
    }

    @Test("A size asked is the size made; qwen-image-edit on the same route is told apart by its model")
    func sizeAndSharedRoute() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let plus = ProviderProfile.dashscopeQwenImageEditPlus
            let sized = try await client.send(try build(plus, base: base, size: .size(PixelSize(width: 1024, height: 1536))), to: plus)
            guard case .completed(let tall, _, _) = sized, let first = tall.first else { Issue.record("\(sized)"); return }
            let tallInfo = try ImageProbe.probe(data: try await client.fetch(first, from: plus, checks: ResultChecks(endpoint: base)))
            #expect(tallInfo.displaySize == PixelSize(width: 1024, height: 1536))

            let edit = ProviderProfile.dashscopeQwenImageEdit
            let outcome = try await client.send(try build(edit, base: base), to: edit)
            guard case .completed(let images, _, _) = outcome, images.count == 1 else { Issue.record("\(outcome)"); return }
            let info = try ImageProbe.probe(data: try await client.fetch(images[0], from: edit, checks: ResultChecks(endpoint: base)))
            #expect(info.displaySize == PixelSize(width: 1184, height: 880) && info.format == .png)
            #expect(emulator.submissions(to: plus) == 1 && emulator.submissions(to: edit) == 1)
            #expect(try received(emulator, edit).first?["model"] as? String == "qwen-image-edit")
        } }
    }

    @Test("The output takes the last image's shape: a tall reference after a wide input makes a tall result")
    func lastImageShape() async throws {
        try await withTestClient { client in try await withEmulator { _, base in
            let profile = ProviderProfile.dashscopeQwenImageEdit
            let request = EditRequest(
                prompt: "Put the hat from Image 2 on Image 1",
                images: [.bytes(try photo(400, 300), format: .jpeg, filename: "in.jpg"), .bytes(try photo(300, 600), format: .jpeg, filename: "hat.jpg")])
            let outcome = try await client.send(try build(profile, base: base, request: request), to: profile)
            guard case .completed(let images, _, _) = outcome, let first = images.first else { Issue.record("\(outcome)"); return }
            let info = try ImageProbe.probe(data: try await client.fetch(first, from: profile, checks: ResultChecks(endpoint: base)))
            #expect(info.displaySize == SizePlanner.freeSize(ratio: 0.5) && info.height > info.width, "\(info.displaySize)")
        } }
    }

    @Test("Refused like the host: 400 InvalidParameter for a wrong shape, field, value or range; 401 InvalidApiKey; nothing made")
    func rejections() async throws {
        try await withEmulator { emulator, base in
            let image: [String: Any] = ["image": try imageURI()]
            let text: [String: Any] = ["text": "make it blue"]
            let cases: [(String, [String: Any], String)] = [
                ("unknown top-level field", chat(content: [image, text], extra: ["stream": true]), "Unknown field: stream"),
                ("unknown parameter", chat(content: [image, text], parameters: ["format": "png"]), "Parameter format is not supported"),
                ("wrong role", ["model": "qwen-image-edit-plus", "input": ["messages": [["role": "assistant", "content": [image, text]]]]], "role user"),
                ("wrong model", chat(model: "qwen-image-edit-max", content: [image, text]), "Model not exist."),
                ("watermark not a boolean", chat(content: [image, text], parameters: ["watermark": "no"]), "watermark must be a boolean"),
                ("n over 6", chat(content: [image, text], parameters: ["n": 7]), "n must be from 1 to 6"),
                ("n not a whole number", chat(content: [image, text], parameters: ["n": 1.5]), "n must be from 1 to 6"),
                ("n over 1 on qwen-image-edit", chat(model: "qwen-image-edit", content: [image, text], parameters: ["n": 2]), "n must be from 1 to 1 for qwen-image-edit"),
                ("size side over 2048", chat(content: [image, text], parameters: ["size": "2049*1024"]), "size must be W*H with each side from 512 to 2048"),
                ("size side under 512", chat(content: [image, text], parameters: ["size": "511*1024"]), "size must be W*H with each side from 512 to 2048"),
                ("size spelled WxH", chat(content: [image, text], parameters: ["size": "1024x1024"]), "size must be W*H"),
                ("size with n over 1", chat(content: [image, text], parameters: ["size": "1024*1024", "n": 2]), "size is allowed only when n is 1"),
                ("size on qwen-image-edit", chat(model: "qwen-image-edit", content: [image, text], parameters: ["size": "1024*1024"]), "Parameter size is not supported by qwen-image-edit"),
                ("prompt_extend on qwen-image-edit", chat(model: "qwen-image-edit", content: [image, text], parameters: ["prompt_extend": false]), "Parameter prompt_extend is not supported"),
                ("seed out of range", chat(content: [image, text], parameters: ["seed": 2_147_483_648]), "seed must be an integer from 0 to 2147483647"),
                ("negative seed", chat(content: [image, text], parameters: ["seed": -1]), "seed must be an integer"),
                ("no text", chat(content: [image]), "The content has no text"),
                ("two texts", chat(content: [image, text, text]), "The content must hold one text, not 2"),
                ("an item with both", chat(content: [image.merging(text) { $1 }]), "Each content item must be one image or one text"),
                ("no image", chat(content: [text]), "Missing required field: image"),
                ("four images", chat(content: [image, image, image, image, text]), "At most 3 images"),
                ("an image URL the emulator cannot fetch", chat(content: [["image": "https://example.com/a.png"], text]), "Invalid image URL"),
            ]
            for (name, body, message) in cases {
                let (status, answer) = try await post(body, to: base)
                #expect(status == 400, "\(name): \(status)")
                #expect(answer["code"] as? String == "InvalidParameter", "\(name): \(answer)")
                #expect((answer["message"] as? String)?.contains(message) == true, "\(name): \(answer)")
                #expect((answer["request_id"] as? String)?.isEmpty == false, "\(name)")
            }
            let (status, answer) = try await post(chat(content: [image, text]), to: base, key: "sk-wrong")
            #expect(status == 401 && answer["code"] as? String == "InvalidApiKey", "\(answer)")
            // Every refusal reached the endpoint it named, and none made a result.
            #expect(emulator.submissions(to: .dashscopeQwenImageEditPlus) + emulator.submissions(to: .dashscopeQwenImageEdit) == cases.count + 1)
            #expect(emulator.resultRequests == 0)
            // The same body, well formed, is made.
            let (made, result) = try await post(chat(content: [image, text], parameters: ["n": 2, "seed": 0, "watermark": false, "prompt_extend": true]), to: base)
            #expect(made == 200 && (result["usage"] as? [String: Any])?["image_count"] as? Int == 2, "\(result)")
        }
    }

    @Test("Through the client: a wrong key and a refused body are failures in the host's words, sent once")
    func clientRejections() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.dashscopeQwenImageEditPlus
            let wrongKey = try await client.send(try build(profile, base: base, key: "sk-wrong"), to: profile)
            #expect(wrongKey == .failed(
                message: "dashscope-qwen-image-edit-plus answered HTTP 401: Unauthorized: missing or invalid bearer token", requestID: nil))
            var bad = try build(profile, base: base)
            bad.body = .json(.object([
                ("model", .string("qwen-image-edit-plus")),
                ("input", .object([("messages", .array([.object([("role", .string("user")), ("content", .array([.object([("image", .string(try imageURI()))])]))])]))])),
            ]))
            let refused = try await client.send(bad, to: profile)
            #expect(refused == .failed(message: "dashscope-qwen-image-edit-plus answered HTTP 400: The content has no text", requestID: nil))
            #expect(emulator.submissions(to: profile) == 2)
        } }
    }

    @Test("429 Throttling is sent again after its pause; a 500 leaves the edit uncertain and is never sent again")
    func throttlingAndUncertainty() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.dashscopeQwenImageEditPlus
            emulator.inject([.tooManyRequests(retryAfter: 1)])
            let request = try build(profile, base: base)
            let start = clock.now()
            let outcome = try await advancingClock(clock) { try await client.send(request, to: profile) }
            guard case .completed = outcome else { Issue.record("\(outcome)"); return }
            #expect(emulator.submissions(to: profile) == 2)
            #expect(clock.now().timeIntervalSince(start) == 1, "Retry-After was not honoured")

            emulator.inject([.status(500)])
            let error = await #expect(throws: ClientError.self) {
                _ = try await client.perform(
                    try build(profile, base: base), on: profile,
                    poll: { RequestBuilder.poll(id: $0, for: profile, apiKey: "test-key", baseURL: base) })
            }
            #expect(error?.kind == .uncertain && error?.mayHaveBeenCharged == true, "\(String(describing: error))")
            #expect(emulator.submissions(to: profile) == 3)
        } }
    }
}
