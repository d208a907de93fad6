import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import QieEmulator
import QieGateway
import QiePipeline
import QieTestSupport
import Synchronization
import Testing

/// A web server on 127.0.0.1 serving images for `image_url`, and a count of
/// what it served.
final class ImageServer: Sendable {
    private let served = Atomic<Int>(0)
    /// Requests it received.
    var requests: Int { served.load(ordering: .relaxed) }

    func run(files: [String: Data], _ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        let served = self
        router.get("/files/:name") { _, context -> Response in
            served.served.add(1, ordering: .relaxed)
            guard let data = files[context.parameters.get("name") ?? ""] else { return Response(status: .notFound) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(data: data)))
        }
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { sink.yield($0.localAddress?.port ?? 0) })
        let server = Task { try await application.runService() }
        var next = ports.makeAsyncIterator()
        guard let port = await next.next() else { return }
        do {
            try await body("http://127.0.0.1:\(port)")
        } catch {
            server.cancel()
            throw error
        }
        server.cancel()
    }
}

extension GatewayTests {
    func editJSON(_ client: some TestClientProtocol, _ object: [String: Any]) async throws -> TestResponse {
        let body = try JSONSerialization.data(withJSONObject: object)
        return try await client.execute(
            uri: "/v1/images/edits", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(data: body))
    }

    func dataURL(_ data: Data, type: String = "image/jpeg") -> String { "data:\(type);base64," + data.base64EncodedString() }

    @Test("The JSON form: images as data URLs and numbers as JSON, answered as the multipart form is")
    func jsonDataURLs() async throws {
        let input = try photo(320, 240)
        try await withGateway { emulator, client in
            let response = try await editJSON(
                client,
                [
                    "model": "runpod", "prompt": "make it night", "n": 2, "output_format": "webp", "safety_identifier": "team-a",
                    "user": "older-name",
                    "images": [["image_url": dataURL(input)]],
                ])
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let results = try images(response)
            #expect(results.count == 2 && results.allSatisfy { $0.format == .webp && $0.displaySize == PixelSize(width: 320, height: 240) })
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
        }
    }

    @Test("The JSON form's image URLs: fetched when private addresses are allowed; refused before connecting otherwise, each refusal naming its param")
    func jsonImageURLs() async throws {
        let input = try photo(200, 100)
        let server = ImageServer()
        try await server.run(files: ["photo.jpg": input, "page.html": Data("<html>hello</html>".utf8)]) { base in
            // By default an address on this machine is refused, and nothing connects to it.
            try await withGateway { emulator, client in
                let refused = try await editJSON(client, ["prompt": "x", "images": [["image_url": base + "/files/photo.jpg"]]])
                #expect(refused.status == .badRequest)
                let error = errorObject(refused)
                #expect(error["param"] as? String == "images[0].image_url" && error["code"] as? String == "invalid_image_url")
                #expect((error["message"] as? String)?.contains("is a loopback address (127.0.0.1); images are fetched from public addresses only") == true, "\(error)")
                #expect(!(error["message"] as? String ?? "").contains("allowPrivateInputs"))
                // A private address, refused from the address alone.
                let privateAddress = try await editJSON(client, ["prompt": "x", "images": [["image_url": "https://10.1.2.3/photo.jpg"]]])
                #expect((errorObject(privateAddress)["message"] as? String)?.contains("is a private address") == true, "\(errorObject(privateAddress))")
                #expect(server.requests == 0 && emulator.submissions(to: .runpodQwenImageEdit2511) == 0)
            }
            try await withGateway(configure: { $0.options.allowPrivateInputs = true }) { emulator, client in
                let response = try await editJSON(
                    client,
                    [
                        "prompt": "x", "size": "400x200",
                        "images": [["image_url": base + "/files/photo.jpg"], ["image_url": dataURL(input)]],
                    ])
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                #expect(try images(response).first?.displaySize == PixelSize(width: 400, height: 200))
                #expect(server.requests == 1)
                let sent = try #require(emulator.bodies(sentTo: .runpodQwenImageEdit2511).last)
                let object = try JSONSerialization.jsonObject(with: sent) as? [String: Any]
                #expect(((object?["input"] as? [String: Any])?["images"] as? [Any])?.count == 2)

                // Not an image, or missing: each a 400 naming the image.
                for (path, expected) in [("/files/page.html", "image 2: HTML is not accepted"), ("/files/none.jpg", "images[1]: the image at")] {
                    let failed = try await editJSON(
                        client, ["prompt": "x", "images": [["image_url": dataURL(input)], ["image_url": base + path]]])
                    #expect(failed.status == .badRequest, "\(path)")
                    let message = errorObject(failed)["message"] as? String ?? ""
                    #expect(message.contains(expected) && message.contains("image"), "\(path): \(message)")
                }
                #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            }
            // An image over the size cap results have is refused by its length, naming the image and the cap.
            try await withGateway(configure: {
                $0.options.allowPrivateInputs = true
                $0.options.maxResultBytes = 1024
            }) { emulator, client in
                let tooLarge = try await editJSON(client, ["prompt": "x", "images": [["image_url": base + "/files/photo.jpg"]]])
                #expect(tooLarge.status == .badRequest, "\(String(buffer: tooLarge.body))")
                let error = errorObject(tooLarge)
                let message = error["message"] as? String ?? ""
                #expect(error["param"] as? String == "images[0].image_url", "\(error)")
                #expect(message.contains("over the 1024-byte limit (\(input.count) bytes"), "\(message)")
                #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)
            }
        }
    }

    @Test("The JSON form's refusals: file_id, unknown keys, wrong types, bad data URLs, too many images (16, then the endpoint's own limit)")
    func jsonRefusals() async throws {
        let input = try photo(64, 48)
        let image = ["image_url": dataURL(input)]
        try await withGateway { emulator, client in
            let cases: [([String: Any], String, String)] = [
                (["prompt": "x", "images": [["file_id": "file-123"]]], "images[0].file_id", "no Files API"),
                (["prompt": "x", "images": [["image_url": dataURL(input), "detail": "high"]]], "images[0].detail", "Unknown parameter"),
                (["prompt": "x", "images": [image], "moderation": "low"], "moderation", "Unknown parameter: 'moderation'."),
                (["prompt": "x", "images": "https://example.com/a.jpg"], "images", "must be a list of objects"),
                (["prompt": "x", "images": [image], "n": ["two"]], "n", "must be a string, a number or a boolean"),
                (["prompt": "x", "images": [["image_url": "data:image/png;base64,@@@"]]], "images[0].image_url", "not a base64 data URL"),
                (["prompt": "x", "images": [["image_url": "ftp://example.com/a.jpg"]]], "images[0].image_url", "https URL or a data URL"),
                (["prompt": "x", "images": Array(repeating: image, count: 17)], "images", "at most 16 images"),
                (["prompt": "x", "images": [image], "n": 11], "n", "from 1 to 10"),
                (["prompt": "x", "images": [image], "safety_identifier": String(repeating: "a", count: 300)], "safety_identifier", "longer than 256"),
            ]
            for (body, param, text) in cases {
                let response = try await editJSON(client, body)
                let error = errorObject(response)
                #expect(response.status == .badRequest, "\(param)")
                #expect(error["param"] as? String == param && (error["message"] as? String)?.contains(text) == true, "\(param): \(error)")
            }
            let broken = try await client.execute(
                uri: "/v1/images/edits", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{\"prompt\": "))
            #expect(broken.status == .badRequest && errorObject(broken)["code"] as? String == "invalid_json")
            // Within 16, but more than the endpoint takes: said with its limit, nothing sent.
            let many = try await editJSON(client, ["prompt": "x", "images": Array(repeating: image, count: 12)])
            #expect(many.status == .badRequest, "\(String(buffer: many.body))")
            #expect(errorObject(many)["param"] as? String == "images" && errorObject(many)["code"] as? String == "too_many_images")
            #expect(
                (errorObject(many)["message"] as? String)?.contains("runpod-qwen-image-edit-2511 takes at most 3 images") == true,
                "\(errorObject(many))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)
        }
    }
}
