import Crypto
import Foundation
import QieClient
import QieImaging
import QieProviders
import Synchronization

/// Settings of an `edit` run.
public struct EditSettings: Sendable {
    public var target: ProviderTarget
    /// What every image is asked (prompt and options); images are filled in per input.
    public var request: EditRequest
    /// Extra reference images sent after each input.
    public var references: [String]
    /// The format written; nil keeps what the endpoint returns.
    public var outputFormat: OutputFormat?
    public var quality: Int?
    /// Undo the planned padding on the result.
    public var restore: RestoreMode?
    public var limits: ImageLimits
    public var concurrency: Int
    /// The endpoint's address; nil uses the profile's (or its base-URL variable).
    public var baseURL: String?
    /// The key, from the environment variable the profile names.
    public var apiKey: String
    /// How results come back: synchronously, by polling, callback or events.
    public var flow: ProviderProfile.Flow
    /// Polling intervals and the overall timeout of one job.
    public var wait: WaitPolicy
    /// With the callback flow: where the local listener binds (host, port).
    public var callbackListen: (host: String, port: Int)?
    /// With the callback flow: the secret callbacks are signed with (from the environment).
    public var signingSecret: String?
    /// Prompts (and seeds, references) per image; the run's request fills the gaps.
    public var prompts = PromptManifest()
    /// Prices for estimates and the budget (the endpoint's own unless overridden).
    public var price = PriceOverride()
    public var rounding = MegapixelRounding.none
    /// Stop submitting before spent + in flight would pass this (USD).
    public var maxCost: Decimal?
    /// Jobs that failed in an earlier run are tried again only with this.
    public var retryFailed = false
    /// Submissions per second to the endpoint, at most.
    public var rate: Double?

    public init(
        target: ProviderTarget, request: EditRequest, references: [String] = [], outputFormat: OutputFormat? = nil,
        quality: Int? = nil, restore: RestoreMode? = nil, limits: ImageLimits = .default, concurrency: Int = 4,
        baseURL: String? = nil, apiKey: String, flow: ProviderProfile.Flow? = nil, wait: WaitPolicy = WaitPolicy(),
        callbackListen: (host: String, port: Int)? = nil, signingSecret: String? = nil
    ) {
        self.target = target
        self.request = request
        self.references = references
        self.outputFormat = outputFormat
        self.quality = quality
        self.restore = restore
        self.limits = limits
        self.concurrency = max(1, concurrency)
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.flow = flow ?? target.profile.defaultFlow
        self.wait = wait
        self.callbackListen = callbackListen
        self.signingSecret = signingSecret
    }
}

/// An endpoint's refusal or an unsupported answer, in words for the user.
struct EditFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// What one edit produced, as written next to the outputs.
public struct EditRecord: Sendable, Codable {
    /// The job's key in the ledger (input content, endpoint and result-changing options).
    public var job: String
    public var endpoint: String
    public var model: String
    public var prompt: String
    public var seed: Int?
    public var input: String
    /// SHA-256 of the input file's bytes, hex.
    public var inputSHA256: String
    public var outputs: [String]
    public var requestIDs: [String]
    public var flow: ProviderProfile.Flow
    /// Submissions sent and status polls made, over all requests.
    public var submissions: Int
    public var polls: Int
    public var reportedCostUSD: String?
    public var estimatedCostUSD: String?
    public var timings: Timings
    public var plan: SizePlan
    public var restored: RestoreMode?

    /// Seconds spent in each step.
    public struct Timings: Sendable, Codable {
        /// Reading, hashing and preparing the inputs.
        public var prepare: Double
        /// From the first submission to the last answer (the endpoint's time and the waits).
        public var endpoint: Double
        /// Downloading or decoding the results.
        public var fetch: Double
        /// Converting, restoring and writing.
        public var finish: Double
        public var total: Double
    }
}

/// Edits each input on an endpoint: prepare, send, fetch, convert or restore, write.
public struct EditBatch: Sendable {
    public var inputs: [InputFile]
    public var output: OutputFolder
    public var settings: EditSettings

    public init(inputs: [InputFile], output: OutputFolder, settings: EditSettings) {
        self.inputs = inputs
        self.output = output
        self.settings = settings
    }

    /// Runs with at most `settings.concurrency` jobs in flight; `report` is
    /// called once per job (an input, or one copy of it when requests are
    /// repeated), `accepted` whenever an endpoint accepts a job (with its id,
    /// once it is in the ledger). With `ledger`, jobs done in an earlier run are
    /// not done again, and accepted jobs are polled, not resubmitted. With the
    /// callback or events flow, the listener runs for the length of the batch.
    public func run(
        client: EditClient, ledger: Ledger? = nil, budget: Budget? = nil,
        cancellation: BatchCancellation = BatchCancellation(),
        accepted: @escaping @Sendable (InputFile, String) -> Void = { _, _ in },
        started: @escaping @Sendable (InputFile) -> Void = { _ in },
        report: @escaping @Sendable (PrepareResult) -> Void
    ) async throws -> BatchSummary {
        let start = Date()
        var initial = BatchSummary()
        initial.action = "edited"
        let summary = Mutex(initial)
        let naming = OutputNaming(inputs)
        let profile = settings.target.profile
        let signals: JobSignals? = settings.flow == .callback || settings.flow == .serverSentEvents ? JobSignals() : nil
        let listener = try listener(client: client, signals: signals)
        let limiter = settings.rate.map { RateLimiter(perSecond: $0) }
        let jobs = jobs()
        try await withThrowingTaskGroup(of: Void.self) { services in
            if let listener {
                let (ready, readiness) = AsyncStream<Result<Void, any Error>>.makeStream()
                services.addTask {
                    do {
                        try await listener({ readiness.yield(.success(())) })
                    } catch {
                        readiness.yield(.failure(error))
                    }
                    readiness.finish()
                }
                // Submit nothing before the listener is up.
                var iterator = ready.makeAsyncIterator()
                switch await iterator.next() {
                case .failure(let error)?:
                    throw EditFailure(message: "\(profile.id): cannot start the \(settings.flow.rawValue) listener: \(error)")
                case nil:
                    throw EditFailure(message: "\(profile.id): the \(settings.flow.rawValue) listener stopped at once")
                case .success?:
                    break
                }
            }
            let context = JobContext(
                naming: naming, client: client, ledger: ledger, budget: budget, limiter: limiter, signals: signals,
                cancellation: cancellation)
            await withTaskGroup(of: PrepareResult.self) { group in
                var next = 0
                func addNext() {
                    guard next < jobs.count, !cancellation.isCancelled, budget?.wasReached != true else { return }
                    let job = jobs[next]
                    next += 1
                    started(job.input)
                    group.addTask { await edit(job, context) { accepted(job.input, $0) } }
                }
                for _ in 0..<settings.concurrency { addNext() }
                while let result = await group.next() {
                    summary.withLock { $0.record(result.outcome) }
                    report(result)
                    addNext()
                }
                // The budget stopped the run: the jobs never started are held too.
                if budget?.wasReached == true { summary.withLock { $0.held += jobs.count - next } }
            }
            services.cancelAll()
        }
        return summary.withLock { $0.close(total: jobs.count, since: start) }
    }

    /// The jobs of the batch: each input once, or once per copy when the
    /// endpoint has no field for several outputs and requests are repeated.
    public func jobs() -> [EditJob] {
        let profile = settings.target.profile
        let copies = profile.field(for: .numImages) == nil ? max(1, settings.request.numImages) : 1
        return inputs.flatMap { input in
            (0..<copies).map { index in EditJob(input: input, copy: copies == 1 ? 0 : index + 1) }
        }
    }

    /// The callback listener or event-stream reader the flow needs, as a
    /// function that runs until cancelled and calls its argument once ready.
    private func listener(client: EditClient, signals: JobSignals?) throws
        -> (@Sendable (@escaping @Sendable () -> Void) async throws -> Void)?
    {
        let profile = settings.target.profile
        guard let signals else { return nil }
        switch settings.flow {
        case .callback:
            guard let address = settings.callbackListen else {
                throw EditFailure(message: "\(profile.id): the callback flow needs an address to listen on")
            }
            let listener = CallbackListener(
                profile: profile, host: address.host, port: address.port, signingSecret: settings.signingSecret,
                signals: signals)
            return { ready in try await listener.run { _ in ready() } }
        case .serverSentEvents:
            guard let request = RequestBuilder.events(for: profile, apiKey: settings.apiKey, baseURL: settings.baseURL)
            else { throw EditFailure(message: "\(profile.id) has no event stream") }
            let stream = EventStreamListener(client: client, request: request, profile: profile, signals: signals)
            // Jobs are polled as a fallback, so an unreachable stream does not
            // hold the batch up: it is ready as soon as it is trying.
            return { ready in
                ready()
                await stream.run()
            }
        default:
            return nil
        }
    }

    /// SHA-256 of a file's bytes, read in 1 MB pieces, as hex.
    static func sha256(of path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ImagingError(.unreadable, "cannot open \(path) to hash it")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Prepares an input (planned for the endpoint) or a reference (only normalised).
    func prepare(_ path: String, resize: Bool = true) throws -> (PreparedImage, SizePlan) {
        let target = settings.target
        var plan: SizePlan? = nil
        let prepared = try ImageProcessor.prepare(file: path, limits: settings.limits) { (info) throws(ImagingError) in
            let accepts = target.profile.images.accepts
            let format = accepts.contains(info.format.defaultOutput) ? info.format.defaultOutput : .png
            let encode = EncodeOptions(format: format, quality: format == .png ? nil : 95)
            do {
                let planned = try SizePlanner.plan(
                    input: info.displaySize, for: target.profile, request: target.size, fit: target.fit,
                    position: target.position)
                plan = planned
                guard resize else { return (nil, encode) }
                return (ResizeOptions(size: planned.target, fit: planned.fit, position: target.position, fill: target.fill), encode)
            } catch {
                throw ImagingError(.invalidOption, "\(error)")
            }
        }
        guard let plan else { throw ImagingError(.invalidOption, "no size plan") }
        return (prepared, plan)
    }

    /// Restores and/or converts a result to what the user asked for.
    func finish(_ result: Data, plan geometry: ResizeGeometry) throws -> (Data, OutputFormat) {
        let info = try ImageProbe.probe(data: result)
        let wanted = settings.outputFormat ?? OutputFormat(name: info.format.rawValue) ?? .png
        let encode = EncodeOptions(format: wanted, quality: settings.quality)
        if let mode = settings.restore {
            return (try ImageProcessor.restore(data: result, geometry: geometry, mode: mode, encode: encode).data, wanted)
        }
        if wanted.rawValue == info.format.rawValue && settings.quality == nil {
            return (result, wanted)
        }
        return (try ImageProcessor.prepare(data: result, resize: nil, encode: encode).data, wanted)
    }
}
