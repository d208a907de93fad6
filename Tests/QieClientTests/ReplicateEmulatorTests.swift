import AsyncHTTPClient
import Foundation
import NIOCore
import QieClient
import QieCore
import QieEmulator
import QieImaging
import QiePipeline
import QieProviders
import QieStore
import QieWebhooks
import Synchronization
import Testing

private let quick = WaitPolicy(firstInterval: 0.1, maxInterval: 0.3, fallbackInterval: 20, timeout: 600)

private func polls(_ profile: ProviderProfile, _ base: String) -> @Sendable (String) -> BuiltRequest? {
    { RequestBuilder.poll(id: $0, for: profile, apiKey: "test-key", baseURL: base) }
}

/// `request` with header `name` set to `value` (replaced where it was sent).
private func with(_ name: String, _ value: String, _ request: BuiltRequest) -> BuiltRequest {
    var request = request
    request.headers = request.headers.filter { $0.0 != name } + [(name, value)]
    return request
}

// Every wait is on an event (the emulator's submissions, polls, ended jobs
// and callbacks) or on a ManualClock the test moves. The only real time is
// the emulator's own: a Prefer wait or a Cancel-After deadline of a second,
// which the test waits out by waiting for what it causes.
@Suite("Replicate against the emulator: wait, poll, deadline, cancel, webhook, refusals", .serialized, .hangGuard)
struct ReplicateEmulatorTests {
    let profile = ProviderProfile.replicateQwenImageEdit2511

    @Test("Sync: a prediction finished within Prefer: wait is answered with its output, no poll; webp by default, at the input's size")
    func syncWithinWait() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let request = try build(profile, base: base, flow: .synchronous)
            #expect(request.headers.contains { $0 == ("Prefer", "wait") })
            let job = try await client.perform(request, on: profile, poll: polls(profile, base), policy: quick)
            #expect(job.polls == 0 && job.submissions == 1 && emulator.polls(of: profile) == 0)
            #expect(job.requestID?.count == 26)
            let image = try await client.fetch(try #require(job.images.first), from: profile, checks: ResultChecks(endpoint: base))
            let info = try ImageProbe.probe(data: image)
            #expect(info.width == 400 && info.height == 300 && info.format == .webp)
        } }
    }

    @Test("Sync outlasting its wait: answered unfinished, then polled to its end at GET /v1/predictions/ID, never sent again")
    func syncOutlastingWait() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            // The prediction cannot end while the test holds it, so the one-second wait runs out.
            emulator.hold()
            let request = with("Prefer", "wait=1", try build(profile, base: base, flow: .synchronous))
            let waiting = Task { try await client.perform(request, on: profile, poll: polls(profile, base), policy: quick) }
            await emulator.waitForPolls(1, of: profile)
            emulator.release()
            let job = try await waiting.value
            #expect(emulator.submissions(to: profile) == 1 && job.submissions == 1)
            #expect(job.polls >= 1 && job.polls == emulator.polls(of: profile))
            let image = try await client.fetch(try #require(job.images.first), from: profile, checks: ResultChecks(endpoint: base))
            #expect(try ImageProbe.probe(data: image).width == 400)
        } }
    }

    @Test("Poll (plus, two images): created without a wait, polled once after it ended, output downloaded")
    func polling() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let plus = ProviderProfile.replicateQwenImageEditPlus
            let images: [PayloadImage] = [
                .bytes(try photo(400, 300), format: .jpeg, filename: "in.jpg"), .bytes(try photo(64, 64), format: .jpeg, filename: "ref.jpg"),
            ]
            let request = try build(plus, base: base, request: EditRequest(prompt: "make it blue", images: images, outputFormat: .png), flow: .polling)
            #expect(!request.headers.contains { $0.0 == "Prefer" })
            let job = try await advancingClock(clock, by: { clock in
                await emulator.waitForEndedJobs(1, of: plus)
                clock.advanceToNextDeadline()
            }) {
                try await client.perform(request, on: plus, poll: polls(plus, base), policy: quick)
            }
            #expect(emulator.submissions(to: plus) == 1 && job.polls == 1 && emulator.polls(of: plus) == 1)
            let image = try await client.fetch(try #require(job.images.first), from: plus, checks: ResultChecks(endpoint: base))
            #expect(try ImageProbe.probe(data: image).format == .png)
            let body = try firstBody(emulator, plus)
            #expect(Set(body.keys) == ["input"])
            let input = try #require(body["input"] as? [String: Any])
            #expect(Set(input.keys) == ["prompt", "image", "output_format"])
            #expect((input["image"] as? [String])?.count == 2 && input["output_format"] as? String == "png")
        } }
    }

    @Test("A prediction past --timeout is cancelled: one that never started is not billed and is sent again; a running one may have been")
    func cancelledAtTimeout() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            var configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: testOptions(profile, base: base))
            configuration.maxCost = Decimal(string: "0.10")
            /// The ledger's job for `name` after a run that gave it up at a one-second timeout, `fault` played.
            func givenUp(_ name: String, _ fault: EmulatedFault) async throws -> LedgerJob {
                configuration.options.timeouts.overall = 1
                emulator.inject([fault])
                let run = try await EditRun(configuration).run(environment: testEnvironment())
                #expect(run.batch.failed == 1)
                return try #require(try Ledger(folder: root + "/out").jobs().first { $0.inputPath.hasSuffix(name) })
            }
            // Still starting (no worker took it): cancelled before it ran.
            let queued = try await givenUp("a.jpg", .staysQueued)
            #expect(emulator.submissions(to: profile) == 1 && emulator.cancels(of: profile) == 1)
            #expect(queued.state == .cancelled && queued.requestID?.count == 26)
            #expect(queued.error?.contains("before it ran, so nothing was billed") == true, "\(queued.error ?? "")")
            #expect(try Ledger(folder: root + "/out").money() == RunMoney())
            #expect(try firstBody(emulator, profile)["webhook"] == nil)

            // Nothing was billed: the next run sends it again.
            configuration.options.timeouts.overall = 1800
            let second = try await EditRun(configuration).run(environment: testEnvironment())
            #expect(second.batch.written == 1 && emulator.submissions(to: profile) == 2 && emulator.cancels(of: profile) == 1)

            // Given up while it ran: canceled after started_at, so it may have been billed.
            try write(120, 160, to: root + "/in/b.jpg")
            let late = try await givenUp("b.jpg", .delayed(seconds: 600))
            #expect(emulator.cancels(of: profile) == 2)
            #expect(late.state == .uncertain, "\(late.state)")
            #expect(late.error?.contains("(canceled): it may have been billed") == true, "\(late.error ?? "")")
            let money = try Ledger(folder: root + "/out").money()
            #expect(money == RunMoney(billed: Decimal(string: "0.03")!, atRisk: Decimal(string: "0.03")!, earlier: 0, unpriced: 0))
        }
    }

    @Test("Cancel-After: the emulator aborts a prediction that never started and cancels a running one at the deadline")
    func deadline() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            func submitted(_ fault: EmulatedFault) async throws -> String {
                emulator.inject([fault])
                let request = with("Cancel-After", "1s", try build(profile, base: base, flow: .polling))
                guard case .accepted(let id, let status, _, _, _) = try await client.submit(request, on: profile) else {
                    throw ClientError(kind: .badResponse, message: "answered at once")
                }
                #expect(["starting", "processing"].contains(status))
                return id
            }
            func cancel(_ id: String) throws -> BuiltRequest {
                try #require(RequestBuilder.cancel(id: id, for: profile, apiKey: "test-key", baseURL: base))
            }

            let queued = try await submitted(.staysQueued)
            await emulator.waitForEndedJobs(1, of: profile)
            let aborted = await #expect(throws: ClientError.self) {
                _ = try await client.wait(for: queued, request: polls(profile, base)(queued)!, on: profile, policy: quick)
            }
            #expect(aborted?.kind == .rejected && aborted?.message.hasSuffix("its Cancel-After deadline passed before it started") == true)
            let cancelQueued = try cancel(queued)
            #expect(await client.cancel(queued, request: cancelQueued, on: profile) == .cancelledBeforeRunning)

            let running = try await submitted(.delayed(seconds: 600))
            await emulator.waitForEndedJobs(2, of: profile)
            let canceled = await #expect(throws: ClientError.self) {
                _ = try await client.wait(for: running, request: polls(profile, base)(running)!, on: profile, policy: quick)
            }
            #expect(canceled?.message.hasSuffix("failed: the job ended as canceled") == true)
            let cancelRunning = try cancel(running)
            #expect(await client.cancel(running, request: cancelRunning, on: profile) == .tooLate(status: "canceled"))
            #expect(emulator.submissions(to: profile) == 2 && emulator.cancels(of: profile) == 2)
        } }
    }

    /// A callback job on the first model, with a listener holding `listenerSecret`
    /// and an emulator signing with `senderSecret`; the clock moves once the webhook was answered.
    private func webhookJob(
        listenerSecret: String, senderSecret: String, policy: WaitPolicy,
        check: (JobResult, EditEmulator, EditClient, Int) async throws -> Void
    ) async throws {
        let edit = ProviderProfile.replicateQwenImageEdit
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator(signingSecret: senderSecret) { emulator, base in
            let signals = JobSignals()
            let listener = CallbackListener(profile: edit, port: 0, signingSecret: listenerSecret, signals: signals)
            try await whileRunning({ ready in try await listener.run { ready($0) } }) { port in
                var request = EditRequest(prompt: "make it blue", images: [.bytes(try photo(400, 300), format: .jpeg, filename: "in.jpg")])
                request.callbackURL = "http://127.0.0.1:\(port)/replicate"
                let built = try build(edit, base: base, request: request, flow: .callback)
                let job = try await advancingClock(clock, by: { clock in
                    await emulator.waitForCallbacks(1, from: edit)
                    clock.advanceToNextDeadline()
                }) {
                    try await client.perform(built, on: edit, poll: polls(edit, base), policy: policy, signals: signals)
                }
                await emulator.waitForCallbacks(1, from: edit)
                try await check(job, emulator, client, port)
            }
        } }
    }

    static let secret = "whsec_" + Data("replicate webhook test key".utf8).base64EncodedString()

    @Test("Webhook, signed the Standard Webhooks way: the verified prediction ends the wait with no poll")
    func signedWebhook() async throws {
        try await webhookJob(listenerSecret: Self.secret, senderSecret: Self.secret, policy: quick) { job, emulator, client, port in
            let edit = ProviderProfile.replicateQwenImageEdit
            #expect(job.signalled && job.polls == 0 && emulator.polls(of: edit) == 0)
            let image = try await client.fetch(try #require(job.images.first), from: edit, checks: ResultChecks(allowPrivateAddresses: true))
            #expect(try ImageProbe.probe(data: image).format == .webp)
            let deliveries = emulator.callbacks()
            #expect(deliveries.count == 1 && deliveries.first?.status == 200)
            #expect(deliveries.first?.signature?.hasPrefix("v1,") == true)
            let body = try firstBody(emulator, edit)
            #expect(body["webhook"] as? String == "http://127.0.0.1:\(port)/replicate")
            #expect(body["webhook_events_filter"] as? [String] == ["completed"])
            #expect((body["input"] as? [String: Any])?["image"] is String)
        }
    }

    @Test("A webhook signed with another key is refused (401); the prediction is found by polling instead")
    func forgedWebhook() async throws {
        let policy = WaitPolicy(firstInterval: 0.1, fallbackInterval: 1.5, timeout: 600)
        let other = "whsec_" + Data("not the key".utf8).base64EncodedString()
        try await webhookJob(listenerSecret: Self.secret, senderSecret: other, policy: policy) { job, emulator, _, _ in
            #expect(!job.signalled && job.polls == 1 && job.images.count == 1)
            #expect(emulator.callbacks().map(\.status) == [401])
        }
    }

    @Test("The emulator refuses like Replicate: wrong token 401, unknown field, wrong enum, out of range, missing prompt 422, bad Prefer 400")
    func refusals() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let image = JSONValue.array([.string(DataURI.make(try photo(8, 8), format: .jpeg))])
            func refused(_ input: [(String, JSONValue)], beside: [(String, JSONValue)] = [], on profile: ProviderProfile = .replicateQwenImageEdit2511, prefer: String? = nil) async throws -> String {
                var request = try build(profile, base: base, flow: .polling)
                request.body = .json(.object([("input", .object(input))] + beside))
                if let prefer { request = with("Prefer", prefer, request) }
                let outcome = try await client.send(request, to: profile)
                guard case .failed(let message, _) = outcome else { return "not refused: \(outcome)" }
                return message
            }
            let noKey = try await client.send(try build(profile, base: base, key: "wrong"), to: profile)
            #expect(noKey == .failed(message: "replicate-qwen-image-edit-2511 answered HTTP 401: You did not pass a valid authentication token", requestID: nil))
            let prefix = "replicate-qwen-image-edit-2511 answered HTTP 422: "
            #expect(try await refused([("prompt", .string("p")), ("image", image), ("negative_prompt", .string("x"))]) == prefix + "Unknown field: negative_prompt")
            #expect(try await refused([("prompt", .string("p")), ("image", image), ("output_format", .string("gif"))]) == prefix + "output_format must be one of webp, jpg, png")
            #expect(try await refused([("prompt", .string("p")), ("image", image), ("aspect_ratio", .string("2:1"))]) == prefix + "aspect_ratio must be one of: 1:1, 16:9, 9:16, 4:3, 3:4, match_input_image")
            #expect(try await refused([("prompt", .string("p")), ("image", image), ("output_quality", .integer(101))]) == prefix + "output_quality must be greater than or equal to 0 and less than or equal to 100")
            #expect(try await refused([("prompt", .string("p")), ("image", image), ("go_fast", .string("yes"))]) == prefix + "go_fast must be a boolean")
            #expect(try await refused([("prompt", .string("p")), ("image", image), ("seed", .string("7"))]) == prefix + "seed must be integer")
            #expect(try await refused([("image", image)]) == prefix + "Missing required field: prompt")
            #expect(try await refused([("prompt", .string("p")), ("image", image)], beside: [("webhook_events_filter", .array([.string("done")]))]) == prefix + "webhook_events_filter must be a list of start, output, logs, completed")
            #expect(try await refused([("prompt", .string("p")), ("image", image)], prefer: "wait=61") == "replicate-qwen-image-edit-2511 answered HTTP 400: Prefer: wait takes 1 to 60 seconds, got wait=61")
            // The first model takes one image as a string, and no aspect_ratio.
            let edit = ProviderProfile.replicateQwenImageEdit
            #expect(try await refused([("prompt", .string("p")), ("image", image)], on: edit) == "replicate-qwen-image-edit answered HTTP 422: image must be an image URL")
            #expect(try await refused([("prompt", .string("p")), ("image", .string(DataURI.make(try photo(8, 8), format: .jpeg))), ("aspect_ratio", .string("1:1"))], on: edit) == "replicate-qwen-image-edit answered HTTP 422: Unknown field: aspect_ratio")
            // What is valid passes: go_fast, match_input_image, output_quality in range.
            #expect(try await refused([("prompt", .string("p")), ("image", image), ("go_fast", .bool(false)), ("aspect_ratio", .string("match_input_image")), ("output_quality", .integer(100))]).hasPrefix("not refused"))
            #expect(emulator.jobs(of: profile) == 1 && emulator.jobs(of: edit) == 0)

            // The bodies themselves, in Replicate's shapes.
            try await withHTTPClient(.init()) { http in
                func raw(key: String, body: String) async throws -> (Int, [String: Any]) {
                    var request = HTTPClientRequest(url: base + profile.routes.submit)
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "Bearer \(key)")
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: body))
                    let response = try await http.execute(request, timeout: .seconds(60))
                    let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
                    return (Int(response.status.code), try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]))
                }
                let (status, invalid) = try await raw(key: "test-key", body: #"{"input": {"prompt": "p", "image": [], "output_quality": 101}}"#)
                #expect(status == 422 && invalid["title"] as? String == "Input validation failed" && invalid["status"] as? Int == 422)
                let fields = try #require(invalid["invalid_fields"] as? [[String: Any]])
                #expect(fields.count == 1 && fields[0]["field"] as? String == "output_quality" && fields[0]["description"] as? String == invalid["detail"] as? String)
                let (unauthorized, unauthenticated) = try await raw(key: "wrong", body: "{}")
                #expect(unauthorized == 401 && unauthenticated["title"] as? String == "Unauthenticated" && unauthenticated["status"] as? Int == 401)
                emulator.inject([.tooManyRequests(retryAfter: 30)])
                let (throttled, detail) = try await raw(key: "test-key", body: "{}")
                #expect(throttled == 429 && detail["detail"] as? String == "Request was throttled. Your rate limit resets in ~30s.")
            }
        } }
    }
}
