import Crypto
import Foundation
import QieClient
import QieImaging
import QieProviders
import Synchronization

/// One paid request: an input, or one copy of it when requests are repeated.
public struct EditJob: Sendable {
    public var input: InputFile
    /// 0 for the only request of an input; 1... for repeated requests.
    public var copy: Int
}

/// What the jobs of one batch share.
struct JobContext: Sendable {
    var naming: OutputNaming
    var client: EditClient
    var ledger: Ledger?
    var budget: Budget?
    var limiter: RateLimiter?
    var signals: JobSignals?
    var cancellation: BatchCancellation
}

/// A job's identity: the input (its absolute path and its content), the
/// endpoint and every option that changes the result. The same key in a later
/// run is the same job (done, or to be picked up); an edited file, a changed
/// prompt, seed, size or output option is a new one. Two files with the same
/// content are two jobs: each gets its own output.
enum JobKey {
    static func make(
        inputPath: String, inputSHA256: String, copy: Int, request: InputRequest, references: [String],
        settings: EditSettings
    ) -> (key: String, options: String) {
        let target = settings.target
        let asked = settings.request
        var options: [String: String] = [
            "endpoint": target.profile.id, "model": target.profile.model, "prompt": request.prompt,
            "size": "\(target.size)", "fit": target.fit.rawValue, "position": "\(target.position)",
            "fill": "\(target.fill)", "numImages": String(asked.numImages), "copy": String(copy),
            "references": references.joined(separator: ","),
        ]
        options["seed"] = request.seed.map(String.init)
        options["negativePrompt"] = request.negativePrompt
        options["format"] = settings.outputFormat?.rawValue
        options["quality"] = settings.quality.map(String.init)
        options["restore"] = settings.restore?.rawValue
        options["guidanceScale"] = asked.guidanceScale.map { "\($0)" }
        options["steps"] = asked.inferenceSteps.map(String.init)
        options["acceleration"] = asked.acceleration
        options["safetyChecker"] = asked.safetyChecker.map { "\($0)" }
        options["outputCompression"] = asked.outputCompression.map(String.init)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = String(decoding: (try? encoder.encode(options)) ?? Data(), as: UTF8.self)
        let absolute = PromptManifest.absolute(inputPath)
        let digest = SHA256.hash(data: Data((absolute + "\n" + inputSHA256 + "\n" + text).utf8))
        return (digest.map { String(format: "%02x", $0) }.joined(), text)
    }
}

extension EditBatch {
    /// What `input` is asked: its manifest row or `NAME.txt`, else the run's prompt.
    func request(for input: InputFile) -> InputRequest? {
        if let own = settings.prompts.request(for: input.path) {
            var request = own
            request.seed = own.seed ?? settings.request.seed
            request.negativePrompt = own.negativePrompt ?? settings.request.negativePrompt
            return request
        }
        let prompt = settings.request.prompt.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !prompt.isEmpty else { return nil }
        return InputRequest(
            prompt: settings.request.prompt, seed: settings.request.seed, negativePrompt: settings.request.negativePrompt)
    }

    /// The content hash of a file: the ledger's, when the file is unchanged
    /// since (same size and modification time), else read and hashed.
    static func identify(_ path: String, ledger: Ledger?) throws -> (sha256: String, size: Int64, modified: Double) {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        if let known = try ledger?.knownHash(path: path, size: size, modified: modified) { return (known, size, modified) }
        return (try sha256(of: path), size, modified)
    }

    /// Runs one job through the ledger's states: prepare, (budget, rate)
    /// submit or pick up an accepted job, fetch, finish, write.
    func edit(_ job: EditJob, _ context: JobContext, accepted: @escaping @Sendable (String) -> Void) async -> PrepareResult {
        let start = Date()
        let input = job.input
        let profile = settings.target.profile
        let ledger = context.ledger
        var jobID: Int64? = nil
        var reservation: Decimal? = nil
        let acceptedID = Mutex<String?>(nil)
        let outcome: PrepareResult.Outcome
        var cost: Decimal? = nil
        do {
            guard let asked = request(for: input) else {
                throw EditFailure(message: "no prompt: give --prompt, a --manifest row or a text file \(OutputNaming.stem(input.relativePath)).txt next to it")
            }
            let identity = try await ImagingRuntime.offload { try Self.identify(input.path, ledger: ledger) }
            let references = asked.references ?? settings.references
            var referenceHashes: [String] = []
            for reference in references {
                referenceHashes.append(try await ImagingRuntime.offload { try Self.identify(reference, ledger: nil).sha256 })
            }
            let (key, options) = JobKey.make(
                inputPath: input.path, inputSHA256: identity.sha256, copy: job.copy, request: asked, references: referenceHashes, settings: settings)
            var row: LedgerJob? = nil
            if let ledger {
                let registered = try ledger.register(
                    LedgerJob(
                        key: key, inputPath: input.path, inputSHA256: identity.sha256, inputSize: identity.size,
                        inputModified: identity.modified, copy: job.copy, endpoint: profile.id, prompt: asked.prompt,
                        options: options))
                row = registered
                jobID = registered.id
                switch registered.state {
                case .completed:
                    return PrepareResult(
                        input: input, outcome: .earlier(path: registered.outputPaths.first ?? ""),
                        seconds: Date().timeIntervalSince(start))
                case .failed where !settings.retryFailed:
                    return PrepareResult(
                        input: input,
                        outcome: .failed(reason: "failed in an earlier run: \(registered.error ?? "no reason recorded") (--retry-failed tries again)"),
                        seconds: Date().timeIntervalSince(start))
                default:
                    break
                }
            }

            let (prepared, plan) = try await ImagingRuntime.offload { try prepare(input.path) }
            let perRequest = profile.field(for: .numImages) == nil ? 1 : settings.request.numImages
            let estimate = CostEstimator.estimate(
                profile, outputSize: plan.expectedOutput, images: perRequest, override: settings.price,
                rounding: settings.rounding
            ).total
            let prepareSeconds = Date().timeIntervalSince(start)
            let sent = Date()
            var result: JobResult
            if let row, row.state == .submitted, row.requestID != nil || !row.resultURLList.isEmpty {
                // Accepted in an earlier run: fetch what it answered, or ask about it.
                let id = row.requestID ?? "(no id)"
                acceptedID.withLock { $0 = id }
                if !row.resultURLList.isEmpty {
                    result = JobResult(
                        images: row.resultURLList.map { .url($0) }, reportedCost: row.reportedCost.flatMap { Decimal(string: $0) },
                        requestID: row.requestID, submissions: 0, polls: 0, signalled: false)
                } else {
                    guard let poll = RequestBuilder.poll(id: id, for: profile, apiKey: settings.apiKey, baseURL: settings.baseURL)
                    else { throw EditFailure(message: "\(profile.id) documents no way to ask about job \(id)") }
                    result = try await context.client.wait(
                        for: id, request: poll, on: profile, policy: settings.wait, signals: context.signals)
                }
            } else {
                if let budget = context.budget {
                    guard let estimate else {
                        throw EditFailure(message: "--max-cost needs a price: \(profile.id) publishes none (set --price-per-image)")
                    }
                    guard budget.reserve(estimate) else {
                        return PrepareResult(
                            input: input,
                            outcome: .held(
                                reason: "not sent: it would pass --max-cost $\(budget.limit) ($\(budget.spent) spent, $\(budget.inFlight) in flight, this edit ~$\(estimate))"),
                            seconds: Date().timeIntervalSince(start))
                    }
                    reservation = estimate
                }
                var request = settings.request
                request.prompt = asked.prompt
                request.seed = asked.seed
                request.negativePrompt = asked.negativePrompt
                if profile.field(for: .numImages) == nil { request.numImages = 1 }
                request.images = [.bytes(prepared.data, format: prepared.format, filename: "input.\(prepared.format.fileExtension)")]
                for reference in references {
                    let (ref, _) = try await ImagingRuntime.offload { try prepare(reference, resize: false) }
                    request.images.append(.bytes(ref.data, format: ref.format, filename: "reference.\(ref.format.fileExtension)"))
                }
                let built = try RequestBuilder.build(
                    request, plan: plan, for: profile, apiKey: settings.apiKey, baseURL: settings.baseURL, flow: settings.flow)
                try await context.limiter?.wait()
                // Counted before sending: a kill during the request still shows the attempt.
                if let jobID { try ledger?.markSending(jobID, estimatedCost: estimate.map { "\($0)" }) }
                let (apiKey, baseURL, rowID) = (settings.apiKey, settings.baseURL, jobID)
                result = try await context.client.perform(
                    built, on: profile, poll: { RequestBuilder.poll(id: $0, for: profile, apiKey: apiKey, baseURL: baseURL) },
                    policy: settings.wait, signals: context.signals,
                    accepted: { id in
                        acceptedID.withLock { $0 = id }
                        if let rowID { try? ledger?.markSubmitted(rowID, requestID: id) }
                        accepted(id)
                    })
                let urls = result.images.compactMap { if case .url(let url) = $0 { url } else { nil } }
                let resultID = result.requestID
                if let resultID { acceptedID.withLock { $0 = resultID } }
                if let jobID {
                    try ledger?.markSubmitted(
                        jobID, requestID: resultID, resultURLs: urls, reportedCost: result.reportedCost.map { "\($0)" },
                        extraAttempts: max(0, result.submissions - 1))
                }
                if resultID != nil { accepted(resultID!) }
            }
            let endpointSeconds = Date().timeIntervalSince(sent)

            let fetching = Date()
            var results: [Data] = []
            for image in result.images { results.append(try await context.client.fetch(image, from: profile)) }
            let fetchSeconds = Date().timeIntervalSince(fetching)

            let finishing = Date()
            let stem = OutputNaming.stem(context.naming.relativeOutputPath(for: input, format: .png))
                + (job.copy > 0 ? "-\(job.copy)" : "")
            var written: [String] = []
            for (index, data) in results.enumerated() {
                let (encoded, format) = try await ImagingRuntime.offload { try finish(data, plan: prepared.geometry) }
                let suffix = results.count > 1 ? "-\(index + 1)" : ""
                written.append(try output.write(encoded, to: "\(stem)\(suffix).\(format.fileExtension)", protecting: input.path))
            }
            if let jobID, ledger != nil, let first = written.first {
                // Contact-sheet thumbnails of the input and of what was written;
                // a failure here costs only the picture.
                let names = RunReport.thumbnailNames(job: jobID)
                let thumbnails = try? await ImagingRuntime.offload {
                    (try RunReport.thumbnail(file: input.path), try RunReport.thumbnail(file: first))
                }
                if let (before, after) = thumbnails {
                    _ = try? output.write(before, to: names.before)
                    _ = try? output.write(after, to: names.after)
                }
            }
            let finishSeconds = Date().timeIntervalSince(finishing)
            let sidecar = EditRecord(
                job: key, endpoint: profile.id, model: profile.model, prompt: asked.prompt, seed: asked.seed,
                input: input.path, inputSHA256: identity.sha256, outputs: written,
                requestIDs: result.requestID.map { [$0] } ?? [], flow: settings.flow,
                submissions: result.submissions, polls: result.polls, reportedCostUSD: result.reportedCost.map { "\($0)" },
                estimatedCostUSD: estimate.map { "\($0)" },
                timings: .init(
                    prepare: prepareSeconds, endpoint: endpointSeconds, fetch: fetchSeconds, finish: finishSeconds,
                    total: Date().timeIntervalSince(start)),
                plan: plan, restored: settings.restore)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try output.write(try encoder.encode(sidecar), to: stem + ".json")
            if let jobID { try ledger?.markCompleted(jobID, outputs: written, reportedCost: result.reportedCost.map { "\($0)" }) }
            if let reservation { context.budget?.settle(reservation, actual: result.reportedCost ?? reservation) }
            reservation = nil
            cost = result.reportedCost ?? estimate
            let first = try ImageProbe.probe(file: written[0])
            outcome = .written(
                path: written[0],
                image: PreparedSummary(
                    format: OutputFormat(name: first.format.rawValue) ?? .png, size: first.displaySize,
                    byteCount: first.byteCount, source: prepared.source, geometry: prepared.geometry, plan: plan,
                    requestPath: nil))
        } catch {
            let reason: String
            var skip = false
            switch error {
            case let error as ImagingError:
                skip = input.isSkippable(error)
                reason = skip ? "not an image" : error.reason
            case let error as OutputError:
                reason = "cannot write \(DisplayPath.escape(error.path)): \(error.reason)"
            case is CancellationError:
                reason = "stopped"
            default:
                reason = "\(error)"
            }
            let acceptedJob = acceptedID.withLock { $0 }
            // An accepted job that may still finish (or whose result may still be
            // fetched) stays submitted: the next run asks about it again.
            let mayFinish =
                acceptedJob != nil
                && ((error as? ClientError).map { $0.kind == .network || $0.kind == .timedOut } ?? (error is CancellationError))
            if skip, let jobID {
                // Not an image: nothing to remember.
                try? ledger?.forget(jobID)
            } else {
                if let jobID { try? ledger?.markError(jobID, reason, failed: !mayFinish) }
            }
            if let reservation { context.budget?.settle(reservation, actual: acceptedJob == nil ? nil : reservation) }
            outcome = skip ? .skipped(reason: reason) : .failed(reason: reason)
        }
        return PrepareResult(input: input, outcome: outcome, seconds: Date().timeIntervalSince(start), cost: cost)
    }
}
