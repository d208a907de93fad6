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

    public init(
        target: ProviderTarget, request: EditRequest, references: [String] = [], outputFormat: OutputFormat? = nil,
        quality: Int? = nil, restore: RestoreMode? = nil, limits: ImageLimits = .default, concurrency: Int = 4,
        baseURL: String? = nil, apiKey: String
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
    public var outputs: [String]
    public var requestIDs: [String]
    public var reportedCostUSD: String?
    public var estimatedCostUSD: String?
    public var seconds: Double
    public var plan: SizePlan
    public var restored: RestoreMode?
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
    public func run(
        client: EditClient, cancellation: BatchCancellation = BatchCancellation(),
        report: @escaping @Sendable (PrepareResult) -> Void
    ) async -> BatchSummary {
        let start = Date()
        var initial = BatchSummary()
        initial.action = "edited"
        let summary = Mutex(initial)
        let naming = OutputNaming(inputs)
        await withTaskGroup(of: PrepareResult.self) { group in
            var next = 0
            func addNext() {
                guard next < inputs.count, !cancellation.isCancelled else { return }
                let input = inputs[next]
                next += 1
                group.addTask { await edit(input, naming: naming, client: client) }
            }
            for _ in 0..<settings.concurrency { addNext() }
            while let result = await group.next() {
                summary.withLock { $0.record(result.outcome) }
                report(result)
                addNext()
            }
        }
        return summary.withLock { $0.close(total: inputs.count, since: start) }
    }

    func edit(_ input: InputFile, naming: OutputNaming, client: EditClient) async -> PrepareResult {
        let start = Date()
        let profile = settings.target.profile
        let outcome: PrepareResult.Outcome
        do {
            let (prepared, plan) = try await ImagingRuntime.offload { try prepare(input.path) }
            var request = settings.request
            request.images = [.bytes(prepared.data, format: prepared.format, filename: "input.\(prepared.format.fileExtension)")]
            for reference in settings.references {
                let (ref, _) = try await ImagingRuntime.offload { try prepare(reference, resize: false) }
                request.images.append(.bytes(ref.data, format: ref.format, filename: "reference.\(ref.format.fileExtension)"))
            }
            let built = try RequestBuilder.build(
                request, plan: plan, for: profile, apiKey: settings.apiKey, baseURL: settings.baseURL)
            let repeats = built.emulations.compactMap { if case .repeatRequest(let n) = $0 { n } else { nil } }.first ?? 1

            var results: [Data] = []
            var ids: [String] = []
            var reported: Decimal? = nil
            for _ in 0..<repeats {
                switch try await client.send(built, to: profile) {
                case .completed(let images, let cost, let id):
                    if let id { ids.append(id) }
                    if let cost { reported = (reported ?? 0) + cost }
                    for image in images { results.append(try await client.fetch(image, from: profile)) }
                case .pending(let id, let status):
                    throw EditFailure(
                        message: "\(profile.id) answered \(status) for job \(id); waiting for asynchronous jobs is not supported yet")
                case .failed(let message, _):
                    throw EditFailure(message: message)
                }
            }

            let stem = OutputNaming.stem(naming.relativeOutputPath(for: input, format: .png))
            var written: [String] = []
            for (index, result) in results.enumerated() {
                let (data, format) = try await ImagingRuntime.offload { try finish(result, plan: prepared.geometry) }
                let suffix = results.count > 1 ? "-\(index + 1)" : ""
                written.append(try output.write(data, to: "\(stem)\(suffix).\(format.fileExtension)", protecting: input.path))
            }
            let estimate = CostEstimator.estimate(profile, outputSize: plan.expectedOutput, images: settings.request.numImages)
            let record = EditRecord(
                endpoint: profile.id, model: profile.model, prompt: settings.request.prompt, seed: settings.request.seed,
                input: input.path, outputs: written, requestIDs: ids, reportedCostUSD: reported.map { "\($0)" },
                estimatedCostUSD: estimate.total.map { "\($0)" }, seconds: Date().timeIntervalSince(start), plan: plan,
                restored: settings.restore)
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
