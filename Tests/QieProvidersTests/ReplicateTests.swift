import Foundation
import QieProviders
import Testing

/// A request for `profile` built as qie builds it, its body as text.
private func built(
    _ profile: ProviderProfile, _ request: EditRequest, flow: ProviderProfile.Flow, timeout: Double? = 1800
) throws -> (BuiltRequest, String) {
    let plan = try SizePlanner.plan(input: PixelSize(width: 1000, height: 750), for: profile)
    let request = try RequestBuilder.build(
        request, plan: plan, for: profile, apiKey: "r8_SECRET", flow: flow, boundary: "BOUNDARY", timeout: timeout)
    return (request, String(decoding: try request.body.data(), as: UTF8.self))
}

private func read(_ json: String, status: Int = 200, _ profile: ProviderProfile = .replicateQwenImageEdit2511) throws
    -> ResponseOutcome
{
    try ResponseReader.read(Data(json.utf8), status: status, from: profile)
}

private func header(_ request: BuiltRequest, _ name: String) -> String? { request.headers.first { $0.0 == name }?.1 }

@Suite("Replicate: requests, answers, cancels and webhooks")
struct ReplicateTests {
    @Test("qwen-image-edit-2511, sync: the input object field for field, Prefer: wait and Cancel-After from the timeout")
    func edit2511Sync() throws {
        let request = EditRequest(
            prompt: "Make it night", images: [.url("https://example.com/a.jpg")], outputFormat: .png, seed: 42,
            safetyChecker: false, outputCompression: 80)
        let (sent, body) = try built(.replicateQwenImageEdit2511, request, flow: .synchronous)
        #expect(body == #"{"input":{"prompt":"Make it night","image":["https://example.com/a.jpg"],"seed":42,"disable_safety_checker":true,"output_quality":80,"output_format":"png"}}"#)
        #expect(sent.method == "POST")
        #expect(sent.url == "https://api.replicate.com/v1/models/qwen/qwen-image-edit-2511/predictions")
        #expect(sent.headers.map(\.0) == ["Authorization", "Content-Type", "Accept", "Prefer", "Cancel-After"])
        #expect(header(sent, "Authorization") == "Bearer r8_SECRET")
        #expect(header(sent, "Content-Type") == "application/json")
        #expect(header(sent, "Prefer") == "wait=60")
        #expect(header(sent, "Cancel-After") == "1860s")
        #expect(sent.redactedHeaders.first { $0.0 == "Authorization" }?.1 == "Bearer ***")
        #expect(sent.emulations.isEmpty && sent.nativeFormat == .png)
        // The safety checker on is the endpoint's disable_safety_checker false.
        let on = try built(.replicateQwenImageEdit2511, EditRequest(prompt: "p", images: [.url("u")], safetyChecker: true), flow: .synchronous)
        #expect(on.1 == #"{"input":{"prompt":"p","image":["u"],"disable_safety_checker":false}}"#)
    }

    @Test("Prefer: wait follows a short timeout (1 to 60 s), and is plain without one; Cancel-After leaves a minute past the timeout")
    func waitAndDeadline() throws {
        let request = EditRequest(prompt: "p", images: [.url("u")])
        let short = try built(.replicateQwenImageEdit2511, request, flow: .synchronous, timeout: 12.5).0
        #expect(header(short, "Prefer") == "wait=12" && header(short, "Cancel-After") == "73s")
        let tiny = try built(.replicateQwenImageEdit2511, request, flow: .synchronous, timeout: 0.2).0
        #expect(header(tiny, "Prefer") == "wait=1" && header(tiny, "Cancel-After") == "61s")
        let none = try built(.replicateQwenImageEdit2511, request, flow: .synchronous, timeout: nil).0
        #expect(header(none, "Prefer") == "wait" && header(none, "Cancel-After") == nil)
    }

    @Test("qwen-image-edit-plus, poll: two images as an array, no Prefer, the deadline still sent; avif converted locally from png")
    func plusPoll() throws {
        let request = EditRequest(
            prompt: "Put the hat on her", images: [.url("https://example.com/a.jpg"), .url("https://example.com/hat.png")],
            outputFormat: .avif)
        let (sent, body) = try built(.replicateQwenImageEditPlus, request, flow: .polling, timeout: 30)
        #expect(body == #"{"input":{"prompt":"Put the hat on her","image":["https://example.com/a.jpg","https://example.com/hat.png"],"output_format":"png"}}"#)
        #expect(sent.url == "https://api.replicate.com/v1/models/qwen/qwen-image-edit-plus/predictions")
        #expect(sent.headers.map(\.0) == ["Authorization", "Content-Type", "Accept", "Cancel-After"])
        #expect(header(sent, "Cancel-After") == "90s")
        #expect(sent.emulations == [.convertOutput(from: .png, to: .avif)])
    }

    @Test("qwen-image-edit, callback: one image as a string, webhook and the completed filter beside input; n repeats the request")
    func editCallback() throws {
        var request = EditRequest(prompt: "Make it blue", images: [.url("https://example.com/a.jpg")], numImages: 2)
        request.callbackURL = "https://hooks.example/replicate"
        let (sent, body) = try built(.replicateQwenImageEdit, request, flow: .callback, timeout: 600)
        #expect(body == #"{"input":{"prompt":"Make it blue","image":"https://example.com/a.jpg"},"webhook":"https://hooks.example/replicate","webhook_events_filter":["completed"]}"#)
        #expect(sent.url == "https://api.replicate.com/v1/models/qwen/qwen-image-edit/predictions")
        #expect(sent.headers.map(\.0) == ["Authorization", "Content-Type", "Accept", "Cancel-After"])
        #expect(sent.emulations == [.repeatRequest(times: 2)])
    }

    @Test("Options Replicate lacks are refused; a second image on the first model and output_quality past 100 too")
    func refusals() throws {
        let plan = try SizePlanner.plan(input: PixelSize(width: 100, height: 100), for: .replicateQwenImageEdit2511)
        for request in [
            EditRequest(prompt: "p", images: [.url("u")], negativePrompt: "blur"),
            EditRequest(prompt: "p", images: [.url("u")], guidanceScale: 4),
            EditRequest(prompt: "p", images: [.url("u")], outputCompression: 101),
            EditRequest(prompt: "p", images: [.url("u"), .url("v"), .url("w"), .url("x")]),
        ] {
            #expect(throws: ProvidersError.self) {
                try RequestBuilder.build(request, plan: plan, for: .replicateQwenImageEdit2511, apiKey: nil)
            }
        }
        #expect(throws: ProvidersError.self) {
            try RequestBuilder.build(
                EditRequest(prompt: "p", images: [.url("u"), .url("v")]), plan: plan, for: .replicateQwenImageEdit, apiKey: nil)
        }
    }

    @Test("The catalog: three endpoints, replicate is 2511, the output follows the prepared input, $0.03 per image")
    func catalog() throws {
        #expect(try ProviderCatalog.profile(named: "replicate").id == "replicate-qwen-image-edit-2511")
        #expect(try ProviderCatalog.profile(named: "replicate-plus").version == .editPlus)
        #expect(try ProviderCatalog.profile(named: "REPLICATE-EDIT").version == .edit)
        let plan = try SizePlanner.plan(input: PixelSize(width: 1600, height: 1200), for: .replicateQwenImageEditPlus)
        #expect(plan.target == PixelSize(width: 1184, height: 880) && plan.fields.isEmpty)
        #expect(CostEstimator.estimate(.replicateQwenImageEdit, outputSize: plan.target, images: 2).total == Decimal(string: "0.06"))
        for profile in ProviderCatalog.all where profile.provider == "Replicate" {
            #expect(profile.defaultFlow == .synchronous && profile.defaultRunFlow == .polling)
            #expect(profile.result.description == "output[]")
            #expect(profile.notes.contains { $0.contains("Cancel-After") } && profile.notes.contains { $0.contains("unconfirmed") })
        }
    }

    @Test("Predictions: starting and processing are polled; succeeded gives output[]; failed, canceled, aborted and removed outputs end it")
    func predictions() throws {
        #expect(try read(#"{"id": "ufawqhfynnddngldkgtslldrkq", "status": "starting", "output": null, "urls": {"get": "https://api.replicate.com/v1/predictions/ufawqhfynnddngldkgtslldrkq"}}"#)
            == .pending(requestID: "ufawqhfynnddngldkgtslldrkq", status: "starting"))
        #expect(try read(#"{"id": "p1", "status": "processing", "output": null}"#) == .pending(requestID: "p1", status: "processing"))
        #expect(try read("""
            {"id": "p1", "status": "succeeded", "output": ["https://replicate.delivery/a/out-0.webp", "https://replicate.delivery/a/out-1.webp"],
             "metrics": {"predict_time": 3.2, "total_time": 4.5}, "data_removed": false}
            """) == .completed(
                images: [.url("https://replicate.delivery/a/out-0.webp"), .url("https://replicate.delivery/a/out-1.webp")],
                reportedCost: nil, requestID: "p1"))
        #expect(try read(#"{"id": "p1", "status": "failed", "error": "CUDA out of memory"}"#)
            == .failed(message: "CUDA out of memory", requestID: "p1"))
        #expect(try read(#"{"id": "p1", "status": "canceled", "started_at": "2025-01-01T00:00:01Z"}"#)
            == .failed(message: "the job ended as canceled", requestID: "p1"))
        #expect(try read(#"{"id": "p1", "status": "aborted", "started_at": null}"#)
            == .failed(message: "the prediction was aborted: its Cancel-After deadline passed before it started", requestID: "p1"))
        #expect(try read(#"{"id": "p1", "status": "succeeded", "output": null, "data_removed": true}"#)
            == .failed(message: "the prediction succeeded but its output was removed (Replicate keeps API outputs for an hour)", requestID: "p1"))
        // A poll answer without the id keeps the one being asked about.
        #expect(try ResponseReader.read(Data(#"{"status": "processing"}"#.utf8), status: 200, from: .replicateQwenImageEdit, jobID: "known")
            == .pending(requestID: "known", status: "processing"))
        let host = ProviderProfile.replicateQwenImageEdit2511.host
        func object(_ json: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        }
        #expect(host.reportedDuration(try object(#"{"metrics": {"predict_time": 3.2, "total_time": 4.5}}"#)) == 4.5)
        #expect(host.reportedDuration(try object(#"{"metrics": {}}"#)) == nil)
    }

    @Test("Errors in Replicate's shapes: 422 input validation, 401 unauthenticated, 429 throttled")
    func errors() throws {
        let invalid = try read("""
            {"title": "Input validation failed", "detail": "- input.output_quality: Must be less than or equal to 100", "status": 422,
             "invalid_fields": [{"type": "less_than_equal", "field": "input.output_quality", "description": "Must be less than or equal to 100"}]}
            """, status: 422)
        #expect(invalid == .failed(
            message: "replicate-qwen-image-edit-2511 answered HTTP 422: - input.output_quality: Must be less than or equal to 100", requestID: nil))
        #expect(try read(#"{"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}"#, status: 401)
            == .failed(message: "replicate-qwen-image-edit-2511 answered HTTP 401: You did not pass a valid authentication token", requestID: nil))
        #expect(try read(#"{"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429}"#, status: 429)
            == .failed(message: "replicate-qwen-image-edit-2511 answered HTTP 429: Request was throttled. Your rate limit resets in ~30s.", requestID: nil))
    }

    @Test("Cancel: POST /v1/predictions/ID/cancel; aborted or canceled before started_at never ran; after it, or ended, may have been billed")
    func cancel() throws {
        let profile = ProviderProfile.replicateQwenImageEditPlus
        let request = try #require(RequestBuilder.cancel(id: "abc/1", for: profile, apiKey: "r8_SECRET"))
        #expect(request.method == "POST" && request.url == "https://api.replicate.com/v1/predictions/abc%2F1/cancel")
        #expect(request.headers.first { $0.0 == "Authorization" }?.1 == "Bearer r8_SECRET")
        let poll = try #require(RequestBuilder.poll(id: "abc", for: profile, apiKey: "r8_SECRET", baseURL: "http://127.0.0.1:9/"))
        #expect(poll.method == "GET" && poll.url == "http://127.0.0.1:9/v1/predictions/abc")
        let host = profile.host
        func said(_ json: String, status: Int = 200) -> CancelOutcome { host.readCancel(Data(json.utf8), status: status, for: profile) }
        #expect(said(#"{"id": "p", "status": "canceled", "started_at": null}"#) == .cancelledBeforeRunning)
        #expect(said(#"{"id": "p", "status": "canceled"}"#) == .cancelledBeforeRunning)
        #expect(said(#"{"id": "p", "status": "aborted", "started_at": null}"#) == .cancelledBeforeRunning)
        #expect(said(#"{"id": "p", "status": "canceled", "started_at": "2025-01-01T00:00:01Z"}"#) == .tooLate(status: "canceled"))
        #expect(said(#"{"id": "p", "status": "succeeded", "started_at": "2025-01-01T00:00:01Z"}"#) == .tooLate(status: "succeeded"))
        #expect(said(#"{"detail": "Not found.", "status": 404}"#, status: 404)
            == .refused(message: "replicate-qwen-image-edit-plus answered HTTP 404: Not found."))
    }

    /// The Standard Webhooks specification's own example.
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let delivery = (id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Data(#"{"test": 2432232314}"#.utf8))
    static let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    private func verify(
        id: String? = delivery.id, timestamp: String? = String(delivery.timestamp), signature: String? = signature,
        body: Data = delivery.body, secret: String = secret, at seconds: Int = delivery.timestamp + 10
    ) throws -> SignedDelivery? {
        let verifier = try #require(ProviderProfile.replicateQwenImageEdit2511.host.callbackVerifier(secret: secret))
        let headers = ["webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature]
        return verifier.verify(header: { headers[$0] ?? nil }, body: body, now: Date(timeIntervalSince1970: Double(seconds)))
    }

    @Test("Webhook signatures: the Standard Webhooks example is accepted; tampered, stale, unsigned or wrongly keyed ones are not")
    func webhookSignatures() throws {
        let accepted = try #require(try verify())
        #expect(accepted.signedAt == Date(timeIntervalSince1970: Double(Self.delivery.timestamp)))
        #expect(try verify(signature: "v1,AAAA" + " " + Self.signature) != nil, "any listed v1 signature may match")
        #expect(try verify(at: Self.delivery.timestamp - 299) != nil)
        #expect(try verify(at: Self.delivery.timestamp + 301) == nil, "stale")
        #expect(try verify(at: Self.delivery.timestamp - 301) == nil, "from the future")
        #expect(try verify(body: Data(#"{"test": 2432232315}"#.utf8)) == nil, "tampered body")
        #expect(try verify(id: "msg_other") == nil, "another delivery's id")
        #expect(try verify(timestamp: String(Self.delivery.timestamp + 1), at: Self.delivery.timestamp) == nil, "another time")
        #expect(try verify(signature: "v2," + Self.signature.dropFirst(3)) == nil, "another scheme")
        #expect(try verify(signature: nil) == nil && verify(id: nil) == nil && verify(timestamp: nil) == nil)
        #expect(try verify(secret: "whsec_" + Data("another key".utf8).base64EncodedString()) == nil)

        // What the emulator sends verifies, and its signature is the one computed here.
        let host = ProviderProfile.replicateQwenImageEdit2511.host
        let body = Data(#"{"id": "p1", "status": "succeeded"}"#.utf8)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let headers = Dictionary(uniqueKeysWithValues: host.emulatedCallbackHeaders(for: body, secret: Self.secret, at: now))
        #expect(headers["webhook-timestamp"] == "1700000000" && headers["webhook-id"]?.hasPrefix("msg_") == true)
        let verifier = try #require(host.callbackVerifier(secret: Self.secret))
        #expect(verifier.signatureHeader == "webhook-signature")
        #expect(verifier.verify(header: { headers[$0] }, body: body, now: now) != nil)
        #expect(host.emulatedCallbackHeaders(for: body, secret: nil, at: now).map(\.0).sorted() == ["webhook-id", "webhook-timestamp"])
    }

    @Test("What the emulator reads from headers: Prefer: wait (1 to 60 s, answered at once without it) and Cancel-After durations")
    func emulatedTerms() {
        let host = ProviderProfile.replicateQwenImageEdit2511.host
        func terms(_ headers: [String: String]) -> EmulatedTerms {
            host.emulatedTerms(header: { headers[$0] }, for: .replicateQwenImageEdit2511)
        }
        #expect(terms([:]) == EmulatedTerms(wait: .zero))
        #expect(terms(["Prefer": "wait"]) == EmulatedTerms(wait: .seconds(60)))
        #expect(terms(["Prefer": "respond-async, wait=5"]) == EmulatedTerms(wait: .seconds(5)))
        #expect(terms(["Prefer": "wait=5", "Cancel-After": "1m30s"]) == EmulatedTerms(wait: .seconds(5), deadline: .seconds(90)))
        #expect(terms(["Cancel-After": "1860s"]).deadline == .seconds(1860))
        #expect(terms(["Cancel-After": "500ms"]).deadline == .milliseconds(500))
        for refused in [["Prefer": "wait=0"], ["Prefer": "wait=61"], ["Prefer": "wait=soon"], ["Cancel-After": "soon"], ["Cancel-After": "0s"], ["Cancel-After": "5"], ["Cancel-After": "5d"]] {
            #expect(terms(refused).refusal != nil, "\(refused)")
        }
    }
}
