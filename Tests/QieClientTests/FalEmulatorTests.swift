import AsyncHTTPClient
import Foundation
import NIOCore
import QieClient
import QieEmulator
import QieImaging
import QieProviders
import QieWebhooks
import Synchronization
import Testing

private let quick = WaitPolicy(firstInterval: 0.1, maxInterval: 0.3, fallbackInterval: 20, timeout: 30)

private func statusPolls(_ profile: ProviderProfile, _ base: String) -> @Sendable (String) -> BuiltRequest? {
    { RequestBuilder.poll(id: $0, for: profile, apiKey: "test-key", baseURL: base) }
}

/// A clock step that lets time move only once `count` jobs of `profile` ended in the emulator.
private func once(_ count: Int = 1, endedOf profile: ProviderProfile, in emulator: EditEmulator) -> @Sendable (ManualClock) async -> Void {
    { clock in
        await emulator.waitForEndedJobs(count, of: profile)
        clock.advanceToNextDeadline()
    }
}

/// A clock step that lets time move only once the emulator delivered a callback of `profile` and had its answer.
private func onceDelivered(to profile: ProviderProfile, by emulator: EditEmulator) -> @Sendable (ManualClock) async -> Void {
    { clock in
        await emulator.waitForCallbacks(1, from: profile)
        clock.advanceToNextDeadline()
    }
}

/// An emulator for one test whose request lines (`GET /path -> 200 (...)`) are kept.
private func withLoggingEmulator(
    signingSecret: String? = nil, _ body: (EditEmulator, String, @Sendable () -> [String]) async throws -> Void
) async throws {
    let lines = Mutex<[String]>([])
    let emulator = EditEmulator(apiKey: "test-key", signingSecret: signingSecret, requestLog: { line in lines.withLock { $0.append(line) } })
    try await whileRunning({ ready in try await emulator.run(port: 0) { ready($0) } }) { port in
        defer { emulator.release() }
        try await body(emulator, "http://127.0.0.1:\(port)", { lines.withLock { $0 } })
    }
}

/// The request lines of `method path` answered `status`, in the log.
private func answered(_ log: [String], _ method: String, _ path: String, _ status: Int) -> Int {
    log.filter { $0.hasPrefix("\(method) \(path) -> \(status) ") }.count
}

/// A raw request to the emulator: status and JSON answer.
private func raw(
    _ url: String, method: String = "POST", json: String? = nil, auth: String? = "Key test-key"
) async throws -> (status: Int, body: [String: Any]) {
    var request = HTTPClientRequest(url: url)
    request.method = .init(rawValue: method)
    if let auth { request.headers.add(name: "Authorization", value: auth) }
    if let json {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    let data = Data(try await response.body.collect(upTo: 1 << 24).readableBytesView)
    return (Int(response.status.code), (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:])
}

/// The first validation error of a 422 answer: where, and its type.
private func firstDetail(_ body: [String: Any]) -> (loc: [String], type: String)? {
    guard let first = (body["detail"] as? [[String: Any]])?.first else { return nil }
    return ((first["loc"] as? [String]) ?? [], (first["type"] as? String) ?? "")
}

@Suite("fal.ai against the emulator: every flow, cancels, webhooks, refusals", .serialized, .hangGuard)
struct FalEmulatorTests {
    @Test("Synchronous, each endpoint: answered on BASE/fal.run/..., the result at the planned size, the body's image_size an object")
    func synchronous() async throws {
        try await withTestClient { client in try await withLoggingEmulator { emulator, base, log in
            for profile in Fal().profiles {
                let request = try build(profile, base: base)
                #expect(request.url == "\(base)/fal.run/\(profile.model)")
                let outcome = try await client.send(request, to: profile)
                guard case .completed(let images, _, _) = outcome, let first = images.first else {
                    Issue.record("\(profile.id): \(outcome)")
                    continue
                }
                let info = try ImageProbe.probe(data: try await client.fetch(first, from: profile, checks: ResultChecks(endpoint: base)))
                #expect(info.displaySize == PixelSize(width: 1184, height: 880) && info.format == .png, "\(profile.id)")
                let body = try firstBody(emulator, profile)
                #expect((body["image_size"] as? [String: Int]) == ["width": 1184, "height": 880])
                #expect(body["prompt"] as? String == "make it blue" && body["model"] == nil)
                let sent = profile.images.isArray ? (body[profile.images.field] as? [String]) : (body[profile.images.field] as? String).map { [$0] }
                #expect(sent?.count == 1 && sent?.first?.hasPrefix("data:image/jpeg;base64,") == true, "\(profile.id)")
                #expect(answered(log(), "POST", "/fal.run/\(profile.model)", 200) == 1)
            }
        } }
    }

    @Test("The queue: submitted once, polled until COMPLETED, the result fetched once from its own route")
    func queue() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withLoggingEmulator { emulator, base, log in
            let profile = ProviderProfile.falQwenImageEdit2511
            let request = try build(profile, base: base, flow: .polling)
            #expect(request.url == "\(base)/fal-ai/qwen-image-edit-2511")
            let accepted = Mutex<[String]>([])
            let job = try await advancingClock(clock, by: once(endedOf: profile, in: emulator)) {
                try await client.perform(
                    request, on: profile, poll: statusPolls(profile, base), policy: quick,
                    accepted: { id in accepted.withLock { $0.append(id) } })
            }
            let id = try #require(job.requestID)
            #expect(accepted.withLock { $0 } == [id] && UUID(uuidString: id) != nil)
            #expect(job.submissions == 1 && job.polls == 1 && emulator.polls(of: profile) == 1 && emulator.jobs(of: profile) == 1)
            let lines = log()
            #expect(answered(lines, "POST", "/fal-ai/qwen-image-edit-2511", 200) == 1)
            #expect(answered(lines, "GET", "/fal-ai/qwen-image-edit-2511/requests/\(id)/status", 200) == 1)
            #expect(answered(lines, "GET", "/fal-ai/qwen-image-edit-2511/requests/\(id)", 200) == 1)
            let image = try await client.fetch(try #require(job.images.first), from: profile, checks: ResultChecks(endpoint: base))
            #expect(try ImageProbe.probe(data: image).displaySize == PixelSize(width: 1184, height: 880))
        } }
    }

    @Test("A failed run is COMPLETED; its error comes from the result route, and the job is named, not sent again")
    func failedRun() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.falQwenImageEditPlus
            emulator.inject([.jobFailure("the model ran out of memory")])
            let request = try build(profile, base: base, flow: .polling)
            let error = await #expect(throws: ClientError.self) {
                try await advancingClock(clock, by: once(endedOf: profile, in: emulator)) {
                    try await client.perform(request, on: profile, poll: statusPolls(profile, base), policy: quick)
                }
            }
            #expect(error?.kind == .rejected && error?.jobID != nil && error?.status == 422)
            #expect(error?.message.contains("answered HTTP 422: the model ran out of memory") == true, "\(String(describing: error))")
            #expect(emulator.submissions(to: profile) == 1 && emulator.polls(of: profile) == 1)
        } }
    }

    @Test("Cancel (PUT): queued is removed and not billed; running is signalled, too late; ended is too late; unknown is refused")
    func cancels() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.falQwenImageEdit2511
            func submitted() async throws -> String {
                guard case .accepted(let id, _, _, _, _) = try await client.submit(try build(profile, base: base, flow: .polling), on: profile)
                else { throw ClientError(kind: .badResponse, message: "not accepted") }
                return id
            }
            func cancel(_ id: String) async throws -> CancelOutcome {
                let request = try #require(RequestBuilder.cancel(id: id, for: profile, apiKey: "test-key", baseURL: base))
                return await client.cancel(id, request: request, on: profile)
            }
            let ended = try await submitted()
            await emulator.waitForEndedJobs(1, of: profile)
            #expect(try await cancel(ended) == .tooLate(status: "ALREADY_COMPLETED"))

            emulator.inject([.staysQueued])
            let queued = try await submitted()
            #expect(try await cancel(queued) == .cancelledBeforeRunning)
            let result = try await raw("\(base)/fal-ai/qwen-image-edit-2511/requests/\(queued)", method: "GET")
            #expect(result.status == 400 && result.body["detail"] as? String == "Request was cancelled")

            emulator.hold()
            let running = try await submitted()
            #expect(try await cancel(running) == .tooLate(status: "CANCELLATION_REQUESTED"))
            emulator.release()

            guard case .refused(let message) = try await cancel("no-such-request") else { Issue.record("an unknown request was cancelled"); return }
            #expect(message.contains("HTTP 404"))
            #expect(emulator.cancels(of: profile) == 3)
        } }
    }

    /// A callback job on 2511 with a listener checking against the key set
    /// at `keys(base)`; the client's clock moves once the delivery was answered.
    private func webhookJob(
        keys: @escaping (String) -> String, policy: WaitPolicy,
        check: (JobResult, EditEmulator, BuiltRequest, Int) async throws -> Void
    ) async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.falQwenImageEdit2511
            let signals = JobSignals()
            let listener = CallbackListener(profile: profile, port: 0, signingSecret: keys(base), signals: signals)
            try await whileRunning({ ready in try await listener.run { ready($0) } }) { port in
                let input = PayloadImage.bytes(try photo(400, 300), format: .jpeg, filename: "in.jpg")
                let edit = EditRequest(prompt: "make it blue", images: [input], callbackURL: "http://127.0.0.1:\(port)/fal?job=1")
                let request = try build(profile, base: base, request: edit, flow: .callback)
                let job = try await advancingClock(clock, by: onceDelivered(to: profile, by: emulator)) {
                    try await client.perform(request, on: profile, poll: statusPolls(profile, base), policy: policy, signals: signals)
                }
                await emulator.waitForCallbacks(1, from: profile)
                try await check(job, emulator, request, port)
            }
        } }
    }

    @Test("Webhook: fal_webhook in the URL; the delivery verified against the emulator's published keys ends the wait with no poll")
    func signedWebhook() async throws {
        try await webhookJob(keys: { $0 + Fal.emulatedKeySetPath }, policy: quick) { job, emulator, request, port in
            let profile = ProviderProfile.falQwenImageEdit2511
            #expect(request.url.hasSuffix("?fal_webhook=http%3A%2F%2F127.0.0.1%3A\(port)%2Ffal%3Fjob%3D1"))
            #expect(job.signalled && job.polls == 0 && emulator.polls(of: profile) == 0 && job.images.count == 1)
            let deliveries = emulator.callbacks()
            #expect(deliveries.count == 1 && deliveries.first?.status == 200)
            #expect(deliveries.first?.signature?.count == 128)
            let body = try firstBody(emulator, profile)
            #expect(body["fal_webhook"] == nil && body["prompt"] as? String == "make it blue")
        }
    }

    @Test("Webhook signed with a key not in the configured set: refused (401), the job found by polling and its result fetched")
    func foreignKey() async throws {
        try await withEmulator(signingSecret: "another-emulator") { other, otherBase in
            let policy = WaitPolicy(firstInterval: 0.1, fallbackInterval: 1.5, timeout: 30)
            try await webhookJob(keys: { _ in otherBase + Fal.emulatedKeySetPath }, policy: policy) { job, emulator, _, _ in
                #expect(!job.signalled && job.polls == 1 && job.images.count == 1)
                #expect(emulator.callbacks().map(\.status) == [401])
                #expect(emulator.submissions(to: .falQwenImageEdit2511) == 1)
            }
            #expect(other.submissions(to: .falQwenImageEdit2511) == 0)
        }
    }

    @Test("Keys that cannot be fetched: a delivery is answered 503 (to be sent again), never trusted")
    func keysUnavailable() async throws {
        let profile = ProviderProfile.falQwenImageEdit2511
        let listener = CallbackListener(
            profile: profile, port: 0, signingSecret: "http://127.0.0.1:\(try freePort())/jwks.json", signals: JobSignals())
        try await whileRunning({ ready in try await listener.run { ready($0) } }) { port in
            let answer = try await raw("http://127.0.0.1:\(port)/fal", json: #"{"request_id": "r", "status": "OK"}"#, auth: nil)
            #expect(answer.status == 503)
        }
    }

    @Test("The emulator refuses as fal does: 401 for a wrong key; 422 with detail[].loc for unknown, missing, out-of-range and wrong values")
    func refusals() async throws {
        try await withEmulator { emulator, base in
            let image = DataURI.make(try photo(64, 48), format: .jpeg)
            let sync2511 = "\(base)/fal.run/fal-ai/qwen-image-edit-2511"
            let valid = #"{"prompt": "p", "image_urls": ["\#(image)"]}"#
            let bearer = try await raw(sync2511, json: valid, auth: "Bearer test-key")
            #expect(bearer.status == 401 && (bearer.body["detail"] as? String)?.hasPrefix("Unauthorized") == true)
            #expect(try await raw(sync2511, json: valid, auth: nil).status == 401)
            #expect(try await raw("\(base)/fal-ai/qwen-image-edit-2511/requests/x/status", method: "GET", auth: "Key wrong").status == 401)

            let cases: [(String, String, [String], String)] = [
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "strength": 0.5}"#, ["body", "strength"], "extra_forbidden"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "model": "x"}"#, ["body", "model"], "extra_forbidden"),
                (sync2511, #"{"image_urls": ["\#(image)"]}"#, ["body", "prompt"], "missing"),
                (sync2511, #"{"prompt": "p"}"#, ["body", "image_urls"], "value_error"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "num_images": 5}"#, ["body", "num_images"], "value_error.number"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "num_inference_steps": 0}"#, ["body", "num_inference_steps"], "value_error.number"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "guidance_scale": 0.5}"#, ["body", "guidance_scale"], "value_error.number"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "seed": "7"}"#, ["body", "seed"], "value_error"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "output_format": "gif"}"#, ["body", "output_format"], "literal_error"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "image_size": {"width": 14143, "height": 8}}"#, ["body", "image_size"], "literal_error"),
                (sync2511, #"{"prompt": "p", "image_urls": ["\#(image)"], "image_size": "1024x768"}"#, ["body", "image_size"], "literal_error"),
                ("\(base)/fal.run/fal-ai/qwen-image-edit-plus", #"{"prompt": "p", "image_urls": ["\#(image)"], "acceleration": "high"}"#, ["body", "acceleration"], "literal_error"),
                ("\(base)/fal.run/fal-ai/qwen-image-edit", #"{"prompt": "p", "image_urls": ["\#(image)"]}"#, ["body", "image_url"], "value_error"),
                ("\(base)/fal-ai/qwen-image-edit-2511?webhook=http://x", valid, ["body", "webhook"], "extra_forbidden"),
            ]
            for (url, json, loc, type) in cases {
                let answer = try await raw(url, json: json)
                let detail = firstDetail(answer.body)
                #expect(answer.status == 422 && detail?.loc == loc && detail?.type == type, "\(json): \(answer)")
            }
            // None of those became a job.
            #expect(emulator.jobs(of: .falQwenImageEdit2511) == 0)

            // A preset is taken as its pixels; the queue answers with the request's addresses.
            let preset = try await raw(sync2511, json: #"{"prompt": "p", "image_urls": ["\#(image)"], "image_size": "landscape_4_3", "sync_mode": true}"#)
            let output = try #require((preset.body["images"] as? [[String: Any]])?.first?["url"] as? String)
            let decoded = try #require(DataURI.decode(output))
            #expect(try ImageProbe.probe(data: Data(decoded.bytes)).displaySize == PixelSize(width: 1024, height: 768))
            let queued = try await raw("\(base)/fal-ai/qwen-image-edit-2511", json: valid)
            let id = try #require(queued.body["request_id"] as? String)
            #expect(queued.status == 200 && queued.body["status"] as? String == "IN_QUEUE")
            #expect(queued.body["status_url"] as? String == "https://queue.fal.run/fal-ai/qwen-image-edit-2511/requests/\(id)/status")
            #expect(queued.body["cancel_url"] as? String == "https://queue.fal.run/fal-ai/qwen-image-edit-2511/requests/\(id)/cancel")
            #expect(try await raw("\(base)/fal-ai/qwen-image-edit-2511/requests/nope", method: "GET").status == 404)
        }
    }
}
