import Foundation
import QieProviders
import Testing

private func read(_ json: String, status: Int = 200, _ profile: ProviderProfile) throws -> ResponseOutcome {
    try ResponseReader.read(Data(json.utf8), status: status, from: profile)
}

@Suite("Reading responses")
struct ResponseTests {
    @Test("RunPod: the documented success and failure")
    func runpod() throws {
        let ok = try read("""
            {"id": "sync-a1b2c3d4-e5f6-7890-abcd-ef1234567890-u1", "status": "COMPLETED", "delayTime": 15,
             "executionTime": 3856, "output": {"image_url": "https://image.runpod.ai/abc123/output.png", "cost": 0.02}}
            """, .runpodQwenImageEdit2511)
        #expect(ok == .completed(
            images: [.url("https://image.runpod.ai/abc123/output.png")], reportedCost: Decimal(string: "0.02"),
            requestID: "sync-a1b2c3d4-e5f6-7890-abcd-ef1234567890-u1"))
        let failed = try read("""
            {"id": "sync-1", "status": "FAILED", "error": "Invalid image URL"}
            """, status: 400, .runpodQwenImageEdit)
        #expect(failed == .failed(message: "runpod-qwen-image-edit answered HTTP 400: Invalid image URL", requestID: nil))
        let failedInBand = try read(#"{"id": "sync-1", "status": "FAILED", "error": "Invalid image URL"}"#, .runpodQwenImageEdit)
        #expect(failedInBand == .failed(message: "Invalid image URL", requestID: "sync-1"))
    }

    @Test("Runflow: a queued run is polled; the finished run's outputs[].url and sync-mode data URIs")
    func runflow() throws {
        #expect(try read(#"{"id": "run_123", "status": "queued"}"#, .runflowQwenImageEdit2511)
            == .pending(requestID: "run_123", status: "queued"))
        let png = Data([0x89, 0x50, 0x4E, 0x47, 0, 1, 2])
        let done = try read("""
            {"event": "run.completed", "run_id": "run_123", "status": "succeeded",
             "output": {"outputs": [{"url": "https://cdn.example/1.png", "type": "image"},
                                    {"url": "\(DataURI.make(png, format: .png))"}], "seed": 7}}
            """, .runflowQwenImageEdit2511)
        #expect(done == .completed(images: [.url("https://cdn.example/1.png"), .inline(png)], reportedCost: nil, requestID: "run_123"))
    }

    @Test("Oxen: enqueue, then succeeded with result_url or failed with error_message")
    func oxen() throws {
        #expect(try read(#"{"generations": [{"generation_id": "gen_9"}]}"#, .oxenQwenImageEdit2511)
            == .pending(requestID: "gen_9", status: "queued"))
        #expect(try read(#"{"generation_id": "gen_9", "status": "succeeded", "result_url": "https://hub.example/r.png"}"#, .oxenQwenImageEdit2511)
            == .completed(images: [.url("https://hub.example/r.png")], reportedCost: nil, requestID: "gen_9"))
        #expect(try read(#"{"generation_id": "gen_9", "status": "failed", "error_message": "NSFW content"}"#, .oxenQwenImageEdit2511)
            == .failed(message: "NSFW content", requestID: "gen_9"))
    }

    @Test("Lumenfall: data[].url, data[].b64_json and OpenAI-style errors")
    func lumenfall() throws {
        let bytes = Data([1, 2, 3, 250])
        let result = try read("""
            {"created": 1234567890, "data": [{"url": "https://x/1.png", "revised_prompt": "p"}, {"b64_json": "\(bytes.base64EncodedString())"}]}
            """, .lumenfallQwenImageEdit2511)
        #expect(result == .completed(images: [.url("https://x/1.png"), .inline(bytes)], reportedCost: nil, requestID: nil))
        let error = try read(#"{"error": {"message": "Invalid size", "type": "invalid_request_error", "param": "size"}}"#, status: 400, .lumenfallQwenImageEdit2511)
        #expect(error == .failed(message: "lumenfall-qwen-image-edit-2511 answered HTTP 400: Invalid size", requestID: nil))
    }

    @Test("HTML error pages, empty bodies and success without an image are reported clearly")
    func badResponses() throws {
        let html = try read("<html><body><h1>502 Bad Gateway</h1></body></html>", status: 502, .runpodQwenImageEdit2511)
        guard case .failed(let message, _) = html else { Issue.record("expected a failure"); return }
        #expect(message.hasPrefix("runpod-qwen-image-edit-2511 answered HTTP 502: an HTML page"))
        #expect(try read("", status: 503, .oxenQwenImageEdit2511) == .failed(message: "oxen-qwen-image-edit-2511 answered HTTP 503: an empty body", requestID: nil))

        let notJSON = #expect(throws: ProvidersError.self) { try read("<html>ok</html>", .runpodQwenImageEdit2511) }
        #expect(notJSON?.message.contains("instead of JSON") == true)
        let noImage = #expect(throws: ProvidersError.self) {
            try read(#"{"id": "x", "status": "COMPLETED", "output": {}}"#, .runpodQwenImageEdit2511)
        }
        #expect(noImage?.message.contains("no image at output.image_url") == true)
    }

    @Test("RunPod's cancel: POST /v2/ENDPOINT/cancel/ID with the key; CANCELLED without executionTime never ran, with it may have been billed")
    func runpodCancel() throws {
        let profile = ProviderProfile.runpodQwenImageEdit2511
        let request = try #require(RequestBuilder.cancel(id: "sync-a/b", for: profile, apiKey: "sk-SECRET"))
        #expect(request.method == "POST")
        #expect(request.url == "https://api.runpod.ai/v2/qwen-image-edit-2511/cancel/sync-a%2Fb")
        #expect(request.headers.first { $0.0 == "Authorization" }?.1 == "Bearer sk-SECRET")
        #expect(request.redactedHeaders.first { $0.0 == "Authorization" }?.1 == "Bearer ***")
        let host = profile.host
        #expect(host.readCancel(Data(#"{"id": "j", "status": "CANCELLED", "delayTime": 120}"#.utf8), status: 200, for: profile) == .cancelledBeforeRunning)
        #expect(
            host.readCancel(Data(#"{"id": "j", "status": "CANCELLED", "delayTime": 5, "executionTime": 900}"#.utf8), status: 200, for: profile)
                == .tooLate(status: "CANCELLED"))
        #expect(host.readCancel(Data(#"{"id": "j", "status": "COMPLETED", "executionTime": 900}"#.utf8), status: 200, for: profile) == .tooLate(status: "COMPLETED"))
        #expect(
            host.readCancel(Data(#"{"error": "job not found"}"#.utf8), status: 404, for: profile)
                == .refused(message: "runpod-qwen-image-edit-2511 answered HTTP 404: job not found"))
        // Hosts without a cancel route have none to build.
        #expect(RequestBuilder.cancel(id: "x", for: .oxenQwenImageEdit2511, apiKey: "k") == nil)
        #expect(RequestBuilder.cancel(id: "x", for: .runflowQwenImageEdit2511, apiKey: "k") == nil)
    }
}
