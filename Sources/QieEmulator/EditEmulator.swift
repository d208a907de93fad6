import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import QieImaging
import QieProviders
import Synchronization

/// What the emulated edit does to the first input image, besides bringing it
/// to the endpoint's output size and format.
public enum EmulatedEffect: String, Sendable, CaseIterable {
    /// Nothing: the result looks like the input.
    case none
    /// The photographic negative, so results can be told from inputs (masks, restores).
    case negative
}

/// A failure the emulator plays instead of answering a request normally.
public enum EmulatedFault: Sendable, Equatable {
    /// An HTTP error status with the endpoint's error shape.
    case status(Int)
    /// 429 with a `Retry-After` of this many seconds.
    case tooManyRequests(retryAfter: Int)
    /// 503 with a `Retry-After` of this many seconds (not processed: safe to send again).
    case unavailable(retryAfter: Int)
    /// HTTP 200 with a body that is not valid JSON.
    case malformedJSON
    /// A 502 HTML page, as a proxy in front of the endpoint would send.
    case htmlErrorPage
    /// A success whose result URL answers 404 (expired).
    case expiredResult
    /// A normal answer (a place holder, so later faults land on later submissions).
    case normal
    /// A normal answer, this many seconds after the submission instead of the latency.
    case delayed(seconds: Int)
    /// The connection is closed in the middle of the answer.
    case dropConnection
    /// A synchronous submission is accepted as a job still running (RunPod's
    /// `IN_PROGRESS` with an id); the job ends later and is found by polling.
    case acceptedPending
    /// The job is accepted and then ends failed with this message.
    case jobFailure(String)
    /// A synchronous success whose reported cost is this JSON value (RunPod's `output.cost`).
    case reportedCost(String)
    /// A success whose result is served this many bytes a second.
    case slowResult(bytesPerSecond: Int)
    /// A success whose result URL redirects `hops` times within the
    /// emulator, the last hop to `location` (for example a unix socket).
    case redirectedResult(hops: Int, location: String)
    /// A success whose answer lists the result URL `count` times (where the
    /// endpoint's answer holds a list).
    case manyResults(Int)
    /// A success whose result URL serves a PNG signature followed by this
    /// many bytes, streamed with no length announced.
    case hugeResult(bytes: Int)
    /// A success whose result is at this address instead of the emulator's.
    case resultAddress(String)
    /// A job whose end is announced on the event stream after an event of
    /// this many bytes of data (as one `data:` line when `inOneLine`, else
    /// as lines of 64 KiB), streamed as the client reads it.
    case oversizedEvent(bytes: Int, inOneLine: Bool)
    /// A job that stays in the queue (no worker takes it) until it is
    /// cancelled or forgotten.
    case staysQueued
}

/// A local server that speaks every documented wire format strictly: RunPod
/// `runsync` (both endpoints), Runflow's runs with polling and signed
/// callbacks, Oxen's synchronous edit, queue and event stream, and
/// Lumenfall's multipart edit. It rejects what the real endpoint would (wrong
/// or missing bearer token, unknown field, wrong enum, unsupported size, too
/// many images, wrong content type) with that endpoint's error shape, and
/// answers with a real image made from the input at the size the endpoint
/// would produce, after `latency`.
public final class EditEmulator: Sendable {
    /// The bearer token every emulated endpoint accepts.
    public let apiKey: String
    /// Time from submission to result.
    public let latency: Duration
    /// Runflow's signing secret: callbacks carry `Runflow-Signature` when set.
    public let signingSecret: String?
    /// What the emulated edit does to the input.
    public let effect: EmulatedEffect
    /// How long finished jobs and result files are kept (seconds), as a real
    /// endpoint's results expire; older ones are forgotten.
    public let retention: Double
    /// When set, each submission's latency is drawn uniformly between
    /// `latency` and this (and logged as `latency SECONDS`).
    public let latencyMax: Duration?
    /// When set, every accepted submission's body is written to this folder
    /// (`N.body`), with one line per body in `index.jsonl` (path, content
    /// type, file), so a benchmark can replay exactly what a client sent.
    public let recordBodies: String?

    /// A job, as its host describes it, and the endpoint it was sent to.
    struct Job {
        var profile: ProviderProfile
        var job: EmulatedJob
        /// Held in the queue until cancelled (`EmulatedFault.staysQueued`).
        var staysQueued = false
    }

    /// A result file and how it is served.
    struct StoredFile {
        enum Serving { case normal, slow(Int), huge(Int), redirect(String) }
        var data: Data
        var type: String
        var createdAt: Date
        var serving: Serving = .normal
    }

    /// What the emulator counts, per endpoint, for tests to wait on.
    enum Counted: Hashable, Sendable {
        /// Submissions received, faults and rejections included.
        case submissions
        /// Jobs that ended, done or failed.
        case endedJobs
        /// Callbacks delivered (whatever the receiver answered).
        case deliveries
        /// Event streams opened.
        case openedEventStreams
        /// Event streams ended (closed by the client or the emulator).
        case endedEventStreams
        /// Cancels received for a known job.
        case cancels
        /// Status polls received.
        case polls
    }

    /// What an event stream is sent.
    enum StreamItem: Sendable {
        /// Text as it is.
        case text(String)
        /// An event of this many bytes of data (see `EmulatedFault.oversizedEvent`).
        case oversized(bytes: Int, inOneLine: Bool)
    }

    /// Counts by what and endpoint, with the tasks waiting for a count.
    struct Tally {
        struct Key: Hashable {
            var what: Counted
            var profile: String
        }

        private struct Watcher {
            var key: Key
            var count: Int
            var continuation: CheckedContinuation<Void, Never>
        }

        private var counts: [Key: Int] = [:]
        private var watchers: [UInt64: Watcher] = [:]
        private var lastToken: UInt64 = 0

        /// How many of `what` were counted for `profile`.
        subscript(_ what: Counted, _ profile: String) -> Int { counts[Key(what: what, profile: profile)] ?? 0 }

        /// Counts one `what` for `profile`; returns the watchers that count satisfies.
        mutating func count(_ what: Counted, _ profile: String) -> [CheckedContinuation<Void, Never>] {
            let key = Key(what: what, profile: profile)
            counts[key, default: 0] += 1
            let seen = counts[key] ?? 0
            let ready = watchers.filter { $0.value.key == key && seen >= $0.value.count }
            for token in ready.keys { watchers[token] = nil }
            return ready.values.map(\.continuation)
        }

        /// A token for the next watcher.
        mutating func token() -> UInt64 {
            lastToken += 1
            return lastToken
        }

        /// Keeps `continuation` as `token` until `count` of `what` are counted
        /// for `profile`; false (and not kept) when they already are.
        mutating func watch(
            _ what: Counted, _ profile: String, count: Int, token: UInt64, _ continuation: CheckedContinuation<Void, Never>
        ) -> Bool {
            guard self[what, profile] < count else { return false }
            watchers[token] = Watcher(key: Key(what: what, profile: profile), count: count, continuation: continuation)
            return true
        }

        /// Stops watching for `token`: its continuation, when it was kept.
        mutating func unwatch(_ token: UInt64) -> CheckedContinuation<Void, Never>? {
            watchers.removeValue(forKey: token)?.continuation
        }
    }

    struct State {
        var files: [String: StoredFile] = [:]
        var counted = Tally()
        var submitting: [String: Int] = [:]
        var mostSubmitting: [String: Int] = [:]
        var polls: [String: Int] = [:]
        var cancels: [String: Int] = [:]
        var faults: [EmulatedFault] = []
        var pollFaults: [EmulatedFault] = []
        var received: [String: [Data]] = [:]
        var jobs: [String: Job] = [:]
        var streams: [UUID: AsyncStream<StreamItem>.Continuation] = [:]
        var eventStreamBytes = 0
        var resultRequests = 0
        var callbacks: [(status: Int, signature: String?)] = []
        var port = 0
        var host = "127.0.0.1"
        var recorded = 0
        /// While set, answers and job ends wait here for `release()`.
        var held: [CheckedContinuation<Void, Never>]? = nil
        /// Tests waiting for as many answers or jobs to be held.
        var heldWatchers: [(count: Int, waiter: CheckedContinuation<Void, Never>)] = []
        /// Submissions waiting for their job to end, by job id.
        var endWaiters: [String: [UUID: CheckedContinuation<Void, Never>]] = [:]
    }

    let state = Mutex(State())

    /// Called with one line per request answered (`POST /path -> 201`).
    let requestLog: (@Sendable (String) -> Void)?

    /// An emulator that accepts `apiKey`, answers after `latency`, signs
    /// callbacks with `signingSecret` when set, keeps finished jobs and result
    /// files for `retention` seconds (latencies drawn up to `latencyMax` and
    /// bodies recorded to `recordBodies` when set), and passes one line per answered
    /// request to `requestLog`.
    public init(
        apiKey: String = "emulator-key", latency: Duration = .zero, signingSecret: String? = nil,
        effect: EmulatedEffect = .none, retention: Double = 3600, latencyMax: Duration? = nil, recordBodies: String? = nil,
        requestLog: (@Sendable (String) -> Void)? = nil
    ) {
        self.effect = effect
        self.retention = retention
        self.latencyMax = latencyMax
        self.recordBodies = recordBodies
        self.apiKey = apiKey
        self.latency = latency
        self.signingSecret = signingSecret
        self.requestLog = requestLog
    }

    /// Queues faults, played one per submission before normal answers resume.
    public func inject(_ faults: [EmulatedFault]) { state.withLock { $0.faults += faults } }

    /// Queues faults played one per status poll.
    public func injectIntoPolls(_ faults: [EmulatedFault]) { state.withLock { $0.pollFaults += faults } }

    /// Submissions received for an endpoint, faults and rejections included.
    public func submissions(to profile: ProviderProfile) -> Int { state.withLock { $0.counted[.submissions, profile.id] } }

    /// Returns once `count` submissions to `profile` have arrived (faults
    /// and rejections included): a test waits on this event, not on time.
    /// Returns at once when the task is cancelled.
    public func waitForSubmissions(_ count: Int, to profile: ProviderProfile) async {
        await waitFor(count, .submissions, of: profile)
    }

    /// Returns once `count` jobs of `profile` have ended (done or failed):
    /// a poll from then on finds the job's end, however slow the machine.
    /// Returns at once when the task is cancelled.
    public func waitForEndedJobs(_ count: Int, of profile: ProviderProfile) async {
        await waitFor(count, .endedJobs, of: profile)
    }

    /// Returns once `count` callbacks for `profile`'s jobs have been
    /// delivered and their answers recorded (see `callbacks()`). Returns at
    /// once when the task is cancelled.
    public func waitForCallbacks(_ count: Int, from profile: ProviderProfile) async {
        await waitFor(count, .deliveries, of: profile)
    }

    /// Returns once `count` of `what` are counted for `profile`, or at once
    /// when the task is cancelled.
    private func waitFor(_ count: Int, _ what: Counted, of profile: ProviderProfile) async {
        let token = state.withLock { $0.counted.token() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLock { state in
                    !Task.isCancelled && state.counted.watch(what, profile.id, count: count, token: token, continuation)
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.counted.unwatch(token) }?.resume()
        }
    }

    /// Counts one `what` of `profile` and wakes whoever waited for that count.
    private func count(_ what: Counted, of profile: ProviderProfile) {
        for watcher in state.withLock({ $0.counted.count(what, profile.id) }) { watcher.resume() }
    }

    /// Holds every synchronous result and every job's end until `release()`
    /// (refusals, faults, a job's acceptance, polls and result files are
    /// answered at once): a test decides when the endpoint is done, whatever
    /// the machine's speed.
    public func hold() { state.withLock { state in if state.held == nil { state.held = [] } } }

    /// Lets held answers and jobs go on, and stops holding.
    public func release() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.held = nil }
            return state.held ?? []
        }
        for waiter in waiting { waiter.resume() }
    }

    /// Lets the answer or job held longest go on, and goes on holding the
    /// others and any that come: a test decides the order in which results
    /// come out. False when none is held.
    @discardableResult
    public func releaseOne() -> Bool {
        let first = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let held = state.held, !held.isEmpty else { return nil }
            return state.held?.removeFirst()
        }
        first?.resume()
        return first != nil
    }

    /// Returns once `count` answers or jobs are held at the same moment
    /// (see `hold()`): every one of them is done but for being let go.
    public func waitForHeld(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let reached = state.withLock { state -> Bool in
                guard (state.held?.count ?? 0) < count else { return true }
                state.heldWatchers.append((count, continuation))
                return false
            }
            if reached { continuation.resume() }
        }
    }

    /// Waits here while the emulator is held.
    private func passHold() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (free, woken) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                guard state.held != nil else { return (true, []) }
                state.held?.append(continuation)
                let now = state.held?.count ?? 0
                let woken = state.heldWatchers.filter { $0.count <= now }.map(\.waiter)
                state.heldWatchers.removeAll { $0.count <= now }
                return (false, woken)
            }
            for watcher in woken { watcher.resume() }
            if free { continuation.resume() }
        }
    }

    /// The most submissions to `profile` that were being answered at the same
    /// moment (1 when a client sent them one after another).
    public func mostConcurrentSubmissions(to profile: ProviderProfile) -> Int {
        state.withLock { $0.mostSubmitting[profile.id] ?? 0 }
    }

    /// Status polls received for an endpoint.
    public func polls(of profile: ProviderProfile) -> Int { state.withLock { $0.polls[profile.id] ?? 0 } }

    /// Waits until `count` status polls of `profile`'s jobs were received.
    public func waitForPolls(_ count: Int, of profile: ProviderProfile) async {
        await waitFor(count, .polls, of: profile)
    }

    /// Cancels received for known jobs of `profile`.
    public func cancels(of profile: ProviderProfile) -> Int { state.withLock { $0.cancels[profile.id] ?? 0 } }

    /// Waits until `count` cancels of `profile`'s jobs were received.
    public func waitForCancels(_ count: Int, of profile: ProviderProfile) async {
        await waitFor(count, .cancels, of: profile)
    }

    /// Jobs created for an endpoint (submissions that were accepted).
    public func jobs(of profile: ProviderProfile) -> Int { state.withLock { $0.jobs.values.filter { $0.profile.id == profile.id }.count } }

    /// Request bodies received for an endpoint, in order.
    public func bodies(sentTo profile: ProviderProfile) -> [Data] { state.withLock { $0.received[profile.id] ?? [] } }

    /// Callbacks delivered: the HTTP status each got and the signature sent.
    public func callbacks() -> [(status: Int, signature: String?)] { state.withLock { $0.callbacks } }

    /// Event streams open now.
    public var openEventStreams: Int { state.withLock { $0.streams.count } }

    /// Returns once `count` event streams of `profile` have been opened.
    /// Returns at once when the task is cancelled.
    public func waitForOpenedEventStreams(_ count: Int, of profile: ProviderProfile) async {
        await waitFor(count, .openedEventStreams, of: profile)
    }

    /// Returns once `count` event streams of `profile` have ended, closed by
    /// the client or by the emulator: what they were sent is counted by then
    /// (`eventStreamBytes`). Returns at once when the task is cancelled.
    public func waitForEndedEventStreams(_ count: Int, of profile: ProviderProfile) async {
        await waitFor(count, .endedEventStreams, of: profile)
    }

    /// Bytes the event streams took (each write the connection accepted).
    public var eventStreamBytes: Int { state.withLock { $0.eventStreamBytes } }

    /// Requests for result files (`/files/...`), served or not.
    public var resultRequests: Int { state.withLock { $0.resultRequests } }

    /// Ends every open event stream (as a dropped connection would).
    public func closeEventStreams() {
        let streams = state.withLock { state in
            defer { state.streams = [:] }
            return Array(state.streams.values)
        }
        for stream in streams { stream.finish() }
    }

    /// The endpoints emulated: all of the catalog.
    public static var profiles: [ProviderProfile] { ProviderCatalog.all }

    /// Serves on `host`:`port` (127.0.0.1; port 0 picks a free one) until
    /// the task is cancelled; result URLs name `host`. `logger` receives the
    /// server's own messages (none by default).
    public func run(
        host: String = "127.0.0.1", port: Int = 0,
        logger: Logger = Logger(label: "qie-emulator", factory: { _ in SwiftLogNoOpLogHandler() }),
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        state.withLock { $0.host = host.contains(":") ? "[\(host)]" : host }
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "qie-emulator"),
            onServerRunning: { [self] channel in
                let bound = channel.localAddress?.port ?? port
                self.state.withLock { $0.port = bound }
                await onRunning(bound)
            },
            logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            group.addTask { [self] in
                // Event streams get a comment every 10 s, as proxies expect.
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(10))
                    self.broadcast(.text(": keep-alive\n\n"))
                }
            }
            try await group.next()
            group.cancelAll()
        }
        closeEventStreams()
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        if let requestLog { router.add(middleware: RequestLine(write: requestLog)) }
        for host in ProviderCatalog.hosts {
            for (path, body) in host.emulatedDocuments(secret: signingSecret) {
                let document = jsonData(body)
                router.get(RouterPath(path)) { _, _ in
                    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: document)))
                }
            }
        }
        for profile in Self.profiles {
            let synchronous = profile.flow.contains(.synchronous)
            // Endpoints that share a submit route are told apart by the model the body names.
            let sharing = Self.profiles.filter { $0.routes.submit == profile.routes.submit }
            if sharing.first?.id == profile.id {
                router.post(RouterPath(ProviderProfile.Routes.path(onOneAddress: profile.routes.submit))) { [self] request, _ in
                    try await self.submit(request, profile: profile, asJob: !synchronous, sharing: sharing)
                }
            }
            if let enqueue = profile.routes.enqueue {
                router.post(RouterPath(enqueue)) { [self] request, _ in
                    try await self.submit(request, profile: profile, asJob: true, enqueued: true)
                }
            }
            // A status or cancel route several endpoints share is served
            // once, for the endpoint the job was sent to.
            if let poll = profile.routes.poll, !Self.profiles.prefix(while: { $0.id != profile.id }).contains(where: { $0.routes.poll == poll }) {
                let sharing = Self.profiles.filter { $0.routes.poll == poll }
                router.get(RouterPath(poll.replacingOccurrences(of: "{id}", with: ":id"))) { [self] request, context in
                    let id = context.parameters.get("id") ?? ""
                    return try await self.poll(request, id: id, profile: self.owner(of: id, among: sharing))
                }
            }
            if let cancel = profile.routes.cancel, !Self.profiles.prefix(while: { $0.id != profile.id }).contains(where: { $0.routes.cancel == cancel }) {
                let sharing = Self.profiles.filter { $0.routes.cancel == cancel }
                router.on(
                    RouterPath(cancel.replacingOccurrences(of: "{id}", with: ":id")),
                    method: HTTPRequest.Method(profile.routes.cancelMethod) ?? .post
                ) { [self] request, context in
                    let id = context.parameters.get("id") ?? ""
                    return try await self.cancel(request, id: id, profile: self.owner(of: id, among: sharing))
                }
            }
            if let result = profile.routes.result {
                router.get(RouterPath(result.replacingOccurrences(of: "{id}", with: ":id"))) { [self] request, context in
                    try await self.result(request, id: context.parameters.get("id") ?? "", profile: profile)
                }
            }
            if let events = profile.routes.events {
                router.get(RouterPath(events)) { [self] request, _ in self.events(request, profile: profile) }
            }
        }
        router.get("/files/:name") { [self] _, context in
            let name = context.parameters.get("name") ?? ""
            let stored = self.state.withLock { state in
                state.resultRequests += 1
                return state.files[name]
            }
            guard let file = stored else {
                return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: "expired or unknown file")))
            }
            return Self.serve(file)
        }
        return router
    }

    /// The endpoint among `profiles` (which share a route) that job `id` was sent to; the first when none.
    private func owner(of id: String, among profiles: [ProviderProfile]) -> ProviderProfile {
        let sent = state.withLock { $0.jobs[id]?.profile.id }
        return profiles.first { $0.id == sent } ?? profiles[0]
    }

    // MARK: Submissions

    private func submit(
        _ request: Request, profile: ProviderProfile, asJob: Bool, enqueued: Bool = false, sharing: [ProviderProfile] = []
    ) async throws -> Response {
        let began = ContinuousClock.now
        // What the submission's headers ask: a wait for the result, a deadline.
        let terms = profile.host.emulatedTerms(header: { HTTPField.Name($0).flatMap { request.headers[$0] } }, for: profile)
        let asJob = asJob || terms.wait != nil
        // The key is checked before the body is read, as a real endpoint's
        // gateway does: an unauthenticated caller cannot make it buffer anything.
        guard authorized(request, profile) else {
            count(.submissions, of: profile)
            if !asJob { try await Task.sleep(until: began + latency) }
            return errorResponse(profile, status: .unauthorized, "Unauthorized: missing or invalid bearer token")
        }
        // The endpoint's published payload limit (RunPod: 10 MB on /run, 20 MB on runsync).
        let limit = profile.requestLimits.limit(for: enqueued ? .polling : .synchronous)
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit ?? 64 * 1024 * 1024)
        } catch {
            count(.submissions, of: profile)
            return errorResponse(
                profile, status: .contentTooLarge,
                "Payload too large: the request body exceeds \(limit.map { "\($0 / 1_000_000) MB" } ?? "the limit")")
        }
        let data = Data(buffer: body)
        let profile = Self.profile(namedIn: data, among: sharing) ?? profile
        defer { state.withLock { $0.submitting[profile.id, default: 1] -= 1 } }
        let (fault, watchers) = state.withLock { state -> (EmulatedFault?, [CheckedContinuation<Void, Never>]) in
            let watchers = state.counted.count(.submissions, profile.id)
            state.submitting[profile.id, default: 0] += 1
            state.mostSubmitting[profile.id] = max(state.mostSubmitting[profile.id] ?? 0, state.submitting[profile.id] ?? 0)
            state.received[profile.id, default: []].append(data)
            return (state.faults.isEmpty ? nil : state.faults.removeFirst(), watchers)
        }
        for watcher in watchers { watcher.resume() }
        if let fault, let response = play(fault, profile: profile) {
            if !asJob { try await Task.sleep(until: began + latency) }
            return response
        }
        if let refusal = terms.refusal {
            return errorResponse(profile, status: .badRequest, refusal)
        }
        let edit: EmulatedRequest
        do {
            edit = try EmulatedRequest.parse(
                data, contentType: request.headers[.contentType] ?? "", profile: profile,
                query: request.uri.queryParameters.reduce(into: [:]) { $0[String($1.key)] = String($1.value) })
        } catch let error as EmulatorRejection {
            if !asJob { try await Task.sleep(until: began + latency) }
            return errorResponse(profile, status: error.status, error.message, param: error.param)
        }

        record(data, path: request.uri.path, contentType: request.headers[.contentType] ?? "")
        let delay: Duration
        if case .delayed(let seconds)? = fault {
            delay = .seconds(seconds)
            requestLog?("latency \(seconds).000")
        } else {
            delay = drawLatency()
        }
        if asJob || fault == .acceptedPending || fault == .staysQueued || fault.isJobFailure {
            let job = startJob(edit, profile: profile, began: began, latency: delay, fault: fault, deadline: terms.deadline)
            if let wait = terms.wait, wait > .zero {
                // Answered once the job ends, or as it stands when the wait is over.
                let now = await jobAfterWaiting(for: job.id, until: began + wait) ?? job
                return answer(profile.host.emulatedAcceptance(of: now, for: profile, enqueued: enqueued))
            }
            return answer(profile.host.emulatedAcceptance(of: job, for: profile, enqueued: enqueued))
        }
        // Synchronous: the images are made off the server's threads, within
        // the latency (a real endpoint's time includes its work).
        let outputs = try await Self.render(edit, effect: effect)
        try await Task.sleep(until: began + delay)
        await passHold()
        let (urls, inline) = publish(outputs, edit: edit, fault: fault)
        var cost: String? = nil
        if case .reportedCost(let value) = fault { cost = value }
        return success(profile, urls: urls, inline: inline, edit: edit, cost: cost)
    }

    /// The endpoint among those sharing a route whose model the JSON body names.
    private static func profile(namedIn body: Data, among sharing: [ProviderProfile]) -> ProviderProfile? {
        guard sharing.count > 1, let model = StrictJSON.object(body)?["model"] as? String else { return nil }
        return sharing.first { $0.model == model }
    }

    private static func render(_ edit: EmulatedRequest, effect: EmulatedEffect) async throws -> [PreparedImage] {
        try await ImagingRuntime.offload { try (0..<edit.count).map { _ in try edit.render(effect: effect) } }
    }

    /// Stores outputs under /files/ (URLs) or keeps them inline, as the
    /// fault (if any) has them served. Files older than `retention` are forgotten.
    private func publish(_ outputs: [PreparedImage], edit: EmulatedRequest, fault: EmulatedFault?) -> (
        urls: [String], inline: [Data]
    ) {
        let (host, port) = state.withLock { ($0.host, $0.port) }
        var urls: [String] = []
        var inline: [Data] = []
        let now = Date()
        for output in outputs {
            if edit.returnsBase64 {
                inline.append(output.data)
            } else if edit.syncMode {
                urls.append(DataURI.make(output.data, format: output.format))
            } else {
                let name = UUID().uuidString.lowercased() + "." + output.format.fileExtension
                var file = StoredFile(data: output.data, type: output.format.mimeType, createdAt: now)
                var stored: [String: StoredFile] = [name: file]
                var url = "http://\(host):\(port)/files/\(name)"
                switch fault {
                case .expiredResult?: stored = [:]
                case .slowResult(let rate)?: stored[name]?.serving = .slow(rate)
                case .hugeResult(let bytes)?: stored[name]?.serving = .huge(bytes)
                case .resultAddress(let address)?: url = address
                case .redirectedResult(let hops, let location)?:
                    file.serving = .redirect(location)
                    stored = [:]
                    var next = location
                    for hop in 0..<max(1, hops) {
                        let hopName = "hop\(hop)-\(name)"
                        file.serving = .redirect(next)
                        stored[hopName] = file
                        next = "/files/\(hopName)"
                    }
                    url = "http://\(host):\(port)\(next)"
                case .manyResults(let count)?: urls += Array(repeating: url, count: max(0, count - 1))
                default: break
                }
                let keep = stored
                state.withLock { state in
                    state.files.merge(keep) { $1 }
                    state.files = state.files.filter { now.timeIntervalSince($0.value.createdAt) < retention }
                }
                urls.append(url)
            }
        }
        return (urls, inline)
    }

    /// A stored result as its fault has it served.
    private static func serve(_ file: StoredFile) -> Response {
        switch file.serving {
        case .normal:
            return Response(
                status: .ok, headers: [.contentType: file.type], body: .init(byteBuffer: ByteBuffer(data: file.data)))
        case .redirect(let location):
            return Response(status: .found, headers: [.location: location])
        case .slow(let rate):
            let data = file.data
            return Response(
                status: .ok, headers: [.contentType: file.type],
                body: ResponseBody(contentLength: data.count) { writer in
                    var offset = 0
                    while offset < data.count {
                        let end = min(data.count, offset + max(1, rate))
                        try await writer.write(ByteBuffer(data: data[offset..<end]))
                        offset = end
                        try await Task.sleep(for: .seconds(1))
                    }
                    try await writer.finish(nil)
                })
        case .huge(let bytes):
            return Response(
                status: .ok, headers: [.contentType: "image/png"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
                    let chunk = ByteBuffer(repeating: 0, count: 1 << 20)
                    var sent = 0
                    while sent < bytes {
                        try await writer.write(chunk.getSlice(at: 0, length: min(chunk.readableBytes, bytes - sent))!)
                        sent += chunk.readableBytes
                    }
                    try await writer.finish(nil)
                })
        }
    }

    // MARK: Jobs

    /// This submission's latency: `latency`, or drawn up to `latencyMax` (and logged).
    private func drawLatency() -> Duration {
        guard let latencyMax, latencyMax > latency else { return latency }
        let low = latency / .seconds(1)
        let seconds = Double.random(in: low...(latencyMax / .seconds(1)))
        requestLog?(String(format: "latency %.3f", seconds))
        return .milliseconds(Int64(seconds * 1000))
    }

    /// Writes an accepted body for replay, when asked to.
    /// Held while a line is added to the recorded bodies' index.
    private let indexWriting = Mutex(())

    private func record(_ body: Data, path: String, contentType: String) {
        guard let folder = recordBodies else { return }
        let number = state.withLock { state -> Int in
            state.recorded += 1
            return state.recorded
        }
        let name = "\(number).body"
        try? body.write(to: URL(fileURLWithPath: folder + "/" + name))
        let line = (try? JSONSerialization.data(withJSONObject: ["path": path, "contentType": contentType, "file": name])) ?? Data()
        // One writer at a time: submissions taken at once would otherwise
        // create the index over each other, or append at the same offset.
        indexWriting.withLock { _ in
            if let handle = FileHandle(forWritingAtPath: folder + "/index.jsonl") ?? {
                FileManager.default.createFile(atPath: folder + "/index.jsonl", contents: nil)
                return FileHandle(forWritingAtPath: folder + "/index.jsonl")
            }() {
                handle.seekToEndOfFile()
                handle.write(line + Data("\n".utf8))
                try? handle.close()
            }
        }
    }

    /// The job as it stands once it has ended, or at `instant`, whichever comes first.
    private func jobAfterWaiting(for id: String, until instant: ContinuousClock.Instant) async -> EmulatedJob? {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForEnd(of: id) }
            group.addTask { try? await Task.sleep(until: instant) }
            await group.next()
            group.cancelAll()
        }
        return state.withLock { $0.jobs[id]?.job }
    }

    /// Returns once job `id` has ended (at once when it has, or is
    /// unknown), or when the task is cancelled.
    private func waitForEnd(of id: String) async {
        let token = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLock { state -> Bool in
                    guard !Task.isCancelled, let job = state.jobs[id], !job.job.phase.isTerminal else { return false }
                    state.endWaiters[id, default: [:]][token] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.endWaiters[id]?.removeValue(forKey: token) }?.resume()
        }
    }

    /// Wakes whoever waits for job `id` to end.
    private func wakeWaiters(of id: String) {
        for waiter in state.withLock({ $0.endWaiters.removeValue(forKey: id).map { Array($0.values) } ?? [] }) { waiter.resume() }
    }

    /// Ends job `id` where it stands when `deadline` (from `began`) passes before it ended.
    private func endAtDeadline(_ id: String, profile: ProviderProfile, began: ContinuousClock.Instant, deadline: Duration) {
        Task { [self] in
            try? await Task.sleep(until: began + deadline)
            let expired = state.withLock { state -> Bool in
                guard var job = state.jobs[id], !job.job.phase.isTerminal else { return false }
                job.job.phase = .cancelled
                job.job.endedByDeadline = true
                job.job.completedAt = Date()
                state.jobs[id] = job
                return true
            }
            guard expired else { return }
            count(.endedJobs, of: profile)
            wakeWaiters(of: id)
        }
    }

    private func startJob(
        _ edit: EmulatedRequest, profile: ProviderProfile, began: ContinuousClock.Instant, latency: Duration,
        fault: EmulatedFault?, deadline: Duration? = nil
    ) -> EmulatedJob {
        let host = profile.host
        let now = Date()
        var job = Job(
            profile: profile,
            job: EmulatedJob(
                id: host.emulatedJobID(for: profile), phase: .queued, createdAt: now, metadata: edit.metadata,
                outputSize: edit.outputSize, seed: Int.random(in: 0..<1_000_000),
                cost: CostEstimator.estimate(profile, outputSize: edit.outputSize).total ?? 0),
            staysQueued: fault == .staysQueued)
        let id = job.job.id
        let accepted = job.job
        state.withLock { state in
            // Finished jobs older than the retention are forgotten, as a real endpoint's are.
            state.jobs = state.jobs.filter { $0.value.job.completedAt.map { now.timeIntervalSince($0) < retention } ?? true }
            // A worker takes it at once (answered as queued), unless it is to stay queued.
            if !job.staysQueued {
                job.job.phase = .running
                job.job.startedAt = now
            }
            state.jobs[id] = job
        }
        if let deadline { endAtDeadline(id, profile: profile, began: began, deadline: deadline) }
        guard !job.staysQueued else { return accepted }
        let failure: String? = if case .jobFailure(let message) = fault { message } else { nil }
        Task { [self] in
            var urls: [String] = []
            var error = failure
            if error == nil {
                do {
                    let outputs = try await Self.render(edit, effect: effect)
                    (urls, _) = publish(outputs, edit: edit, fault: fault)
                } catch let rejection as EmulatorRejection {
                    error = rejection.message
                } catch {}
            }
            try? await Task.sleep(until: began + latency)
            await passHold()
            let finished = state.withLock { state -> EmulatedJob? in
                // A job cancelled while it ran stays cancelled.
                guard var job = state.jobs[id], job.job.phase == .running else { return nil }
                job.job.phase = error == nil ? .succeeded : .failed
                job.job.error = error
                job.job.urls = urls
                job.job.completedAt = Date()
                state.jobs[id] = job
                return job.job
            }
            guard let finished else { return }
            count(.endedJobs, of: profile)
            wakeWaiters(of: id)
            if let (name, data) = host.emulatedEvent(for: finished, profile: profile) {
                if case .oversizedEvent(let bytes, let inOneLine)? = fault { broadcast(.oversized(bytes: bytes, inOneLine: inOneLine)) }
                broadcast(.text("event: \(name)\ndata: \(String(decoding: jsonData(data), as: UTF8.self))\n\n"))
            }
            if let callback = edit.callbackURL {
                await deliverCallback(to: callback, job: finished, profile: profile)
            }
        }
        return accepted
    }

    private func poll(_ request: Request, id: String, profile: ProviderProfile) async throws -> Response {
        let fault = state.withLock { state -> EmulatedFault? in
            state.polls[profile.id, default: 0] += 1
            return state.pollFaults.isEmpty ? nil : state.pollFaults.removeFirst()
        }
        count(.polls, of: profile)
        if let fault, let response = play(fault, profile: profile) { return response }
        guard authorized(request, profile) else {
            return errorResponse(profile, status: .unauthorized, "Unauthorized: missing or invalid bearer token")
        }
        guard let job = state.withLock({ $0.jobs[id] }), job.profile.id == profile.id else {
            return errorResponse(profile, status: .notFound, "Not found: no job \(id)")
        }
        return json(profile.host.emulatedDescription(of: job.job, for: profile, asCallback: false), status: .ok)
    }

    /// The results of job `id`, as its host answers a fetch of them.
    private func result(_ request: Request, id: String, profile: ProviderProfile) async throws -> Response {
        guard authorized(request, profile) else {
            return errorResponse(profile, status: .unauthorized, "Unauthorized: missing or invalid bearer token")
        }
        guard let job = state.withLock({ $0.jobs[id] }), job.profile.id == profile.id else {
            return errorResponse(profile, status: .notFound, "Not found: no job \(id)")
        }
        return answer(profile.host.emulatedResult(of: job.job, for: profile))
    }

    /// Whether `request` carries the key as `profile` sends it.
    private func authorized(_ request: Request, _ profile: ProviderProfile) -> Bool {
        guard let name = HTTPField.Name(profile.auth.header) else { return false }
        return request.headers[name] == "\(profile.auth.scheme) \(apiKey)"
    }

    /// Cancels job `id`: one still queued never runs; one running is ended
    /// where it stands (its host says whether it had started); one that has
    /// ended stays as it ended.
    private func cancel(_ request: Request, id: String, profile: ProviderProfile) async throws -> Response {
        guard authorized(request, profile) else {
            return errorResponse(profile, status: .unauthorized, "Unauthorized: missing or invalid bearer token")
        }
        let cancelled = state.withLock { state -> (EmulatedJob, Bool)? in
            guard var job = state.jobs[id], job.profile.id == profile.id else { return nil }
            state.cancels[profile.id, default: 0] += 1
            let wasRunning = job.job.startedAt != nil
            if !job.job.phase.isTerminal {
                job.job.phase = .cancelled
                job.job.completedAt = Date()
                state.jobs[id] = job
            }
            return (job.job, wasRunning)
        }
        guard let (job, wasRunning) = cancelled else {
            return errorResponse(profile, status: .notFound, "Not found: no job \(id)")
        }
        count(.cancels, of: profile)
        wakeWaiters(of: id)
        return answer(profile.host.emulatedCancel(of: job, for: profile, wasRunning: wasRunning))
    }

    // MARK: Callbacks and events

    /// POSTs the documented callback payload: 3 attempts with 1 s and 2 s
    /// pauses, retrying 5xx and network errors only. An attempt waits up to
    /// a minute for the receiver's answer, so a slow machine does not turn
    /// one delivery into two.
    private func deliverCallback(to url: String, job: EmulatedJob, profile: ProviderProfile) async {
        let body = jsonData(profile.host.emulatedDescription(of: job, for: profile, asCallback: true))
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let signed = profile.host.emulatedCallbackHeaders(for: body, secret: signingSecret, at: Date())
        for (name, value) in signed { request.headers.add(name: name, value: value) }
        let signature = profile.callback.flatMap { spec in signed.first { $0.0 == spec.signatureHeader }?.1 }
        request.body = .bytes(ByteBuffer(data: body))
        for attempt in 1...3 {
            var status = 0
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
                status = Int(response.status.code)
                _ = try? await response.body.collect(upTo: 1 << 20)
            } catch {}
            state.withLock { $0.callbacks.append((status, signature)) }
            count(.deliveries, of: profile)
            if status != 0 && status < 500 { return }
            if attempt < 3 { try? await Task.sleep(for: .seconds(attempt)) }
        }
    }

    private func events(_ request: Request, profile: ProviderProfile) -> Response {
        guard authorized(request, profile) else {
            return errorResponse(profile, status: .unauthorized, "Unauthorized: missing or invalid bearer token")
        }
        let id = UUID()
        let (stream, continuation) = AsyncStream<StreamItem>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        continuation.onTermination = { [self] _ in _ = state.withLock { $0.streams.removeValue(forKey: id) } }
        state.withLock { $0.streams[id] = continuation }
        continuation.yield(.text(": connected\n\n"))
        count(.openedEventStreams, of: profile)
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { [self] writer in
                defer { count(.endedEventStreams, of: profile) }
                func send(_ buffer: ByteBuffer) async throws {
                    try await writer.write(buffer)
                    state.withLock { $0.eventStreamBytes += buffer.readableBytes }
                }
                for await item in stream {
                    switch item {
                    case .text(let text):
                        try await send(ByteBuffer(string: text))
                    case .oversized(let bytes, let inOneLine):
                        // Written a piece at a time, as fast as the client takes them.
                        let piece = 64 * 1024
                        var sent = 0
                        try await send(ByteBuffer(string: "event: oversized\ndata: "))
                        while sent < bytes {
                            let size = min(piece, bytes - sent)
                            var buffer = ByteBuffer(repeating: UInt8(ascii: "x"), count: size)
                            sent += size
                            if !inOneLine && sent < bytes { buffer.writeString("\ndata: ") }
                            try await send(buffer)
                        }
                        try await send(ByteBuffer(string: "\n\n"))
                    }
                }
                try await writer.finish(nil)
            })
    }

    private func broadcast(_ item: StreamItem) {
        for stream in state.withLock({ Array($0.streams.values) }) { stream.yield(item) }
    }

    // MARK: Answers

    private struct DroppedConnection: Error {}

    private func play(_ fault: EmulatedFault, profile: ProviderProfile) -> Response? {
        switch fault {
        case .status(let code):
            return errorResponse(profile, status: HTTPResponse.Status(code: code), "emulated failure (HTTP \(code))")
        case .tooManyRequests(let seconds):
            var response = errorResponse(profile, status: .tooManyRequests, "rate limited")
            response.headers[.retryAfter] = String(seconds)
            return response
        case .unavailable(let seconds):
            var response = errorResponse(profile, status: .serviceUnavailable, "emulated failure (HTTP 503)")
            response.headers[.retryAfter] = String(seconds)
            return response
        case .malformedJSON:
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"id\": \"sync-1\", \"status\": ")))
        case .htmlErrorPage:
            return Response(
                status: .badGateway, headers: [.contentType: "text/html"],
                body: .init(byteBuffer: ByteBuffer(string: "<html><body><h1>502 Bad Gateway</h1></body></html>")))
        case .dropConnection:
            // A length is promised and the connection closed before any of it.
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(contentLength: 4096) { _ in throw DroppedConnection() })
        case .expiredResult, .acceptedPending, .jobFailure, .reportedCost, .slowResult, .redirectedResult, .manyResults,
            .hugeResult, .resultAddress, .normal, .delayed, .oversizedEvent, .staysQueued:
            return nil
        }
    }

    private func success(
        _ profile: ProviderProfile, urls: [String], inline: [Data], edit: EmulatedRequest, cost reported: String? = nil
    ) -> Response {
        var results = EmulatedResults(
            urls: urls, inline: inline, prompt: edit.prompt, returnsBase64: edit.returnsBase64,
            cost: CostEstimator.estimate(profile, outputSize: edit.outputSize).total ?? 0, reportedCost: reported)
        results.outputSize = edit.outputSize
        return json(profile.host.emulatedSuccess(results, for: profile), status: .ok)
    }

    private func errorResponse(
        _ profile: ProviderProfile, status: HTTPResponse.Status, _ message: String, param: String? = nil
    ) -> Response {
        answer(profile.host.emulatedRefusal(message, param: param, status: Int(status.code), for: profile))
    }

    private func answer(_ answer: EmulatedAnswer) -> Response {
        json(answer.body, status: HTTPResponse.Status(code: answer.status))
    }

    private func json(_ object: [String: Any], status: HTTPResponse.Status) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: jsonData(object))))
    }

    private func jsonData(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }


}

/// Writes one line per answered request: method, path, status, and the time
/// the emulator took (its own work and latency, before the body is sent).
struct RequestLine<Context: RequestContext>: RouterMiddleware {
    let write: @Sendable (String) -> Void

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = (ContinuousClock.now - start) / .milliseconds(1)
        write("\(request.method) \(request.uri.path) -> \(response.status.code) (\(String(format: "%.2f", elapsed)) ms)")
        return response
    }
}

extension EmulatedFault {
    var isJobFailure: Bool { if case .jobFailure = self { true } else { false } }
}

extension Optional where Wrapped == EmulatedFault {
    var isJobFailure: Bool { self?.isJobFailure ?? false }
}

extension EmulatedFault {
    /// The spellings `init(parsing:)` reads, for help texts.
    public static let spellings = [
        "status:CODE", "too-many-requests:SECONDS", "unavailable:SECONDS", "malformed-json", "html-error-page",
        "expired-result", "drop-connection", "accepted-pending", "job-failure:MESSAGE", "reported-cost:JSON",
        "slow-result:BYTES_PER_SECOND", "redirected-result:HOPS:LOCATION", "many-results:COUNT", "huge-result:BYTES",
        "result-address:URL", "normal", "delayed:SECONDS", "oversized-event:BYTES", "oversized-event-line:BYTES",
    ]

    /// A fault from its spelling (`status:500`, `slow-result:1`,
    /// `redirected-result:3:http+unix://%2Ftmp%2Fx.sock/a`), or nil.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let name = parts[0]
        let argument = parts.count > 1 ? parts[1] : nil
        let number = argument.flatMap { Int($0) }
        switch (name, argument) {
        case ("status", _): guard let number, (100...599).contains(number) else { return nil }; self = .status(number)
        case ("too-many-requests", _): guard let number else { return nil }; self = .tooManyRequests(retryAfter: number)
        case ("unavailable", _): guard let number else { return nil }; self = .unavailable(retryAfter: number)
        case ("malformed-json", nil): self = .malformedJSON
        case ("html-error-page", nil): self = .htmlErrorPage
        case ("expired-result", nil): self = .expiredResult
        case ("drop-connection", nil): self = .dropConnection
        case ("accepted-pending", nil): self = .acceptedPending
        case ("job-failure", let message?): self = .jobFailure(message)
        case ("reported-cost", let json?): self = .reportedCost(json)
        case ("slow-result", _): guard let number, number > 0 else { return nil }; self = .slowResult(bytesPerSecond: number)
        case ("many-results", _): guard let number, number > 0 else { return nil }; self = .manyResults(number)
        case ("huge-result", _): guard let number, number > 0 else { return nil }; self = .hugeResult(bytes: number)
        case ("result-address", let address?): self = .resultAddress(address)
        case ("oversized-event", _): guard let number, number > 0 else { return nil }; self = .oversizedEvent(bytes: number, inOneLine: false)
        case ("oversized-event-line", _):
            guard let number, number > 0 else { return nil }
            self = .oversizedEvent(bytes: number, inOneLine: true)
        case ("normal", nil): self = .normal
        case ("stays-queued", nil): self = .staysQueued
        case ("delayed", _): guard let number, number >= 0 else { return nil }; self = .delayed(seconds: number)
        case ("redirected-result", let rest?):
            let pieces = rest.split(separator: ":", maxSplits: 1).map(String.init)
            guard pieces.count == 2, let hops = Int(pieces[0]), hops > 0 else { return nil }
            self = .redirectedResult(hops: hops, location: pieces[1])
        default: return nil
        }
    }
}
