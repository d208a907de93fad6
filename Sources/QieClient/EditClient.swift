import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOPosix
import QieProviders

/// The one error type of the client module. Messages name the endpoint and
/// say what it said; they never contain a key.
public struct ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure it is.
    public enum Kind: String, Sendable {
        /// The connection failed or timed out, after every retry.
        case network
        /// The endpoint answered with an error or a failed job.
        case rejected
        /// The answer could not be read, or the result is not an image.
        case badResponse
        /// An accepted job did not end within the overall timeout.
        case timedOut
        /// The submission left and no usable answer came back (a timeout
        /// while waiting, a 5xx, a dropped connection, an unreadable success):
        /// the endpoint may have processed and billed it, so it is not sent
        /// again automatically.
        case uncertain
    }

    /// What kind of failure it is.
    public var kind: Kind
    /// What happened, in the endpoint's own words where it gave some.
    public var message: String
    /// The endpoint concerned (its profile id), when known.
    public var endpoint: String?
    /// The job the endpoint accepted, when it got that far: it may still be
    /// billed, so it must be asked about rather than submitted again.
    public var jobID: String?
    /// The last HTTP status the endpoint answered with, when it answered.
    public var status: Int?
    /// What the user can do about it, naming settings as data (each front
    /// end spells them its own way).
    public var hint: Phrase?
    /// Submissions sent before the failure, retries included (0 when the
    /// failure was not a submission's).
    public var submissions: Int

    /// A failure of `kind` described by `message`.
    public init(
        kind: Kind, message: String, endpoint: String? = nil, jobID: String? = nil, status: Int? = nil, submissions: Int = 0,
        hint: Phrase? = nil
    ) {
        self.kind = kind
        self.message = message
        self.hint = hint
        self.endpoint = endpoint
        self.jobID = jobID
        self.status = status
        self.submissions = submissions
    }

    /// Whether the endpoint may have processed (and billed) the submission:
    /// it answered with a job id, or the request left without a usable answer.
    public var mayHaveBeenCharged: Bool { jobID != nil || kind == .uncertain }

    /// The message and its hint, settings spelled by `naming`.
    public func message(naming: (Setting) -> String) -> String {
        hint.map { "\(message); \($0.rendered(naming: naming))" } ?? message
    }

    /// The message and its hint, settings by their library names.
    public var description: String { message(naming: \.name) }
}

/// When to try again and how long to wait: exponential backoff with full
/// jitter, honouring `Retry-After`. Polls and downloads, which cost nothing,
/// are retried on network errors, 5xx and 429. A submission is retried only
/// when it provably was not processed: the connection failed before the
/// request was written, 429, or 503 with `Retry-After`.
public struct RetryPolicy: Sendable {
    /// The most times one request is sent, the first included (at least 1).
    public var maxAttempts: Int
    /// Seconds of the first backoff ceiling; each retry doubles it.
    public var baseDelay: Double
    /// The longest wait between attempts, in seconds, `Retry-After` included.
    public var maxDelay: Double

    /// A policy of `maxAttempts` tries with backoff from `baseDelay` up to `maxDelay` seconds.
    public init(maxAttempts: Int = 4, baseDelay: Double = 0.5, maxDelay: Double = 20) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// Whether an answer with HTTP `status` is worth trying again (429 and 5xx).
    public static func shouldRetry(status: Int) -> Bool { status == 429 || (500...599).contains(status) }

    /// Whether a submission answered with `status` (and `Retry-After`, if
    /// sent) provably was not processed, so sending it again cannot pay
    /// twice: 429, or 503 with `Retry-After`.
    public static func shouldRetrySubmission(status: Int, retryAfter: String?) -> Bool {
        status == 429 || (status == 503 && retryAfter != nil)
    }

    /// Whether `error` happened before any byte of the request was written:
    /// the connection was refused, timed out or could not be set up.
    public static func failedBeforeSending(_ error: any Error) -> Bool {
        switch error {
        case let error as HTTPClientError:
            return [
                .connectTimeout, .getConnectionFromPoolTimeout, .socksHandshakeTimeout, .httpProxyHandshakeTimeout,
                .tlsHandshakeTimeout, .proxyAuthenticationRequired, .invalidURL, .emptyHost, .emptyScheme,
            ].contains(error)
        case is NIOConnectionError:
            return true
        case let error as ChannelError:
            if case .connectTimeout = error { return true }
            return false
        case let error as IOError:
            return [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ETIMEDOUT, EADDRNOTAVAIL].contains(error.errnoCode)
        default:
            return false
        }
    }

    /// Seconds to wait before attempt `attempt + 1` (attempt counts from 1).
    public func delay(after attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter { return min(maxDelay, max(0, retryAfter)) }
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...ceiling)
    }

    /// `Retry-After` as seconds or an HTTP date.
    public static func parseRetryAfter(_ value: String?, now: Date = Date()) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value) { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSince(now)) }
    }
}

/// How an accepted job is waited for: when to poll and the longest wait.
/// Polls are planned from the jobs that ended before (see `PollPlanner`)
/// unless `fixedInterval` forces a cadence.
public struct WaitPolicy: Sendable {
    /// Before an endpoint has a finished job to learn from: the first pause;
    /// later pauses grow by half up to `maxInterval`.
    public var firstInterval: Double
    /// The longest pause between polls, in seconds.
    public var maxInterval: Double
    /// When a callback or event stream is expected, polls are only a fallback
    /// and wait at least this long.
    public var fallbackInterval: Double
    /// Longest time from submission to a terminal answer (the overall timeout).
    public var timeout: Double
    /// Poll at exactly this cadence instead of planning (seconds).
    public var fixedInterval: Double?
    /// Polls to one endpoint per second, at most, over all its jobs.
    public var maxPollsPerSecond: Double

    /// A wait policy; intervals and the timeout are in seconds.
    public init(
        firstInterval: Double = 1, maxInterval: Double = 10, fallbackInterval: Double = 30, timeout: Double = 1800,
        fixedInterval: Double? = nil, maxPollsPerSecond: Double = 20
    ) {
        self.fixedInterval = fixedInterval.map { max(0.05, $0) }
        self.firstInterval = max(0.05, fixedInterval ?? firstInterval)
        self.maxInterval = max(self.firstInterval, maxInterval)
        self.fallbackInterval = max(self.firstInterval, fallbackInterval)
        self.timeout = max(0, timeout)
        self.maxPollsPerSecond = maxPollsPerSecond
    }
}

/// What an edit job came to.
public struct JobResult: Sendable {
    /// The result images, as URLs or inline bytes.
    public var images: [ResultImage]
    /// The cost the endpoint reported, in USD, when it reported one.
    public var reportedCost: Decimal?
    /// The endpoint's id for the job, when it gave one.
    public var requestID: String?
    /// Submissions sent by this call (more than one only after retried failures; 0 when only waited for).
    public var submissions: Int
    /// Status polls sent.
    public var polls: Int
    /// Whether a callback or event announced the end.
    public var signalled: Bool
    /// What was wrong with the answer and ignored (a reported cost that is
    /// not an amount >= 0), in words.
    public var warnings: [String]

    /// A job's outcome with these counts.
    public init(
        images: [ResultImage], reportedCost: Decimal?, requestID: String?, submissions: Int, polls: Int, signalled: Bool,
        warnings: [String] = []
    ) {
        self.images = images
        self.reportedCost = reportedCost
        self.requestID = requestID
        self.submissions = submissions
        self.polls = polls
        self.signalled = signalled
        self.warnings = warnings
    }
}

/// Sends edit requests and fetches results over one shared, pooled HTTP client.
/// Every wait it makes (retry pauses, polls, the overall and download
/// deadlines) reads its `clock`; only the connection's own connect and read
/// timeouts are the machine's. A result on a name that was checked is
/// fetched over a client pinned to an address its check saw (see
/// `ResultChecks` and `ResultTarget`).
public final class EditClient: Sendable {
    let http: HTTPClient
    /// Clients that connect result hosts' names to their checked addresses.
    let pinned: PinnedHTTPClients
    /// How result hosts' names are resolved before they are checked.
    public let resolver: HostResolver
    /// When requests are tried again.
    public let retry: RetryPolicy
    /// Longest wait for one request's answer.
    public let requestTimeout: TimeAmount
    /// Largest response or result accepted.
    public let maxBodyBytes: Int
    /// Where the client reads the time and waits.
    public let clock: any QieClock
    /// When this client's jobs are polled, learned from those that ended.
    public let polling: PollPlanner
    /// The clock's times as the instants submissions and waits are timed in.
    let instants: ClockInstants

    /// A client with its own connection pool.
    ///
    /// - Parameters:
    ///   - retry: when requests are tried again.
    ///   - connectTimeout: longest wait to connect.
    ///   - requestTimeout: longest wait for one request's answer.
    ///   - maxBodyBytes: largest response or result accepted.
    ///   - connectionsPerHost: connections kept open to one endpoint;
    ///     at least the number of requests meant to be in flight at once
    ///     (AsyncHTTPClient's default of 8 would queue the rest).
    ///   - clock: where retry pauses, polls and deadlines are timed.
    ///   - resolver: how result hosts' names are resolved before they are
    ///     checked and connected to (the system's resolver unless a test
    ///     plays another).
    public init(
        retry: RetryPolicy = RetryPolicy(), connectTimeout: TimeAmount = .seconds(10),
        requestTimeout: TimeAmount = .seconds(300), maxBodyBytes: Int = 100 * 1024 * 1024,
        connectionsPerHost: Int = 32, clock: any QieClock = SystemClock(), resolver: HostResolver = .system
    ) {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, connectionsPerHost)
        configuration.timeout = .init(connect: connectTimeout, read: requestTimeout)
        // Redirects are never followed with a key: results follow them one
        // hop at a time, each hop checked before connecting (`fetch`).
        configuration.redirectConfiguration = .disallow
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        pinned = PinnedHTTPClients(configuration: configuration)
        self.resolver = resolver
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.maxBodyBytes = maxBodyBytes
        self.clock = clock
        polling = PollPlanner(clock: clock)
        instants = ClockInstants(clock)
    }

    /// Closes the pooled connections. Call once, when done.
    public func shutdown() async throws {
        let pins: Result<Void, any Error>
        do { pins = .success(try await pinned.shutdown()) } catch { pins = .failure(error) }
        try await http.shutdown()
        try pins.get()
    }

    private struct Answer {
        var status: Int
        var body: Data
        var retryAfter: Double? = nil
    }

    /// How long a request keeps being retried.
    private enum Persistence {
        /// At most the policy's attempts (downloads).
        case attempts
        /// At most the policy's attempts, and only while the request provably
        /// was not processed (submissions, which are paid for).
        case unprocessed
        /// Until the clock reaches this time (polls of an accepted job, which
        /// must not be given up early).
        case until(Date)
    }

    /// The one retry loop for submissions, polls and downloads: network
    /// errors, 5xx and 429 are tried again with exponential backoff and full
    /// jitter (honouring `Retry-After`), other answers are returned as they
    /// are. A submission (`.unprocessed`) is tried again only when it was
    /// provably not processed; a network failure after it left is
    /// `.uncertain`. The body is streamed from its source on every attempt.
    private func exchange(
        _ request: BuiltRequest, profile: ProviderProfile, what: String, persistence: Persistence = .attempts,
        attempts: inout Int
    ) async throws -> Answer {
        var tries = 0
        func more() -> Bool {
            switch persistence {
            case .attempts, .unprocessed: tries < retry.maxAttempts
            case .until(let deadline): clock.now() < deadline
            }
        }
        let submission = if case .unprocessed = persistence { true } else { false }
        while true {
            try Task.checkCancellation()
            tries += 1
            attempts += 1
            var outgoing = HTTPClientRequest(url: request.url)
            outgoing.method = .init(rawValue: request.method)
            for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
            if case .empty = request.body {} else { outgoing.body = try Self.streamed(request.body) }
            var wait: Double? = nil
            do {
                let response = try await http.execute(outgoing, timeout: requestTimeout)
                let status = Int(response.status.code)
                let data = Data(buffer: try await response.body.collect(upTo: maxBodyBytes))
                let retryAfter = response.headers.first(name: "Retry-After")
                let retrying =
                    submission
                    ? RetryPolicy.shouldRetrySubmission(status: status, retryAfter: retryAfter)
                    : RetryPolicy.shouldRetry(status: status)
                guard retrying else {
                    return Answer(status: status, body: data, retryAfter: RetryPolicy.parseRetryAfter(retryAfter, now: clock.now()))
                }
                wait = RetryPolicy.parseRetryAfter(retryAfter, now: clock.now())
                if !more() { return Answer(status: status, body: data) }
            } catch is CancellationError {
                throw CancellationError()
            } catch let error as ProvidersError {
                // The body could not be produced (an input file vanished): no retry helps.
                throw ClientError(kind: .badResponse, message: "\(profile.id): \(what): \(error.message)", endpoint: profile.id)
            } catch {
                if submission && !RetryPolicy.failedBeforeSending(error) {
                    throw ClientError(
                        kind: .uncertain,
                        message: "\(profile.id): \(what) was sent to \(host(request.url)) and no answer came back (\(Self.describe(error))); the endpoint may have processed it (and billed it), so it is not sent again automatically",
                        endpoint: profile.id, submissions: attempts)
                }
                if !more() {
                    throw ClientError(
                        kind: .network,
                        message: "\(profile.id): \(what) got no answer from \(host(request.url)) after \(tries) attempt\(tries == 1 ? "" : "s") (\(Self.describe(error))); check the network or the base URL",
                        endpoint: profile.id, submissions: submission ? attempts : 0)
                }
            }
            var pause = retry.delay(after: min(tries, 16), retryAfter: wait)
            if case .until(let deadline) = persistence { pause = min(pause, max(0, clock.seconds(until: deadline))) }
            try await clock.sleep(for: pause)
        }
    }

    /// The body as AsyncHTTPClient's streamed body: read from its images'
    /// bytes or files and base64-encoded chunk by chunk as the socket takes
    /// it, with its exact length (computed without encoding) as Content-Length.
    static func streamed(_ body: RequestBody) throws -> HTTPClientRequest.Body {
        let length = try body.contentLength()
        return .stream(BodyChunks(reader: try body.reader()), length: .known(Int64(length)))
    }

    /// Sends a built request and reads the endpoint's answer. It is sent
    /// again only when it provably was not processed (a connection that
    /// failed before the request was written, 429, 503 with `Retry-After`);
    /// any other failure after it left throws `.uncertain`.
    public func send(_ request: BuiltRequest, to profile: ProviderProfile) async throws -> ResponseOutcome {
        var attempts = 0
        return try await submit(request, to: profile, attempts: &attempts).outcome
    }

    private func submit(_ request: BuiltRequest, to profile: ProviderProfile, attempts: inout Int) async throws
        -> (outcome: ResponseOutcome, status: Int, warnings: [String])
    {
        let answer = try await exchange(request, profile: profile, what: "the request", persistence: .unprocessed, attempts: &attempts)
        do {
            var warnings: [String] = []
            let outcome = try ResponseReader.read(answer.body, status: answer.status, from: profile) { warnings.append($0) }
            return (outcome, answer.status, warnings)
        } catch {
            // A success that cannot be read was processed all the same.
            throw ClientError(
                kind: (200..<300).contains(answer.status) ? .uncertain : .badResponse,
                message: (200..<300).contains(answer.status)
                    ? "\(error.message); the endpoint may have made (and billed) the edit, so it is not sent again automatically"
                    : error.message,
                endpoint: profile.id, status: answer.status, submissions: attempts)
        }
    }

    /// What the endpoint said to a submission that it did not refuse.
    public enum Submission: Sendable {
        /// It answered with the results (a synchronous flow).
        case answered(JobResult)
        /// It took the request as job `id`, still `status`: ask about it with
        /// `wait`, from `submittedAt` (when the submission left) and
        /// `acceptedAt` (when its answer came), both read from the client's
        /// clock (see `wait`).
        case accepted(
            id: String, status: String, submissions: Int, submittedAt: ContinuousClock.Instant,
            acceptedAt: ContinuousClock.Instant)
    }

    /// Sends an edit request once (again only when it provably was not
    /// processed) and reads the endpoint's answer: its results, or the job
    /// it accepted. A refusal or a failed job throws `.rejected` (with the
    /// job's id when the endpoint gave one: it took the request); a 5xx or
    /// an answer that cannot be read throws `.uncertain`.
    public func submit(_ request: BuiltRequest, on profile: ProviderProfile) async throws -> Submission {
        let submitted = clock.now()
        var submissions = 0
        let (first, status, warnings) = try await submit(request, to: profile, attempts: &submissions)
        switch first {
        case .completed(let images, let cost, let id):
            return .answered(
                JobResult(
                    images: images, reportedCost: cost, requestID: id, submissions: submissions, polls: 0, signalled: false,
                    warnings: warnings))
        case .failed(let message, let id) where (500...599).contains(status):
            // A 5xx other than 503 with Retry-After: the endpoint may have
            // done the work before failing to answer.
            throw ClientError(
                kind: .uncertain,
                message: "\(message); the endpoint may have processed (and billed) the request, so it is not sent again automatically",
                endpoint: profile.id, jobID: id, status: status, submissions: submissions)
        case .failed(let message, let id):
            throw ClientError(
                kind: .rejected, message: message, endpoint: profile.id, jobID: id, status: status, submissions: submissions)
        case .pending(let id, let status):
            return .accepted(
                id: id, status: status, submissions: submissions, submittedAt: instants.instant(submitted),
                acceptedAt: instants.instant(clock.now()))
        case .finished(let id):
            // Taken and already done: its results are fetched by waiting for it.
            return .accepted(
                id: id, status: "finished", submissions: submissions, submittedAt: instants.instant(submitted),
                acceptedAt: instants.instant(clock.now()))
        }
    }

    /// Asks the endpoint to cancel job `id` with `request` (its cancel
    /// route) and reads what it said through its host. Network failures,
    /// 5xx and 429 are tried again within the retry policy (a cancel is
    /// free and safe to repeat); a cancel that could not be asked is
    /// `.refused` with why. It never throws.
    public func cancel(_ id: String, request: BuiltRequest, on profile: ProviderProfile) async -> CancelOutcome {
        var attempts = 0
        do {
            let answer = try await exchange(request, profile: profile, what: "cancelling job \(id)", attempts: &attempts)
            return profile.host.readCancel(answer.body, status: answer.status, for: profile)
        } catch let error as ClientError {
            return .refused(message: error.message)
        } catch {
            return .refused(message: "\(profile.id): cancelling job \(id) was stopped")
        }
    }

    /// Submits an edit and, when the endpoint accepts it as a job, waits for
    /// the job's end: by polling, or woken by `signals` (a callback listener or
    /// an event stream) with polling as the fallback. Once a job id is known
    /// the job is only ever polled, never submitted again, whatever fails.
    /// `accepted` is called with the id as soon as it is known.
    public func perform(
        _ request: BuiltRequest, on profile: ProviderProfile, poll: @escaping @Sendable (String) -> BuiltRequest?,
        policy: WaitPolicy = WaitPolicy(), signals: JobSignals? = nil,
        accepted: @escaping @Sendable (String) async -> Void = { _ in }
    ) async throws -> JobResult {
        switch try await submit(request, on: profile) {
        case .answered(let result):
            return result
        case .accepted(let id, let status, let submissions, let submittedAt, let acceptedAt):
            await accepted(id)
            guard let pollRequest = poll(id) else {
                throw ClientError(
                    kind: .badResponse,
                    message: "\(profile.id) answered \(status) for job \(id) and documents no way to ask about it later",
                    endpoint: profile.id, jobID: id)
            }
            var result = try await wait(
                for: id, status: status, request: pollRequest, on: profile, policy: policy, signals: signals,
                deadline: submittedAt + .seconds(policy.timeout), submittedAt: submittedAt, acceptedAt: acceptedAt)
            result.submissions = submissions
            return result
        }
    }

    /// Waits for an accepted job `id` to end, polling `request` (the job's
    /// status GET). Poll failures are retried until the deadline: the job is
    /// never given up for lost while it may still finish. `submittedAt` (when
    /// the submission left) and `acceptedAt` (when its answer came) let the
    /// poll planner learn how long the endpoint's jobs take. All three are
    /// this client's instants (as `submit` gives them, or those plus a
    /// duration): they stand for the client's clock, which times the wait.
    public func wait(
        for id: String, status: String = "submitted", request: BuiltRequest, on profile: ProviderProfile,
        policy: WaitPolicy = WaitPolicy(), signals: JobSignals? = nil,
        deadline: ContinuousClock.Instant? = nil, submittedAt: ContinuousClock.Instant? = nil,
        acceptedAt: ContinuousClock.Instant? = nil
    ) async throws -> JobResult {
        let deadline = deadline.map(instants.time) ?? clock.now().addingTimeInterval(policy.timeout)
        let submittedAt = submittedAt.map(instants.time), acceptedAt = acceptedAt.map(instants.time)
        var interval = signals == nil ? policy.firstInterval : policy.fallbackInterval
        var polls = 0
        var lastStatus = status
        var signalled = false
        // Seconds since submission when the job was last seen running, and
        // the least pause the endpoint asked for (Retry-After).
        var seenRunning: Double = 0
        var asked: Double = 0
        // Why the signals stopped for good, once they did: the job is then
        // polled as if none had been expected, and told why.
        var fellBack: String? = nil
        func elapsed() -> Double? { submittedAt.map { clock.now().timeIntervalSince($0) } }
        while true {
            // Signals that stopped may have missed the job's end: it is asked
            // about at once.
            var pollNow = false
            if fellBack == nil, let reason = signals?.closedReason {
                fellBack = reason
                interval = policy.firstInterval
                pollNow = true
            }
            let listening = fellBack == nil ? signals : nil
            let remaining = clock.seconds(until: deadline)
            guard remaining > 0 else {
                throw ClientError(
                    kind: .timedOut,
                    message: "\(profile.id): job \(id) was still \(lastStatus) after \(String(format: "%g", policy.timeout)) s; it may yet finish (and be billed): ask for job \(id) again rather than submitting anew",
                    endpoint: profile.id, jobID: id)
            }
            var known = polling.version
            let planned = listening == nil ? polling.pause(endpoint: profile.id, elapsed: elapsed(), cold: interval, policy: policy) : interval
            let pause = min(max(planned, asked), remaining)
            if pollNow {
                // No pause.
            } else if let listening {
                let signal = await listening.wait(for: id, upTo: pause, clock: clock)
                if signal == nil, let reason = listening.closedReason {
                    // Woken by their closing: asked about now, and polled from then on.
                    fellBack = reason
                    interval = policy.firstInterval
                }
                if let signal {
                    signalled = true
                    if let payload = signal.payload,
                        let outcome = try? ResponseReader.read(payload, status: 200, from: profile, jobID: id)
                    {
                        switch outcome {
                        case .completed(let images, let cost, _):
                            return JobResult(
                                images: images, reportedCost: cost, requestID: id, submissions: 0, polls: polls,
                                signalled: true)
                        case .failed(let message, _):
                            throw ClientError(
                                kind: .rejected, message: "\(profile.id): job \(id) failed: \(message)", endpoint: profile.id,
                                jobID: id)
                        case .pending, .finished:
                            break
                        }
                    }
                }
                try Task.checkCancellation()
            } else {
                // A planned pause is planned again whenever another job of
                // the run ends meanwhile: what it teaches may bring the poll
                // forward. A pause the endpoint asked for, or a fixed one, is kept.
                var due = clock.now().addingTimeInterval(pause)
                if asked > 0 || policy.fixedInterval != nil || submittedAt == nil {
                    try await clock.sleep(until: due)
                } else {
                    while clock.now() < due {
                        let lesson = try await clock.value(of: { [polling, known] in await polling.lesson(after: known) }, before: due)
                        guard lesson != nil else { break }
                        // Jobs sent together end together: what the next tenth of a
                        // second teaches too is planned from at once, rather than
                        // each lesson moving the poll on its own.
                        try await clock.sleep(until: min(due, clock.now().addingTimeInterval(Self.lessonWindow)))
                        guard let seconds = elapsed() else { break }
                        known = polling.version
                        let again = polling.pause(endpoint: profile.id, elapsed: seconds, cold: interval, policy: policy)
                        due = min(due, clock.now().addingTimeInterval(again))
                    }
                }
            }
            asked = 0
            try await polling.admit(endpoint: profile.id, perSecond: policy.maxPollsPerSecond)
            let asking = elapsed()
            var attempts = 0
            let answer = try await exchange(
                request, profile: profile, what: "asking about job \(id)", persistence: .until(deadline),
                attempts: &attempts)
            polls += attempts
            if answer.status == 404 {
                throw ClientError(
                    kind: .rejected,
                    message: "\(profile.id): the endpoint no longer knows job \(id) (HTTP 404 when polled)")
            }
            var outcome: ResponseOutcome
            var warnings: [String] = []
            do {
                outcome = try ResponseReader.read(answer.body, status: answer.status, from: profile, jobID: id) {
                    warnings.append($0)
                }
            } catch {
                // An unreadable poll answer is another failed poll: keep asking.
                interval = min(policy.maxInterval, interval * 1.5)
                continue
            }
            var settled = answer
            if case .finished = outcome {
                // Finished: its results, or its failure, are fetched apart.
                (outcome, settled) = try await results(of: id, asking: request, on: profile) { warnings.append($0) }
            }
            switch outcome {
            case .completed(let images, let cost, _):
                if let asking, listening == nil {
                    if let reported = Self.reportedDuration(answer.body, on: profile) {
                        // The endpoint times the job from when it took it, which is
                        // about when its acceptance was answered: counted from the
                        // submission, as the polls are, within what the polls saw.
                        let taken = acceptedAt.flatMap { accepted in submittedAt.map { accepted.timeIntervalSince($0) } } ?? 0
                        let duration = min(asking, max(seenRunning, taken + reported))
                        polling.record(endpoint: profile.id, low: duration, high: duration)
                    } else {
                        polling.record(endpoint: profile.id, low: seenRunning, high: asking)
                    }
                }
                return JobResult(
                    images: images, reportedCost: cost, requestID: id, submissions: 0, polls: polls, signalled: signalled,
                    warnings: warnings + (fellBack.map { [$0] } ?? []))
            case .failed(let message, _):
                if !(200..<300).contains(settled.status) {
                    throw ClientError(
                        kind: .rejected, message: "\(message) (asking about job \(id))", endpoint: profile.id, jobID: id,
                        status: settled.status)
                }
                throw ClientError(
                    kind: .rejected, message: "\(profile.id): job \(id) failed: \(message)", endpoint: profile.id, jobID: id,
                    status: settled.status)
            case .finished:
                throw ClientError(
                    kind: .badResponse, message: "\(profile.id): job \(id) finished, and fetching its results said only that again",
                    endpoint: profile.id, jobID: id, status: settled.status)
            case .pending(_, let status):
                lastStatus = status
                if let asking { seenRunning = asking }
                asked = answer.retryAfter ?? 0
                if listening == nil { interval = min(policy.maxInterval, interval * 1.5) }
            }
        }
    }

    /// Fetches the results of job `id`, which a poll (`asking`) said has
    /// finished, from the endpoint's result route, where and as the poll was
    /// sent: what it says, and its answer. Tried again within the retry
    /// policy (a fetch is free); a network failure leaves the job to be asked
    /// about again (`.network`, with its id), never sent again.
    private func results(
        of id: String, asking request: BuiltRequest, on profile: ProviderProfile, warn: (String) -> Void
    ) async throws -> (ResponseOutcome, Answer) {
        guard let fetch = RequestBuilder.result(id: id, for: profile, following: request) else {
            throw ClientError(
                kind: .badResponse, message: "\(profile.id): job \(id) finished and the endpoint documents no way to fetch its results",
                endpoint: profile.id, jobID: id)
        }
        var attempts = 0
        let answer: Answer
        do {
            answer = try await exchange(fetch, profile: profile, what: "fetching the results of job \(id)", attempts: &attempts)
        } catch var error as ClientError {
            error.jobID = id
            throw error
        }
        do {
            return (try ResponseReader.read(answer.body, status: answer.status, from: profile, jobID: id, warn: warn), answer)
        } catch {
            throw ClientError(
                kind: .badResponse, message: "\(error.message) (fetching the results of job \(id))", endpoint: profile.id, jobID: id,
                status: answer.status)
        }
    }

    /// Seconds a waiting job lets other jobs' ends gather before it plans
    /// its next poll again from what they taught.
    static let lessonWindow = 0.1

    /// A job's queue and run time as its host reports it in a poll's
    /// answer, in seconds, or nil.
    static func reportedDuration(_ body: Data, on profile: ProviderProfile) -> Double? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
        return profile.host.reportedDuration(object)
    }

    /// The bytes of a result, downloaded at once (some URLs expire) or decoded
    /// from inline data, and checked to be an image in a format the endpoint
    /// returns, within `checks`. Downloads send no key; see `ResultChecks`.
    public func fetch(_ result: ResultImage, from profile: ProviderProfile, checks: ResultChecks = ResultChecks())
        async throws -> Data
    {
        let data: Data
        switch result {
        case .inline(let bytes):
            guard bytes.count <= checks.maxBytes else {
                throw checks.tooLarge("an inline result", size: "\(bytes.count) bytes", endpoint: profile.id)
            }
            data = bytes
        case .url(let url):
            data = try await download(url, from: profile, checks: checks)
        }
        let sniffed = data.withUnsafeBytes { FormatSniffer.sniff(UnsafeRawBufferPointer(rebasing: $0.prefix(FormatSniffer.window))) }
        let returned = ResultChecks.formats(of: profile)
        switch sniffed {
        case .image(let format) where returned.contains(format):
            return data
        case .image(let format):
            let names = ImageFormat.allCases.filter(returned.contains).map(\.displayName)
            throw ClientError(
                kind: .badResponse,
                message: "\(profile.id): the result is \(format.displayName), a format \(profile.id) does not return (\(names.joined(separator: ", "))); refused",
                endpoint: profile.id)
        case .refused(let name, _):
            throw ClientError(kind: .badResponse, message: "\(profile.id): the result is \(name), not an image", endpoint: profile.id)
        case .unknown:
            let excerpt = data.withUnsafeBytes { FormatSniffer.excerpt($0) }
            throw ClientError(
                kind: .badResponse,
                message: "\(profile.id): the result is not an image (\(data.isEmpty ? "empty" : excerpt))", endpoint: profile.id)
        }
    }

    private func host(_ url: String) -> String {
        URL(string: url)?.host ?? url
    }

    /// A network error in a few words (AsyncHTTPClient's descriptions are long).
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "connect timeout"
            case .readTimeout: return "read timeout"
            case .deadlineExceeded: return "request timeout"
            case .remoteConnectionClosed: return "connection closed by the server"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }
}

/// A request body as AsyncHTTPClient streams it: each element is the next
/// chunk of the body, produced when the connection asks for it.
struct BodyChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    /// The reader is used by one iterator, on one task at a time: AsyncHTTPClient
    /// pulls a streamed body sequentially, so it is never shared between threads.
    nonisolated(unsafe) let reader: RequestBodyReader

    struct AsyncIterator: AsyncIteratorProtocol {
        var reader: RequestBodyReader
        var allocator = ByteBufferAllocator()

        mutating func next() async throws -> ByteBuffer? {
            var buffer = allocator.buffer(capacity: 256 * 1024)
            let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 256 * 1024) { raw in
                try reader.read(into: raw)
            }
            return count == 0 ? nil : buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader) }
}
