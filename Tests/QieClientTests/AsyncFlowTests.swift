import AsyncHTTPClient
import Crypto
import Foundation
import Glibc
import NIOCore
import QieClient
import QieWebhooks
import QieEmulator
import QieImaging
import QiePipeline
import QieProviders
import Synchronization
import Testing

/// A port nothing listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The first JSON body the emulator received for `profile`.
func firstBody(_ emulator: EditEmulator, _ profile: ProviderProfile) throws -> [String: Any] {
    let data = try #require(emulator.bodies(sentTo: profile).first)
    return try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
}

private let fast = WaitPolicy(firstInterval: 0.1, maxInterval: 0.3, fallbackInterval: 20, timeout: 30)

private func poller(_ profile: ProviderProfile, _ base: String, key: String = "test-key") -> @Sendable (String) -> BuiltRequest? {
    { RequestBuilder.poll(id: $0, for: profile, apiKey: key, baseURL: base) }
}

/// A clock step for `advancingClock` that first waits until `count` jobs of
/// `profile` have ended in the emulator: every poll from then on finds the
/// end, however long the emulator took to get there.
private func afterJobsEnd(_ count: Int = 1, of profile: ProviderProfile, in emulator: EditEmulator) -> @Sendable (ManualClock) async -> Void {
    { clock in
        await emulator.waitForEndedJobs(count, of: profile)
        clock.advanceToNextDeadline()
    }
}

// Every wait in these tests is on an event (the emulator's submissions,
// ended jobs and callbacks, a listener's connections) or on a ManualClock
// the test moves; the time limit only keeps a regression from hanging the run.
@Suite("Asynchronous jobs: polling, callbacks, events, lost jobs", .serialized, .hangGuard)
struct AsyncFlowTests {
    @Test("Runflow: the run is created once, polled to its end, and its output downloaded at the input's size")
    func runflowPolling() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runflowQwenImageEdit2511
            let request = try build(profile, base: base, flow: .polling)
            let ids = Mutex<[String]>([])
            // The first poll is due once the job has ended: it finds the end.
            let job = try await advancingClock(clock, by: afterJobsEnd(of: profile, in: emulator)) {
                try await client.perform(
                    request, on: profile, poll: poller(profile, base), policy: fast,
                    accepted: { id in ids.withLock { $0.append(id) } })
            }
            #expect(emulator.submissions(to: profile) == 1 && emulator.jobs(of: profile) == 1)
            #expect(job.polls == 1 && emulator.polls(of: profile) == 1)
            #expect(job.requestID?.hasPrefix("run_") == true && ids.withLock { $0 } == [job.requestID!])
            let image = try await client.fetch(try #require(job.images.first), from: profile, checks: ResultChecks(endpoint: base))
            let info = try ImageProbe.probe(data: image)
            // Runflow's output follows the input image (400x300 here); png is the assumed default.
            #expect(info.width == 400 && info.height == 300 && info.format == .png)
            // The body is the document's: input object, no callback, nothing unknown.
            let body = try firstBody(emulator, profile)
            #expect(Set(body.keys) == ["input"])
            let input = try #require(body["input"] as? [String: Any])
            #expect(input["prompt"] as? String == "make it blue")
            #expect((input["image_urls"] as? [String])?.first?.hasPrefix("data:image/jpeg;base64,") == true)
        } }
    }

    @Test("Failed polls are retried and never resubmit: 5xx, 429, HTML, malformed JSON and a dropped connection")
    func pollFailures() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.oxenQwenImageEdit2511
            emulator.injectIntoPolls([
                .status(503), .dropConnection, .htmlErrorPage, .malformedJSON, .tooManyRequests(retryAfter: 1), .status(500),
            ])
            let request = try build(profile, base: base, flow: .polling)
            let job = try await advancingClock(clock, by: afterJobsEnd(of: profile, in: emulator)) {
                try await client.perform(request, on: profile, poll: poller(profile, base), policy: fast)
            }
            #expect(emulator.submissions(to: profile) == 1 && emulator.jobs(of: profile) == 1)
            // Each failure cost one poll, asked again after its pause; the
            // seventh found the job, which had ended before the first.
            #expect(job.submissions == 1 && job.polls == 7 && emulator.polls(of: profile) == 7)
            let image = try await client.fetch(try #require(job.images.first), from: profile, checks: ResultChecks(endpoint: base))
            #expect(try ImageProbe.probe(data: image).format == .png)
        } }
    }

    @Test("A connection dropped after the submission left is uncertain: not sent again")
    func droppedSubmission() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            emulator.inject([.dropConnection])
            let error = await #expect(throws: ClientError.self) {
                _ = try await client.perform(try build(profile, base: base), on: profile, poll: poller(profile, base))
            }
            #expect(error?.kind == .uncertain && error?.submissions == 1)
            #expect(emulator.submissions(to: profile) == 1)
        } }
    }

    @Test("RunPod answering IN_PROGRESS: the job is polled at the status route, not sent again")
    func runpodInProgress() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            emulator.inject([.acceptedPending])
            emulator.injectIntoPolls([.status(502)])
            let request = try build(profile, base: base)
            let job = try await advancingClock(clock, by: afterJobsEnd(of: profile, in: emulator)) {
                try await client.perform(request, on: profile, poll: poller(profile, base), policy: fast)
            }
            // The 502 is asked again after its pause, and that poll finds the end.
            #expect(emulator.submissions(to: profile) == 1 && emulator.polls(of: profile) == 2 && job.polls == 2)
            #expect(job.reportedCost == Decimal(string: "0.02"))
            let image = try await client.fetch(try #require(job.images.first), from: profile, checks: ResultChecks(endpoint: base))
            #expect(try ImageProbe.probe(data: image).width == 1536)
        } }
    }

    @Test("A job that ends failed says which endpoint, which job and what it said")
    func jobFailure() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.oxenQwenImageEdit2511
            emulator.inject([.jobFailure("content policy: the prompt was refused")])
            let request = try build(profile, base: base, flow: .polling)
            do {
                _ = try await advancingClock(clock, by: afterJobsEnd(of: profile, in: emulator)) {
                    try await client.perform(request, on: profile, poll: poller(profile, base), policy: fast)
                }
                Issue.record("a failed job was reported as done")
            } catch let error as ClientError {
                #expect(error.kind == .rejected)
                #expect(error.message.hasPrefix("oxen-qwen-image-edit-2511: job gen_"))
                #expect(error.message.hasSuffix("failed: content policy: the prompt was refused"))
            }
            #expect(emulator.submissions(to: profile) == 1)
        } }
    }

    @Test("The overall timeout ends the wait with the job's id, without resubmitting")
    func overallTimeout() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runflowQwenImageEdit2511
            let policy = WaitPolicy(firstInterval: 0.1, maxInterval: 0.2, timeout: 0.8)
            let request = try build(profile, base: base, flow: .polling)
            // The job does not end while the test holds it: every poll finds it running.
            emulator.hold()
            let submitted = clock.now()
            do {
                _ = try await advancingClock(clock) {
                    try await client.perform(request, on: profile, poll: poller(profile, base), policy: policy)
                }
                Issue.record("the wait did not time out")
            } catch let error as ClientError {
                #expect(error.kind == .timedOut)
                #expect(error.message.contains("job run_") && error.message.contains("after 0.8 s"))
                #expect(error.message.contains("rather than submitting anew"))
            }
            #expect(abs(clock.now().timeIntervalSince(submitted) - 0.8) < 1e-3, "the wait ended at the timeout, on the client's clock")
            #expect(emulator.submissions(to: profile) == 1 && emulator.polls(of: profile) >= 1)
        } }
    }

    @Test("An unknown job id is reported, not resubmitted")
    func unknownJob() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runflowQwenImageEdit2511
            let request = try #require(RequestBuilder.poll(id: "run_gone", for: profile, apiKey: "test-key", baseURL: base))
            let error = await #expect(throws: ClientError.self) {
                _ = try await advancingClock(clock) { try await client.wait(for: "run_gone", request: request, on: profile, policy: fast) }
            }
            #expect(error?.message == "runflow-qwen-image-edit-2511: the endpoint no longer knows job run_gone (HTTP 404 when polled)")
            #expect(emulator.submissions(to: profile) == 0 && emulator.polls(of: profile) == 1)
        } }
    }

    /// Submits a Runflow callback job with a listener holding `listenerSecret`
    /// and an emulator signing with `senderSecret`. The client's clock moves
    /// only once the callback was delivered and answered: a poll can only be
    /// the fallback for a callback that did not wake the job.
    private func callbackJob(
        listenerSecret: String, senderSecret: String, policy: WaitPolicy,
        check: (JobResult, EditEmulator, EditClient, Int) async throws -> Void
    ) async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator(signingSecret: senderSecret) { emulator, base in
            let profile = ProviderProfile.runflowQwenImageEdit2511
            let signals = JobSignals()
            let listener = CallbackListener(profile: profile, port: 0, signingSecret: listenerSecret, signals: signals)
            try await whileRunning({ ready in try await listener.run { ready($0) } }) { port in
                var edit = EditRequest(prompt: "make it blue", images: [.bytes(try photo(400, 300), format: .jpeg, filename: "in.jpg")])
                edit.callbackURL = "http://127.0.0.1:\(port)/runflow"
                edit.metadata = ["file": "in.jpg"]
                let request = try build(profile, base: base, request: edit, flow: .callback)
                let delivered: @Sendable (ManualClock) async -> Void = { clock in
                    await emulator.waitForCallbacks(1, from: profile)
                    clock.advanceToNextDeadline()
                }
                let job = try await advancingClock(clock, by: delivered) {
                    try await client.perform(request, on: profile, poll: poller(profile, base), policy: policy, signals: signals)
                }
                // The emulator records a delivery once it has the listener's answer.
                await emulator.waitForCallbacks(1, from: profile)
                try await check(job, emulator, client, port)
            }
        } }
    }

    @Test("Runflow callback, signed: the verified payload ends the wait with no poll at all")
    func signedCallback() async throws {
        try await callbackJob(listenerSecret: "whsec-test", senderSecret: "whsec-test", policy: fast) { job, emulator, client, port in
            let profile = ProviderProfile.runflowQwenImageEdit2511
            #expect(job.signalled && job.polls == 0 && emulator.polls(of: profile) == 0)
            #expect(try ImageProbe.probe(data: try await client.fetch(try #require(job.images.first), from: profile, checks: ResultChecks(allowPrivateAddresses: true))).format == .png)
            let deliveries = emulator.callbacks()
            #expect(deliveries.count == 1 && deliveries.first?.status == 200)
            #expect(deliveries.first?.signature?.hasPrefix("t=") == true)
            let body = try firstBody(emulator, profile)
            #expect(body["callback_url"] as? String == "http://127.0.0.1:\(port)/runflow")
            #expect((body["metadata"] as? [String: String]) == ["file": "in.jpg"])
        }
    }

    @Test("A callback with a wrong signature is refused (401) and the job is found by polling instead")
    func forgedCallback() async throws {
        let policy = WaitPolicy(firstInterval: 0.1, fallbackInterval: 1.5, timeout: 30)
        try await callbackJob(listenerSecret: "whsec-test", senderSecret: "not-the-secret", policy: policy) { job, emulator, _, _ in
            #expect(!job.signalled && job.polls == 1 && job.images.count == 1)
            #expect(emulator.callbacks().map(\.status) == [401])
            #expect(emulator.submissions(to: .runflowQwenImageEdit2511) == 1)
        }
    }

    @Test("Oxen's event stream wakes the job; one poll fetches the result; a dropped stream reconnects")
    func serverSentEvents() async throws {
        // The clock never moves for the jobs: each is found only because its
        // event woke the wait (the fallback poll is 20 s of that clock away).
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.oxenQwenImageEdit2511
            let signals = JobSignals()
            let (connections, connected) = AsyncStream<Void>.makeStream()
            let events = try #require(RequestBuilder.events(for: profile, apiKey: "test-key", baseURL: base))
            let stream = EventStreamListener(client: client, request: events, profile: profile, signals: signals)
            try await whileRunning({ ready in
                await stream.run {
                    connected.yield()
                    ready(())
                }
            }) { _ in
                var opened = connections.makeAsyncIterator()
                _ = await opened.next()
                let job = try await client.perform(
                    try build(profile, base: base, flow: .serverSentEvents), on: profile, poll: poller(profile, base),
                    policy: fast, signals: signals)
                #expect(job.signalled && job.polls == 1 && emulator.polls(of: profile) == 1)
                #expect(emulator.bodies(sentTo: profile).count == 1)
                #expect(job.images.count == 1)

                // Dropped, the stream is opened again after a pause on the client's clock.
                emulator.closeEventStreams()
                await clock.waitForSleepers(1)
                clock.advanceToNextDeadline()
                _ = await opened.next()
                #expect(emulator.openEventStreams == 1)
                let second = try await client.perform(
                    try build(profile, base: base, flow: .serverSentEvents), on: profile, poll: poller(profile, base),
                    policy: fast, signals: signals)
                #expect(second.signalled && second.polls == 1)
            }
        } }
    }

    @Test("sync_mode: Runflow's outputs come back as data URIs and decode to the image")
    func syncMode() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runflowQwenImageEdit2511
            var edit = EditRequest(prompt: "make it blue", images: [.bytes(try photo(400, 300), format: .jpeg, filename: "in.jpg")])
            edit.syncMode = true
            edit.outputFormat = .webp
            let job = try await client.perform(
                try build(profile, base: base, request: edit, flow: .polling), on: profile, poll: poller(profile, base),
                policy: fast)
            guard case .inline(let bytes)? = job.images.first else { Issue.record("not inline: \(job.images)"); return }
            #expect(try ImageProbe.probe(data: bytes).format == .webp)
            let input = try firstBody(emulator, profile)["input"] as? [String: Any]
            #expect(input?["sync_mode"] as? Bool == true && input?["output_format"] as? String == "webp")
        } }
    }
}

@Suite("Signatures, event parsing, signals", .hangGuard)
struct NotificationPartsTests {
    let body = Data(#"{"run_id":"r1","status":"succeeded"}"#.utf8)

    @Test("Runflow-Signature: bare hex, sha256=HEX and t=,v1= (known HMAC-SHA256 values), refused when tampered or stale")
    func signatures() {
        let check = RunflowSignature(secret: "s3cret")
        // Reference values computed with Python's hmac module, over a body
        // completed at 1700000000 (2023-11-14T22:13:20Z).
        let body = Data(#"{"run_id":"r1","status":"succeeded","completed_at":"2023-11-14T22:13:20Z"}"#.utf8)
        let bare = "b732c93df86785aaa2b987b3e9b78ca31c56571a9fd539cc11786df7796d614e"
        let timed = "1f6f58fdf745440f98e19ceab59e025e5e94ac25615e7675e08469d4ccb9395d"
        let then = Date(timeIntervalSince1970: 1_700_000_000)
        let soon = then.addingTimeInterval(60)
        #expect(check.isValid(bare, body: body, now: soon))
        #expect(check.isValid("sha256=" + bare, body: body, now: soon))
        #expect(check.isValid("t=1700000000,v1=" + timed, body: body, now: soon))
        // Every form is held to the window: a replay an hour later is refused.
        for header in [bare, "sha256=" + bare, "t=1700000000,v1=" + timed] {
            #expect(!check.isValid(header, body: body, now: then.addingTimeInterval(3600)), "\(header)")
        }
        // A bare signature over a body that does not say when it was sent cannot be placed in time.
        let undated = Data(#"{"run_id":"r1","status":"succeeded"}"#.utf8)
        #expect(!check.isValid("401f1cf6fc8a8082d8f3f20065be1d033be8eb3548f7295326699113d2bbaddd", body: undated))
        #expect(!check.isValid(bare, body: body + Data(" ".utf8), now: soon))
        #expect(!check.isValid(String(bare.dropLast()) + "f", body: body, now: soon))
        #expect(!check.isValid(nil, body: body))
        #expect(!RunflowSignature(secret: "other").isValid(bare, body: body, now: soon))
        #expect(check.isValid(check.header(for: body), body: body))
    }

    @Test("The callback listener refuses over 1 MiB before verifying, holds signatures to the window, acts on a delivery once")
    func listenerLimits() async throws {
        let profile = ProviderProfile.runflowQwenImageEdit2511
        let signals = JobSignals()
        let listener = CallbackListener(profile: profile, port: 0, signingSecret: "whsec-test", signals: signals)
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 2 * CallbackListener.maxConcurrent
        // No request here has a deadline that a loaded machine could reach
        // first: the test's time limit bounds a hang.
        let patience = TimeAmount.minutes(10)
        try await withHTTPClient(configuration) { http in try await whileRunning({ ready in try await listener.run { ready($0) } }) { port in
            func delivery(_ body: HTTPClientRequest.Body, signature: String? = nil) -> HTTPClientRequest {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/runflow")
                request.method = .POST
                if let signature { request.headers.add(name: "Runflow-Signature", value: signature) }
                request.body = body
                return request
            }
            func post(_ body: Data, signature: String?, announced: Bool = true) async throws -> Int {
                // Chunked when not announced: no length to refuse it by; the read stops at the cap.
                let chunks = stride(from: 0, to: body.count, by: 64 << 10).map { ByteBuffer(data: body[$0..<min(body.count, $0 + (64 << 10))]) }
                let sent: HTTPClientRequest.Body = announced ? .bytes(ByteBuffer(data: body)) : .stream(chunks.async, length: .unknown)
                return Int(try await http.execute(delivery(sent, signature: signature), timeout: patience).status.code)
            }
            let signer = RunflowSignature(secret: "whsec-test")
            let big = Data(repeating: 0x20, count: CallbackListener.maxBodyBytes + 1)
            let announced = try await post(big, signature: signer.header(for: big))
            let chunked = try await post(big, signature: signer.header(for: big), announced: false)
            #expect(announced == 413 && chunked == 413)

            // A delivery is acted on before it is answered: once the answer
            // is in, what was posted for the job is there, and nothing more comes.
            let body = Data(#"{"event":"run.completed","run_id":"r-1","status":"succeeded","output":null}"#.utf8)
            let stale = try await post(body, signature: signer.header(for: body, at: Date().addingTimeInterval(-3600)))
            #expect(stale == 401)
            #expect(await signals.wait(for: "r-1", upTo: 0) == nil, "a stale delivery is not acted on")
            let header = signer.header(for: body)
            let fresh = try await post(body, signature: header)
            #expect(fresh == 200)
            #expect(await signals.wait(for: "r-1", upTo: 0) == JobSignal(payload: body))
            // The same delivery again (a replay, or a retry after a lost answer): acknowledged, not acted on.
            let replay = try await post(body, signature: header)
            #expect(replay == 200)
            #expect(await signals.wait(for: "r-1", upTo: 0) == nil)

            // One delivery more than it takes at once, each stalled mid-body:
            // exactly one is turned away unread, and answered while the others
            // still wait for their bodies; they are all answered once those end.
            var stalled: [AsyncStream<ByteBuffer>.Continuation] = []
            let answers = try await withThrowingTaskGroup(of: Int.self) { group in
                defer { for continuation in stalled { continuation.finish() } }
                for _ in 0...CallbackListener.maxConcurrent {
                    let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
                    continuation.yield(ByteBuffer(string: "{"))
                    stalled.append(continuation)
                    let request = delivery(.stream(stream, length: .unknown))
                    group.addTask { Int(try await http.execute(request, timeout: patience).status.code) }
                }
                var answers = [try await group.next()]
                for continuation in stalled { continuation.finish() }
                for try await answer in group { answers.append(answer) }
                return answers
            }
            #expect(answers.first == 503, "\(answers)")
            #expect(answers.dropFirst().allSatisfy { $0 == 401 } && answers.count == CallbackListener.maxConcurrent + 1, "\(answers)")
            let after = try await post(Data("{}".utf8), signature: nil)
            #expect(after == 401, "a place is free again")
        } }
    }

    @Test("A replayed callback is the same delivery however its signature is spelled: acknowledged, never acted on twice")
    func replaysJudgedBySignedContent() async throws {
        let profile = ProviderProfile.runflowQwenImageEdit2511
        let signals = JobSignals()
        let listener = CallbackListener(profile: profile, port: 0, signingSecret: "whsec-replay", signals: signals)
        let signer = RunflowSignature(secret: "whsec-replay")
        let key = SymmetricKey(data: Data("whsec-replay".utf8))
        func hex(_ data: Data) -> String {
            Data(HMAC<SHA256>.authenticationCode(for: data, using: key)).map { String(format: "%02x", $0) }.joined()
        }
        try await withHTTPClient(HTTPClient.Configuration()) { http in try await whileRunning({ ready in try await listener.run { ready($0) } }) { port in
            func post(_ body: Data, _ signature: String) async throws -> Int {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/runflow")
                request.method = .POST
                request.headers.add(name: "Runflow-Signature", value: signature)
                request.body = .bytes(ByteBuffer(data: body))
                return Int(try await http.execute(request, timeout: .minutes(10)).status.code)
            }
            // The timestamped form, then the same signed delivery spelled otherwise.
            let timed = Data(#"{"event":"run.completed","run_id":"r-timed","status":"succeeded","output":null}"#.utf8)
            let header = signer.header(for: timed)
            let t = String(header.split(separator: ",")[0])
            let code = String(try #require(header.split(separator: "=").last))
            #expect(try await post(timed, header) == 200)
            #expect(await signals.wait(for: "r-timed", upTo: 0) == JobSignal(payload: timed))
            let other = String(repeating: "0", count: 64)
            for spelling in ["\(t),v1=\(code.uppercased())", "\(t), v1=\(code)", " \(t) ,  v1=\(code) ", "\(t),v1=\(other),v1=\(code)", "v1=\(code),\(t)"] {
                #expect(signer.isValid(spelling, body: timed), "\(spelling) is a valid signature")
                #expect(try await post(timed, spelling) == 200, "\(spelling)")
                #expect(await signals.wait(for: "r-timed", upTo: 0) == nil, "\(spelling) was acted on again")
            }

            // The bare forms, dated by the body they sign.
            let stamp = ISO8601DateFormatter().string(from: Date())
            let bare = Data(#"{"run_id":"r-bare","status":"succeeded","completed_at":"\#(stamp)"}"#.utf8)
            let digest = hex(bare)
            #expect(try await post(bare, digest) == 200)
            #expect(await signals.wait(for: "r-bare", upTo: 0) == JobSignal(payload: bare))
            for spelling in ["sha256=" + digest, digest.uppercased(), "sha256=" + digest.uppercased(), " \(digest) "] {
                #expect(try await post(bare, spelling) == 200, "\(spelling)")
                #expect(await signals.wait(for: "r-bare", upTo: 0) == nil, "\(spelling) was acted on again")
            }
            // Another delivery (another body) is acted on.
            let next = Data(#"{"run_id":"r-bare","status":"failed","completed_at":"\#(stamp)"}"#.utf8)
            #expect(try await post(next, "sha256=" + hex(next)) == 200)
            #expect(await signals.wait(for: "r-bare", upTo: 0) == JobSignal(payload: next))
        } }
    }

    @Test("Polls are planned from the durations seen: once just after a steady duration, from the earliest end through a varying one, then less often")
    func pollPlanning() async throws {
        let planner = PollPlanner()
        let policy = WaitPolicy()
        let cold = (0..<50).map { _ in planner.pause(endpoint: "e", elapsed: 0, cold: 1, policy: policy) }
        #expect(cold.allSatisfy { (0.67...1.33).contains($0) }, "nothing learned: the cold schedule, spread: \(cold)")
        #expect(Set(cold).count > 1, "jobs sent together must not poll in lockstep")
        #expect(planner.pause(endpoint: "e", elapsed: 0, cold: 1, policy: WaitPolicy(fixedInterval: 0.3)) == 0.3)

        // A steady endpoint seen through loose brackets (the cold schedule's)
        // and tight ones: every job was seen running until 3.9 s and found
        // done by 4.0 s, so it takes between the two.
        planner.record(endpoint: "e", low: 2.5, high: 4.75)
        for _ in 0..<5 { planner.record(endpoint: "e", low: 3.9, high: 4.0) }
        let expected = try #require(planner.expected(endpoint: "e"))
        #expect(abs(expected.early - 3.9) < 1e-9 && abs(expected.late - 4.0) < 1e-9, "\(expected)")
        let step = 0.03 * 3.95
        for _ in 0..<20 {
            let first = planner.pause(endpoint: "e", elapsed: 0.1, cold: 1, policy: policy)
            #expect(abs(first - (4.0 + 0.03 * 4.0 / 4 - 0.1)) <= step / 4 + 1e-9, "one poll just after the end: \(first)")
            let near = planner.pause(endpoint: "e", elapsed: 4.05, cold: 1, policy: policy)
            // A step of the steady duration (3% of 4.0 s), with the jitter's quarter step.
            #expect(abs(near - 0.03 * 4.0) <= step / 4 + 1e-9, "still running just after: soon again (\(near))")
            let late = planner.pause(endpoint: "e", elapsed: 12, cold: 1, policy: policy)
            #expect(abs(late - (12 - 4.75) / 2) <= step / 4 + 1e-9, "later than any job seen: less often (\(late))")
        }
        #expect(planner.expected(endpoint: "other") == nil, "endpoints learn apart")

        // Durations reported exactly and within a step of each other: one poll after the latest.
        for duration in [4.0, 4.01, 4.02, 4.03] { planner.record(endpoint: "exact", low: duration, high: duration) }
        let once = planner.pause(endpoint: "exact", elapsed: 0, cold: 1, policy: policy)
        #expect(once > 4.02 && once < 4.1, "\(once)")

        // Durations that vary from 2 to 8 s: the first poll just before the
        // earliest, then often through the spread, soon again just after
        // the latest, and less and less often beyond.
        for duration in stride(from: 2.0, through: 8.0, by: 0.5) {
            planner.record(endpoint: "spread", low: duration - 0.1, high: duration + 0.1)
        }
        let spread = try #require(planner.expected(endpoint: "spread"))
        #expect(spread.early <= 2.6 && spread.late >= 7.4, "\(spread)")
        let spreadStep = 0.03 * (spread.early + spread.late) / 2
        let firstOfSpread = planner.pause(endpoint: "spread", elapsed: 0, cold: 1, policy: policy)
        #expect(firstOfSpread < spread.early && firstOfSpread > spread.early - 2 * spreadStep, "\(firstOfSpread)")
        let through = planner.pause(endpoint: "spread", elapsed: 5, cold: 1, policy: policy)
        #expect(through <= (spread.late - spread.early) / 12 + spreadStep, "\(through)")
        let beyond = planner.pause(endpoint: "spread", elapsed: 20, cold: 1, policy: policy)
        #expect(beyond > 5, "\(beyond)")

        // Polls to one endpoint: as many as the cap at once, then no more
        // than the cap in any second (of the planner's clock).
        let clock = ManualClock()
        let admitting = PollPlanner(clock: clock)
        let start = clock.now()
        let admitted = try await advancingClock(clock) {
            var times: [Double] = []
            for _ in 0..<30 {
                try await admitting.admit(endpoint: "e", perSecond: 20)
                times.append(clock.now().timeIntervalSince(start))
            }
            return times
        }
        #expect(admitted.prefix(20).allSatisfy { $0 == 0 }, "the first 20 polls were held back: \(admitted)")
        #expect(admitted.dropFirst(20).allSatisfy { $0 == 1 }, "the next ones left as soon as the window allowed: \(admitted)")
        #expect((20..<30).allSatisfy { admitted[$0] - admitted[$0 - 20] >= 1 }, "more than 20 polls in a second: \(admitted)")
    }

    @Test("A polled client learns its endpoint: twelve jobs that each end 4 s after submission take at most 3 polls each on average")
    func pollsLearned() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.oxenQwenImageEdit2511  // reports no durations: they are learned from polls alone
            let request = try build(profile, base: base, flow: .polling)
            var polls: [Int] = []
            for number in 1...12 {
                // The job is held until the clock reaches 4 s after its
                // submission; time moves on from there only once it has ended.
                emulator.hold()
                let ends = clock.now().addingTimeInterval(4)
                let job = try await advancingClock(clock, by: { clock in
                    clock.advance(by: 0.01)
                    if clock.now() >= ends {
                        emulator.release()
                        await emulator.waitForEndedJobs(number, of: profile)
                    }
                }) {
                    try await client.perform(request, on: profile, poll: poller(profile, base))
                }
                polls.append(job.polls)
            }
            #expect(polls.reduce(0, +) == emulator.polls(of: profile))
            #expect(polls.reduce(0, +) <= 3 * 12, "polls per job: \(polls)")
            #expect(polls.suffix(6).allSatisfy { $0 <= 2 }, "a job like those before it is found at its end: \(polls)")
        } }
    }

    @Test("A polled run counts its polls alike in sidecars, the ledger and qie status")
    func pollsCounted() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for index in 1...12 { try write(96 + index, 64, to: root + "/in/\(index).jpg") }
        try await withEmulator { emulator, base in
            var options = testOptions(.runflowQwenImageEdit2511, base: base)
            options.timeouts.pollInterval = nil  // planned
            let run = try await runFolder(root, options: options) { $0.concurrency = 4 }
            #expect(run.summary.batch.written == 12)
            let polls = emulator.polls(of: .runflowQwenImageEdit2511)
            let sidecarPolls = run.done.reduce(0) { $0 + $1.result.polls }
            #expect(sidecarPolls == polls && polls >= 12, "\(polls) polls for 12 jobs, \(sidecarPolls) in sidecars")
            let status = try await EditRun.status(folder: root + "/out")
            #expect(status.summary.polls == polls)
        }
    }

    @Test("Event stream parsing across chunk boundaries, CRLF, comments and multi-line data")
    func eventParsing() throws {
        var parser = EventStreamParser()
        let text = ": hello\r\n\r\nevent: media_generation_completed\r\ndata: {\"generation_id\":\r\ndata: \"g1\"}\r\n\r\ndata: plain\n\n"
        var events: [EventStreamParser.Event] = []
        let bytes = Array(text.utf8)
        for chunk in stride(from: 0, to: bytes.count, by: 7) {
            events += try parser.feed(bytes[chunk..<min(chunk + 7, bytes.count)])
        }
        #expect(events == [
            .init(name: "media_generation_completed", data: "{\"generation_id\":\n\"g1\"}"),
            .init(name: "message", data: "plain"),
        ])
    }

    @Test(
        "A signal that arrives before its waiter is kept; one posted while it waits wakes it; a wait without one ends with nil at its deadline")
    func signals() async {
        let signals = JobSignals()
        let clock = ManualClock()
        signals.post("early", JobSignal(payload: body))
        #expect(await signals.wait(for: "early", upTo: 5, clock: clock) == JobSignal(payload: body))

        async let never = signals.wait(for: "never", upTo: 5, clock: clock)
        await clock.waitForSleepers(1)
        clock.advance(by: 4)
        #expect(clock.sleeperCount == 1, "the wait ended before its deadline")
        clock.advance(by: 1)
        #expect(await never == nil)

        // A waiter is registered before it sleeps: once it sleeps, a post is its.
        async let late = signals.wait(for: "late", upTo: 5, clock: clock)
        await clock.waitForSleepers(1)
        signals.post("late", JobSignal(payload: nil))
        #expect(await late == JobSignal(payload: nil))
        #expect(clock.sleeperCount == 0, "the wait's deadline outlived it")
        #expect(await signals.wait(for: "late", upTo: 0, clock: clock) == nil, "a signal handed to a waiter is not kept as well")
    }
}
