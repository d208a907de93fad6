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

    /// Runs with at most `settings.concurrency` edits in flight; `report` is
    /// called once per input.
    /// Runs with at most `settings.concurrency` edits in flight; `report` is
    /// called once per input, `accepted` whenever an endpoint accepts a job
    /// (with its id, before waiting for it). With the callback or events flow,
    /// the listener runs for the length of the batch.
    public func run(
        client: EditClient, cancellation: BatchCancellation = BatchCancellation(),
        accepted: @escaping @Sendable (InputFile, String) -> Void = { _, _ in },
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
            await withTaskGroup(of: PrepareResult.self) { group in
                var next = 0
                func addNext() {
                    guard next < inputs.count, !cancellation.isCancelled else { return }
                    let input = inputs[next]
                    next += 1
                    group.addTask {
                        await edit(input, naming: naming, client: client, signals: signals) { accepted(input, $0) }
                    }
                }
                for _ in 0..<settings.concurrency { addNext() }
                while let result = await group.next() {
                    summary.withLock { $0.record(result.outcome) }
                    report(result)
                    addNext()
                }
            }
            services.cancelAll()
        }
        return summary.withLock { $0.close(total: inputs.count, since: start) }
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

    func edit(
        _ input: InputFile, naming: OutputNaming, client: EditClient, signals: JobSignals?,
        accepted: @escaping @Sendable (String) -> Void
    ) async -> PrepareResult {
        let start = Date()
        let profile = settings.target.profile
        let outcome: PrepareResult.Outcome
        do {
            let (prepared, plan, digest) = try await ImagingRuntime.offload {
                let (prepared, plan) = try prepare(input.path)
                return (prepared, plan, try Self.sha256(of: input.path))
            }
            let prepareSeconds = Date().timeIntervalSince(start)
            var request = settings.request
            request.images = [.bytes(prepared.data, format: prepared.format, filename: "input.\(prepared.format.fileExtension)")]
            for reference in settings.references {
                let (ref, _) = try await ImagingRuntime.offload { try prepare(reference, resize: false) }
                request.images.append(.bytes(ref.data, format: ref.format, filename: "reference.\(ref.format.fileExtension)"))
            }
            let built = try RequestBuilder.build(
                request, plan: plan, for: profile, apiKey: settings.apiKey, baseURL: settings.baseURL, flow: settings.flow)
            let repeats = built.emulations.compactMap { if case .repeatRequest(let n) = $0 { n } else { nil } }.first ?? 1

            var results: [Data] = []
            var ids: [String] = []
            var reported: Decimal? = nil
            var submissions = 0
            var polls = 0
            var endpointSeconds = 0.0
            var fetchSeconds = 0.0
            let (apiKey, baseURL) = (settings.apiKey, settings.baseURL)
            for _ in 0..<repeats {
                let sent = Date()
                let job = try await client.perform(
                    built, on: profile, poll: { RequestBuilder.poll(id: $0, for: profile, apiKey: apiKey, baseURL: baseURL) },
                    policy: settings.wait, signals: signals, accepted: { accepted($0) })
                endpointSeconds += Date().timeIntervalSince(sent)
                submissions += job.submissions
                polls += job.polls
                if let id = job.requestID { ids.append(id) }
                if let cost = job.reportedCost { reported = (reported ?? 0) + cost }
                let fetching = Date()
                for image in job.images { results.append(try await client.fetch(image, from: profile)) }
                fetchSeconds += Date().timeIntervalSince(fetching)
            }

            let finishing = Date()
            let stem = OutputNaming.stem(naming.relativeOutputPath(for: input, format: .png))
            var written: [String] = []
            for (index, result) in results.enumerated() {
                let (data, format) = try await ImagingRuntime.offload { try finish(result, plan: prepared.geometry) }
                let suffix = results.count > 1 ? "-\(index + 1)" : ""
                written.append(try output.write(data, to: "\(stem)\(suffix).\(format.fileExtension)", protecting: input.path))
            }
            let estimate = CostEstimator.estimate(profile, outputSize: plan.expectedOutput, images: settings.request.numImages)
            let finishSeconds = Date().timeIntervalSince(finishing)
            let record = EditRecord(
                endpoint: profile.id, model: profile.model, prompt: settings.request.prompt, seed: settings.request.seed,
                input: input.path, inputSHA256: digest, outputs: written, requestIDs: ids, flow: settings.flow,
                submissions: submissions, polls: polls, reportedCostUSD: reported.map { "\($0)" },
                estimatedCostUSD: estimate.total.map { "\($0)" },
                timings: .init(
                    prepare: prepareSeconds, endpoint: endpointSeconds, fetch: fetchSeconds, finish: finishSeconds,
                    total: Date().timeIntervalSince(start)),
                plan: plan, restored: settings.restore)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try output.write(try encoder.encode(record), to: stem + ".json")
            let first = try ImageProbe.probe(file: written[0])
            outcome = .written(
                path: written[0],
                image: PreparedSummary(
                    format: OutputFormat(name: first.format.rawValue) ?? .png, size: first.displaySize,
                    byteCount: first.byteCount, source: prepared.source, geometry: prepared.geometry, plan: plan,
                    requestPath: nil))
        } catch let error as ImagingError {
            outcome = input.isSkippable(error) ? .skipped(reason: "not an image") : .failed(reason: error.reason)
        } catch let error as OutputError {
            outcome = .failed(reason: "cannot write \(DisplayPath.escape(error.path)): \(error.reason)")
        } catch {
            outcome = .failed(reason: "\(error)")
        }
        return PrepareResult(input: input, outcome: outcome, seconds: Date().timeIntervalSince(start))
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
    private func prepare(_ path: String, resize: Bool = true) throws -> (PreparedImage, SizePlan) {
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
    private func finish(_ result: Data, plan geometry: ResizeGeometry) throws -> (Data, OutputFormat) {
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
