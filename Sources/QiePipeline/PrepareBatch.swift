import Foundation
import QieFiles
import QieImaging
import QieProviders
import Synchronization

/// Preparing for an endpoint: its planned size per image, and optionally the
/// request each image would be sent in.
public struct ProviderTarget: Sendable {
    /// The endpoint.
    public var profile: ProviderProfile
    /// The size asked of it (planned from each image's shape when automatic).
    public var size: SizeRequest
    /// How each image reaches the planned size.
    public var fit: Fit
    /// Where the image sits in the padding, or which part a crop keeps.
    public var position: Position
    /// What fills the padding.
    public var fill: PaddingFill
    /// When set, each image's request body is written next to it
    /// (`NAME.request.http`, key redacted), with these options.
    public var request: EditRequest?

    /// A target on `profile`; by default sized automatically, padded, centred, on white, with no request written.
    public init(
        profile: ProviderProfile, size: SizeRequest = .automatic, fit: Fit = .contain, position: Position = .centre,
        fill: PaddingFill = .colour(.white), request: EditRequest? = nil
    ) {
        self.profile = profile
        self.size = size
        self.fit = fit
        self.position = position
        self.fill = fill
        self.request = request
    }
}

/// Settings of a `prepare` run.
public struct PrepareSettings: Sendable {
    /// The target size and fit; nil keeps each image's own size.
    public var resize: ResizeOptions?
    /// The output format; nil keeps each input's format (HEIC and TIFF become PNG).
    public var format: OutputFormat?
    /// Encoder settings; `format` inside is replaced per file.
    public var encode: EncodeOptions
    /// Header limits checked before each image is decoded.
    public var limits: ImageLimits
    /// Images processed at once; defaults to the number of cores.
    public var concurrency: Int
    /// Plan sizes for an endpoint instead of `resize`.
    public var provider: ProviderTarget?
    /// How outputs are named; nil: after their inputs (see `OutputNaming`).
    public var outputName: OutputNameTemplate?
    /// Leave an input alone when its output is in the folder already (a
    /// file, a folder or a link of that name): it is counted as `existing`,
    /// not read past its header, not written.
    public var skipExisting = false

    /// Settings for a run; by default images keep their size and format, on every core.
    public init(
        resize: ResizeOptions? = nil, format: OutputFormat? = nil, encode: EncodeOptions = EncodeOptions(format: .png),
        limits: ImageLimits = .default, concurrency: Int = ProcessInfo.processInfo.activeProcessorCount,
        provider: ProviderTarget? = nil
    ) {
        self.provider = provider
        self.resize = resize
        self.format = format
        self.encode = encode
        self.limits = limits
        self.concurrency = max(1, concurrency)
    }

    /// Checks the settings before any file is read: the concurrency, lossless
    /// encoding (webp or avif only), and with an endpoint, what it would
    /// refuse (its size, the fit, the fields of the requests written, which
    /// need a prompt). Without a fixed format, what depends on each input's
    /// format is checked per file.
    public func validate() throws(SettingError) {
        if concurrency < 1 { throw SettingError(.concurrency, value: String(concurrency), .invalid(expected: "at least 1")) }
        if encode.lossless && format != .webp && format != .avif {
            throw SettingError(.lossless, .onlyWith(.format, value: "webp or avif"))
        }
        if let provider { try provider.validate() }
        guard let format else { return }
        var options = encode
        options.format = format
        try options.validate()
        try resize?.validate(for: format)
    }
}

extension ProviderTarget {
    /// The edit options its requests would be sent with.
    public var editOptions: EditOptions {
        var options = EditOptions(endpoint: profile.id)
        options.size = size
        options.fit = fit
        options.position = position
        if let request {
            options.prompt = request.prompt
            options.negativePrompt = request.negativePrompt
            options.seed = request.seed
            options.numImages = request.numImages
            options.format = request.outputFormat
        }
        return options
    }

    /// Checks what the endpoint would refuse before any image is read: the
    /// size and fit, and the requests' fields (which need a prompt).
    public func validate() throws(SettingError) {
        if let request, request.prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw SettingError(.prompt, .missing(hint: "the requests written beside the images carry it"))
        }
        try editOptions.validate()
    }
}

/// What happened to one input.
public struct PrepareResult: Sendable {
    /// How a file ended.
    public enum Outcome: Sendable {
        /// Written to `path`.
        case written(path: String, image: PreparedSummary)
        /// Not written: why.
        case failed(EditError)
        /// Not an image and not named like one, found while walking a folder.
        case skipped
        /// Not written: its output is at `path` already (`skipExisting`).
        case existing(path: String)
    }

    /// What one item of a batch came to, for counting.
    public enum Kind: Sendable {
        /// Written; failed; skipped (not an image); done in an earlier run;
        /// held back by the budget; ended by another worker sharing the run's
        /// store; left alone because its output exists (`skipExisting`).
        case written, failed, skipped, earlier, held, elsewhere, existing
    }

    /// The input.
    public var input: InputFile
    /// How it ended.
    public var outcome: Outcome
    /// Seconds it took.
    public var seconds: Double

    /// Its kind, for the batch's counts.
    public var kind: Kind {
        switch outcome {
        case .written: .written
        case .failed: .failed
        case .skipped: .skipped
        case .existing: .existing
        }
    }
}

/// What was written, without the pixels.
public struct PreparedSummary: Sendable, Codable {
    /// The format written.
    public var format: OutputFormat
    /// The size written.
    public var size: PixelSize
    /// Bytes written.
    public var byteCount: Int
    /// The input's header.
    public var source: ImageInfo
    /// The resize, crop and padding applied.
    public var geometry: ResizeGeometry
    /// The endpoint plan, when preparing for one.
    public var plan: SizePlan?
    /// The request written next to the image, when asked for.
    public var requestPath: String?

    /// A summary of an image written.
    public init(
        format: OutputFormat, size: PixelSize, byteCount: Int, source: ImageInfo, geometry: ResizeGeometry,
        plan: SizePlan? = nil, requestPath: String? = nil
    ) {
        self.format = format
        self.size = size
        self.byteCount = byteCount
        self.source = source
        self.geometry = geometry
        self.plan = plan
        self.requestPath = requestPath
    }
}

/// Counts at the end of a run.
public struct BatchSummary: Sendable, Equatable {
    /// Items in the batch (jobs, or files for prepare), input problems included.
    public var total = 0
    /// Written.
    public var written = 0
    /// Failed (input problems included).
    public var failed = 0
    /// Not images, found in folders.
    public var skipped = 0
    /// Done in an earlier run.
    public var earlier = 0
    /// Not sent because of the budget.
    public var held = 0
    /// Ended by another worker sharing the run's store (done or failed there).
    public var elsewhere = 0
    /// Left alone because their output exists (`PrepareSettings.skipExisting`).
    public var existing = 0
    /// Not started because the run was stopped.
    public var notStarted = 0
    /// Seconds the run took.
    public var seconds = 0.0
    /// What the run did to each file, for the summary line ("prepared", "edited").
    public var action = "prepared"

    /// An empty summary.
    public init() {}

    /// Whether every item was written or done earlier.
    public var succeeded: Bool { failed == 0 && notStarted == 0 && held == 0 }

    /// Counts one finished item.
    mutating func record(_ kind: PrepareResult.Kind) {
        switch kind {
        case .written: written += 1
        case .failed: failed += 1
        case .skipped: skipped += 1
        case .earlier: earlier += 1
        case .held: held += 1
        case .elsewhere: elsewhere += 1
        case .existing: existing += 1
        }
    }

    /// The totals once a run over `total` items, begun at `start`, is over.
    mutating func close(total: Int, since start: Date) -> BatchSummary {
        self.total = total
        notStarted = total - written - failed - skipped - earlier - held - elsewhere - existing
        seconds = Date().timeIntervalSince(start)
        return self
    }
}

/// Stops a run: between images (`cancel()`, a first Ctrl-C), or at once
/// (`stopNow()`, a second one).
public final class BatchCancellation: Sendable {
    private let flag = Atomic<Bool>(false)
    private struct Now {
        var stopped = false
        var lastToken: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }
    private let now = Mutex(Now())

    /// A token that has not been cancelled.
    public init() {}
    /// Asks the run to start no more images; those in progress finish. Safe from any thread.
    public func cancel() { flag.store(true, ordering: .relaxed) }
    /// Whether `cancel()` (or `stopNow()`) was called.
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }

    /// Stops the work in progress too: an edit run cancels its edits, so
    /// jobs not yet sent are withdrawn, and accepted jobs are given up:
    /// cancelled at endpoints that can cancel them (recorded `cancelled`
    /// when the endpoint confirms they never ran, `uncertain` when it was
    /// too late to know), left to be asked about on resume elsewhere. What
    /// may have been billed is recorded before the run returns. Safe from any thread.
    public func stopNow() {
        cancel()
        let waiters = now.withLock { now -> [CheckedContinuation<Void, Never>] in
            now.stopped = true
            defer { now.waiters = [:] }
            return Array(now.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether `stopNow()` was called.
    public var isStoppedNow: Bool { now.withLock { $0.stopped } }

    /// Returns once `stopNow()` is called, or when the calling task is cancelled.
    func untilStoppedNow() async {
        let token = now.withLock { now -> UInt64 in
            now.lastToken += 1
            return now.lastToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let waiting = now.withLock { now -> Bool in
                    guard !now.stopped, !Task.isCancelled else { return false }
                    now.waiters[token] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            now.withLock { $0.waiters.removeValue(forKey: token) }?.resume()
        }
    }
}

/// Prepares a list of inputs into an output folder, several at once.
public struct PrepareBatch: Sendable {
    /// The files to prepare.
    public var inputs: [InputFile]
    /// Where the results are written.
    public var output: OutputFolder
    /// How each file is prepared.
    public var settings: PrepareSettings

    /// A batch of `inputs` into `output`.
    public init(inputs: [InputFile], output: OutputFolder, settings: PrepareSettings) {
        self.inputs = inputs
        self.output = output
        self.settings = settings
    }

    /// How the outputs are named: after the inputs, or by
    /// `settings.outputName`, whose names are checked here (see `OutputNaming`).
    public func naming() throws(SettingError) -> OutputNaming {
        guard let template = settings.outputName else { return OutputNaming(inputs) }
        return try OutputNaming(inputs, template: template, format: settings.format)
    }

    /// Runs the batch on `settings.concurrency` threads. `report` is called once
    /// per input, from the worker that finished it, one call at a time.
    /// Names that would meet (`settings.outputName`) are refused before any
    /// file is read.
    public func run(
        cancellation: BatchCancellation = BatchCancellation(), report: @escaping @Sendable (PrepareResult) -> Void
    ) throws(SettingError) -> BatchSummary {
        let naming = try naming()
        let order = largestFirst(inputs)
        let next = Atomic<Int>(0)
        let summary = Mutex(BatchSummary())
        let start = Date()
        let workers = min(settings.concurrency, max(1, inputs.count))

        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while !cancellation.isCancelled {
                let position = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard position < order.count else { break }
                let result = prepare(inputs[order[position]], naming: naming)
                summary.withLock { totals in
                    totals.record(result.kind)
                    report(result)
                }
            }
            ImagingRuntime.endOfJobOnThisThread()
        }
        return summary.withLock { $0.close(total: inputs.count, since: start) }
    }

    /// Writes the request as it would be sent, key redacted, as `NAME.request.http`.
    private func writeRequest(_ request: EditRequest, plan: SizePlan, profile: ProviderProfile, next relative: String)
        throws -> String
    {
        let built = try RequestBuilder.build(request, plan: plan, for: profile, apiKey: "***")
        var sink = DataSink()
        try built.writeRedacted(to: &sink)
        return try output.write(sink.data, to: relative + ".request.http")
    }

    /// Input indices, largest file first: the long jobs start early, so the
    /// run does not end with one core busy on a big image and the rest idle.
    private func largestFirst(_ inputs: [InputFile]) -> [Int] {
        let sizes = inputs.map { input -> Int in
            ((try? FileManager.default.attributesOfItem(atPath: input.path))?[.size] as? NSNumber)?.intValue ?? 0
        }
        return inputs.indices.sorted { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }
    }

    /// The format an input with header `info` is written in: the one asked,
    /// else its own (HEIC and TIFF as PNG); for an endpoint, one it accepts
    /// (PNG when its own is not).
    private func outputFormat(for info: ImageInfo) throws(ImagingError) -> OutputFormat {
        let format = settings.format ?? info.format.defaultOutput
        guard let target = settings.provider else { return format }
        let accepts = target.profile.images.accepts
        if accepts.contains(format) { return format }
        guard settings.format == nil else {
            throw ImagingError(
                SettingError(.format, value: format.rawValue, .notOffered(by: target.profile.id, offered: accepts.map(\.rawValue))))
        }
        return .png
    }

    /// The path of `input`'s output when it exists already (judged from its
    /// header when the format is not fixed), else nil.
    private func existingOutput(of input: InputFile, naming: OutputNaming) throws(ImagingError) -> String? {
        let format = try outputFormat(for: ImageProbe.probe(file: input.path))
        return output.existing(naming.relativeOutputPath(for: input, format: format))
    }

    func prepare(_ input: InputFile, naming: OutputNaming) -> PrepareResult {
        let start = Date()
        let outcome: PrepareResult.Outcome
        do {
            if settings.skipExisting, let existing = try existingOutput(of: input, naming: naming) {
                return PrepareResult(input: input, outcome: .existing(path: existing), seconds: Date().timeIntervalSince(start))
            }
            var plan: SizePlan? = nil
            let prepared = try ImageProcessor.prepare(file: input.path, limits: settings.limits) {
                (info) throws(ImagingError) in
                var encode = settings.encode
                encode.format = try outputFormat(for: info)
                guard let target = settings.provider else { return (settings.resize, encode) }
                do throws(ProvidersError) {
                    let planned = try SizePlanner.plan(
                        input: info.displaySize, for: target.profile, request: target.size, fit: target.fit,
                        position: target.position)
                    plan = planned
                    return (ResizeOptions(size: planned.target, fit: planned.fit, position: target.position, fill: target.fill), encode)
                } catch {
                    throw ImagingError(error.setting ?? SettingError(.size, .explained("\(error.message)")))
                }
            }
            let relative = naming.relativeOutputPath(for: input, format: prepared.format)
            let written = try output.write(prepared.data, to: relative, protecting: input.path)
            var requestPath: String? = nil
            if let target = settings.provider, var request = target.request, let plan {
                request.images = [.file(path: written, format: prepared.format)]
                requestPath = try writeRequest(request, plan: plan, profile: target.profile, next: relative)
            }
            outcome = .written(
                path: written,
                image: PreparedSummary(
                    format: prepared.format, size: prepared.size, byteCount: prepared.data.count,
                    source: prepared.source, geometry: prepared.geometry, plan: plan, requestPath: requestPath))
        } catch {
            let failure = EditError.wrapping(error)
            if case .input(let imaging) = failure, input.isSkippable(imaging) {
                outcome = .skipped
            } else {
                outcome = .failed(failure)
            }
        }
        return PrepareResult(input: input, outcome: outcome, seconds: Date().timeIntervalSince(start))
    }
}
