import Crypto
import Foundation
import QieClient
import QieFiles
import QieImaging
import QieProviders
import QieReport
import QieStore
import Synchronization

/// What a finished job was, for the run's counts and money.
struct JobOutcome: Sendable {
    /// nil: prepared ahead, then withdrawn unsent because the run was stopped,
    /// or held by another worker (`elsewhere`).
    var kind: PrepareResult.Kind?
    var cost: Decimal?
    /// The job's row, when another worker holds it: the run waits for it at the end.
    var elsewhere: Int64? = nil
}

/// How a run shares its store with other workers: who it is, how long its
/// leases last, and the run's cost limit, enforced by the store.
final class RunWorker: Sendable {
    let name: String
    let lease: Double
    let costLimit: Decimal?
    /// The first refusal of the cost limit: no new job starts after it.
    let refusal = Mutex<BudgetRefusal?>(nil)
    var wasRefused: Bool { refusal.withLock { $0 != nil } }

    init(name: String, lease: Double, costLimit: Decimal?) {
        self.name = name
        self.lease = lease
        self.costLimit = costLimit
    }
}

/// What the jobs of one run share.
struct RunContext: Sendable {
    var configuration: EditRunConfiguration
    var profile: ProviderProfile
    var prompts: PromptManifest
    var naming: OutputNaming
    var folder: OutputFolder
    var ledger: any RunStore
    var worker: RunWorker
    var limiter: RateLimiter?
    var events: @Sendable (EditRunEvent) -> Void

    /// What `input` is asked: its manifest row or `NAME.txt`, else the run's prompt.
    func request(for input: InputFile) -> InputRequest? {
        let options = configuration.options
        if let own = prompts.request(for: input.path) {
            var request = own
            request.seed = own.seed ?? options.seed
            request.negativePrompt = own.negativePrompt ?? options.negativePrompt
            return request
        }
        guard let prompt = options.prompt, !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
        return InputRequest(prompt: prompt, seed: options.seed, negativePrompt: options.negativePrompt)
    }

    /// Runs one job through the ledger's states around the edit path:
    /// register (or find it done), claim it (or leave it to the worker that
    /// holds it), prepare, record the attempt within the cost limit, send (or
    /// pick up what an earlier run or a stopped worker had accepted), record
    /// the id and the answer, fetch, finish, write, record completion. Each
    /// move is committed before the next irreversible step. Once prepared, the
    /// job waits at `gate` for its turn (`number`); if `stop` was asked
    /// meanwhile, it ends there, unsent.
    func process(_ job: EditJob, number: Int, editor: Editor, gate: OrderedTurnstile, stop: BatchCancellation) async
        -> JobOutcome
    {
        // The job whose lease this worker holds while it works on it.
        var held: Int64? = nil
        let outcome = await process(job, number: number, editor: editor, gate: gate, stop: stop, held: &held)
        // A job that ended unfinished gives its lease back at once, for
        // another worker to take (the moves that end a job end it too).
        if let id = held { try? await ledger.release(id, worker: worker.name) }
        return outcome
    }

    private func process(
        _ job: EditJob, number: Int, editor: Editor, gate: OrderedTurnstile, stop: BatchCancellation, held: inout Int64?
    ) async -> JobOutcome {
        let input = job.input
        let ledger = self.ledger
        let events = self.events
        let worker = self.worker
        var rowID: Int64? = nil
        var fetchingRecorded = false
        let acceptedID = Mutex<String?>(nil)
        // Whether the job holds a place at the gate (given back once its
        // results are downloaded, or when it ends), whether it gave the place
        // back already, and whether it gave up its turn because the run was stopped.
        let passage = Mutex((entered: false, left: false, withdrawn: false))
        defer {
            let (entered, left) = passage.withLock { ($0.entered, $0.left) }
            if !left { entered ? gate.leave() : gate.pass(number) }
        }
        do {
            guard let asked = request(for: input) else {
                if let problem = PromptManifest.promptFileProblem(for: input.path) {
                    throw EditError.input(ImagingError(.unreadable, "no prompt: \(problem)", file: input.path))
                }
                throw EditError.noPrompt(textFile: OutputNaming.stem((input.relativePath as NSString).lastPathComponent) + ".txt")
            }
            // Each file is checked from its status, then read once: the bytes
            // hashed into the job's key are the bytes sent.
            let maxBytes = configuration.maxFileBytes
            let identity = try await Self.identify(input.path, ledger: ledger, maxBytes: maxBytes)
            let references = asked.references ?? configuration.references.map(configuration.resolve)
            var referenceBytes: [Data] = []
            var referenceHashes: [String] = []
            for reference in references {
                let bytes = try await ImagingRuntime.offload { try Self.contents(of: reference, maxBytes: maxBytes) }
                referenceBytes.append(bytes)
                referenceHashes.append(Self.sha256(bytes))
            }
            let (key, identityText) = JobKey.make(
                inputPath: input.path, inputSHA256: identity.sha256, copy: job.copy, request: asked,
                references: referenceHashes, configuration: configuration, profile: profile)
            let registered = try await ledger.register(
                LedgerJob(
                    key: key, inputPath: input.path, inputSHA256: identity.sha256, inputSize: identity.size,
                    inputModified: identity.modified, copy: job.copy, endpoint: profile.id, prompt: asked.prompt,
                    options: identityText))
            rowID = registered.id
            guard let registeredID = registered.id else { throw EditError.ledger("job \(key) has no row") }
            // Taken for this worker, unless done, or held by another worker whose lease still runs.
            var row = registered
            if registered.state != .completed {
                if let taken = try await ledger.claim(registeredID, worker: worker.name, lease: worker.lease) {
                    row = taken
                    held = registeredID
                } else if let now = try await ledger.job(id: registeredID) {
                    row = now
                    if now.state != .completed {
                        events(.elsewhere(job))
                        return JobOutcome(kind: nil, cost: nil, elsewhere: registeredID)
                    }
                }
            }
            switch row.state {
            case .completed:
                let output = row.outputPaths.first ?? ""
                events(.earlier(job, output: output))
                return JobOutcome(kind: .earlier, cost: nil)
            case .failed where !configuration.retryFailed && row.resultURLList.isEmpty:
                let error = EditError.failedEarlier(reason: row.error ?? "no reason recorded")
                events(.failed(job, error))
                return JobOutcome(kind: .failed, cost: nil)
            case .uncertain where !configuration.retryUncertain, .prepared where !configuration.retryUncertain:
                // It may have been processed and billed: not sent again unasked.
                let reason = row.state == .prepared ? "the run sending it was stopped before hearing back" : row.error ?? "no answer"
                events(.failed(job, EditError.uncertainEarlier(reason: reason)))
                return JobOutcome(kind: .failed, cost: nil)
            default:
                break
            }

            // Picked up where an earlier run left it: fetch what the endpoint
            // answered, or ask about the job it accepted.
            var hooks = EditHooks()
            hooks.prepared = {
                await gate.enter(number)
                let withdrawn = stop.isCancelled
                passage.withLock { $0 = (entered: true, left: false, withdrawn: withdrawn) }
                if withdrawn { throw CancellationError() }
            }
            // Recorded results (of an accepted job, or of a failed one: it was
            // paid for) are fetched again; an accepted job is asked about.
            let results = row.resultURLList
            if !results.isEmpty, row.state == .submitted || row.state == .failed {
                fetchingRecorded = true
                hooks.resume = .fetch(
                    results: results, reportedCost: row.reportedCost.flatMap { Decimal(string: $0) }, jobID: row.requestID)
            } else if row.state == .submitted, let id = row.requestID {
                hooks.resume = .poll(jobID: id)
            }
            if hooks.resume != nil, let id = row.requestID { acceptedID.withLock { $0 = id } }
            // Converting and writing are local work: the next request need not wait for them.
            hooks.fetched = {
                let leaving = passage.withLock { passage -> Bool in
                    guard passage.entered, !passage.left else { return false }
                    passage.left = true
                    return true
                }
                if leaving { gate.leave() }
            }
            let limiter = self.limiter
            let jobRow = row.id
            let profileID = profile.id
            hooks.willSend = { _, estimate in
                try await limiter?.wait()
                if worker.costLimit != nil, estimate == nil { throw EditError.unpriced(endpoint: profileID) }
                // Counted before sending, under this worker's lease and within
                // the run's cost limit: a kill during the request still shows
                // the attempt, and no other worker sends the job.
                guard let jobRow else { return }
                do {
                    try await ledger.markSending(
                        jobRow, worker: worker.name, estimatedCost: estimate.map { "\($0)" }, limit: worker.costLimit)
                } catch StoreError.costLimit(let limit, let spent, let inFlight, let estimate) {
                    let refusal = BudgetRefusal(limit: limit, spent: spent, inFlight: inFlight, estimate: estimate)
                    worker.refusal.withLock { $0 = $0 ?? refusal }
                    throw EditError.overBudget(refusal)
                } catch let error as StoreError {
                    throw EditError.ledger("\(error)")
                }
            }
            hooks.accepted = { _, id in
                acceptedID.withLock { $0 = id }
                if let jobRow { try? await ledger.markSubmitted(jobRow, requestID: id, resultURLs: [], reportedCost: nil, extraAttempts: 0) }
                events(.sent(job, jobID: id))
            }
            hooks.answered = { _, answer in
                let urls = answer.images.compactMap { if case .url(let url) = $0 { url } else { nil } }
                let before = acceptedID.withLock { value in
                    defer { if let id = answer.requestID { value = id } }
                    return value
                }
                if let jobRow {
                    try await ledger.markSubmitted(
                        jobRow, requestID: answer.requestID, resultURLs: urls, reportedCost: answer.reportedCost.map { "\($0)" },
                        extraAttempts: max(0, answer.submissions - 1))
                }
                // A synchronous answer names its job only now.
                if before == nil, let id = answer.requestID { events(.sent(job, jobID: id)) }
            }

            var options = configuration.options
            options.numImages = options.imagesPerRequest(on: profile)
            if job.copy > 0 { options.numImages = 1 }
            var inputBytes = identity.bytes
            if inputBytes == nil {
                // Known from an earlier run by size and time; read now, and
                // held to the hash the job was registered with.
                let bytes = try await ImagingRuntime.offload { try Self.contents(of: input.path, maxBytes: maxBytes) }
                guard Self.sha256(bytes) == identity.sha256 else {
                    throw EditError.input(
                        ImagingError(.unreadable, "changed since it was registered (same size and time, other content); run again", file: input.path))
                }
                inputBytes = bytes
            }
            let edit = EditInput(
                image: .data(inputBytes ?? Data()), references: referenceBytes.map { .data($0) }, prompt: asked.prompt,
                seed: asked.seed, negativePrompt: asked.negativePrompt)
            let result = try await editor.edit(edit, options: options, hooks: hooks)
            let output = try await write(result, for: job, key: key, inputSHA256: identity.sha256, rowID: row.id)
            if let jobRow {
                try await ledger.markCompleted(
                    jobRow, outputs: output.paths, reportedCost: result.reportedCost.map { "\($0)" }, polls: result.polls)
                held = nil
            }
            events(.done(job, output))
            return JobOutcome(kind: .written, cost: result.cost)
        } catch {
            let failure = EditError.wrapping(error)
            let accepted = acceptedID.withLock { $0 }
            if passage.withLock({ $0.withdrawn }) {
                // Prepared ahead, never sent: the next run does it.
                events(.withdrawn(job))
                return JobOutcome(kind: nil, cost: nil)
            }
            if case .input(let imaging) = failure, input.isSkippable(imaging) {
                // Not an image: nothing to remember.
                if let rowID { try? await ledger.forget(rowID) }
                events(.skipped(job))
                return JobOutcome(kind: .skipped, cost: nil)
            }
            if case .overBudget = failure {
                events(.held(job, failure))
                return JobOutcome(kind: .held, cost: nil)
            }
            // An accepted job that may still finish (or whose result may still
            // be fetched) stays submitted: the next run asks about it again.
            let mayFinish: Bool
            var extraAttempts = 0
            switch failure {
            case .endpoint(let client):
                mayFinish = accepted != nil && (client.kind == .network || client.kind == .timedOut)
                extraAttempts = max(0, client.submissions - 1)
                if client.kind == .uncertain, accepted == nil {
                    // Sent, no usable answer: it may have been billed.
                    if let rowID { try? await ledger.markUncertain(rowID, failure.reason(naming: \.name), extraAttempts: extraAttempts) }
                    events(.failed(job, failure))
                    return JobOutcome(kind: .failed, cost: nil)
                }
                if client.status.map({ [403, 404, 410].contains($0) }) == true, fetchingRecorded, let rowID {
                    // The recorded results expired: only sending again can bring them.
                    try? await ledger.forgetResults(rowID)
                    let expired = EditError.resultsExpired(reason: failure.reason(naming: \.name))
                    try? await ledger.markError(rowID, expired.reason(naming: \.name), failed: true, extraAttempts: 0)
                    events(.failed(job, expired))
                    return JobOutcome(kind: .failed, cost: nil)
                }
            case .result where fetchingRecorded:
                // The recorded results are unusable: only sending again can do better.
                if let rowID { try? await ledger.forgetResults(rowID) }
                mayFinish = false
            case .stopped: mayFinish = accepted != nil
            default: mayFinish = false
            }
            if let rowID {
                try? await ledger.markError(rowID, failure.reason(naming: \.name), failed: !mayFinish, extraAttempts: extraAttempts)
            }
            events(.failed(job, failure))
            return JobOutcome(kind: .failed, cost: nil)
        }
    }

    /// Writes a job's results, thumbnails for the report and its sidecar.
    private func write(_ result: EditResult, for job: EditJob, key: String, inputSHA256: String, rowID: Int64?) async throws
        -> EditJobOutput
    {
        let input = job.input
        let stem = naming.base(for: input) + (job.copy > 0 ? "-\(job.copy)" : "")
        var written: [String] = []
        for (index, image) in result.images.enumerated() {
            let suffix = result.images.count > 1 ? "-\(index + 1)" : ""
            written.append(try folder.write(image.data, to: "\(stem)\(suffix).\(image.format.fileExtension)", protecting: input.path))
        }
        if let rowID, let first = result.images.first {
            // Contact-sheet thumbnails of the input and of what was written;
            // a failure here costs only the picture.
            let names = RunReport.thumbnailNames(job: rowID)
            let thumbnails = try? await ImagingRuntime.offload {
                (try RunReport.thumbnail(file: input.path), try RunReport.thumbnail(data: first.data))
            }
            if let (before, after) = thumbnails {
                _ = try? folder.write(before, to: names.before, isPrivate: true)
                _ = try? folder.write(after, to: names.after, isPrivate: true)
            }
        }
        let record = EditRecord(result, job: key, input: input.path, inputSHA256: inputSHA256, outputs: written)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let sidecar = try folder.write(try encoder.encode(record), to: stem + ".json", isPrivate: true)
        return EditJobOutput(paths: written, sidecar: sidecar, result: result)
    }

    /// A file's size, time and content hash, checked from its status first
    /// (a regular file of at most `maxBytes`): the hash is the ledger's when
    /// the file is unchanged since (same size and modification time; the
    /// bytes are then not read), else the hash of the bytes read, returned too.
    static func identify(_ path: String, ledger: (any RunStore)?, maxBytes: Int) async throws -> (
        sha256: String, size: Int64, modified: Double, bytes: Data?
    ) {
        let (size, modified) = try await ImagingRuntime.offload { () throws -> (Int64, Double) in
            do {
                try FileContents.check(path, maxBytes: maxBytes)
            } catch let error as FileContents.Refusal {
                throw refusal(error, path: path)
            }
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            return (
                (attributes[.size] as? NSNumber)?.int64Value ?? 0,
                (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            )
        }
        if let known = try await ledger?.knownHash(path: path, size: size, modified: modified) { return (known, size, modified, nil) }
        let bytes = try await ImagingRuntime.offload { try contents(of: path, maxBytes: maxBytes) }
        return (sha256(bytes), size, modified, bytes)
    }

    /// All of a regular file of at most `maxBytes`, read through one descriptor.
    static func contents(of path: String, maxBytes: Int) throws(EditError) -> Data {
        do {
            return try FileContents.read(path, maxBytes: maxBytes)
        } catch {
            throw refusal(error, path: path)
        }
    }

    private static func refusal(_ refusal: FileContents.Refusal, path: String) -> EditError {
        if case .tooLarge = refusal {
            return .input(ImagingError(.tooLarge, "\(refusal)", file: path, hint: "raise \(setting: .maxFileBytes) only if you trust this file"))
        }
        return .input(ImagingError(.unreadable, "\(refusal)", file: path))
    }

    /// SHA-256 of bytes, as hex.
    static func sha256(_ bytes: Data) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}

/// A job's identity: the input (its absolute path and its content), the
/// endpoint and every option that changes the result. The same key in a later
/// run is the same job (done, or to be picked up); an edited file, a changed
/// prompt, seed, size or output option is a new one. Two files with the same
/// content are two jobs: each gets its own output. The text of each option is
/// fixed: ledgers written by earlier versions keep matching.
enum JobKey {
    static func make(
        inputPath: String, inputSHA256: String, copy: Int, request: InputRequest, references: [String],
        configuration: EditRunConfiguration, profile: ProviderProfile
    ) -> (key: String, options: String) {
        let asked = configuration.options
        var options: [String: String] = [
            "endpoint": profile.id, "model": profile.model, "prompt": request.prompt, "size": asked.size.jobKeySpelling,
            "fit": asked.fit.rawValue, "position": asked.position.rawValue, "fill": asked.background.description,
            "numImages": String(asked.numImages), "copy": String(copy), "references": references.joined(separator: ","),
        ]
        options["seed"] = request.seed.map(String.init)
        options["negativePrompt"] = request.negativePrompt
        options["format"] = asked.format?.rawValue
        options["quality"] = asked.quality.map(String.init)
        options["restore"] = asked.restore?.rawValue
        options.merge(asked.fields.identity) { _, field in field }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = String(decoding: (try? encoder.encode(options)) ?? Data(), as: UTF8.self)
        let absolute = PromptManifest.absolute(inputPath)
        let digest = SHA256.hash(data: Data((absolute + "\n" + inputSHA256 + "\n" + text).utf8))
        return (digest.map { String(format: "%02x", $0) }.joined(), text)
    }
}

extension SizeRequest {
    /// The size request as a run's job keys spell it. Fixed text, so ledgers
    /// written by any version keep matching the same settings.
    public var jobKeySpelling: String {
        switch self {
        case .automatic: "automatic"
        case .size(let pixels): "size(\(pixels))"
        case .aspectRatio(let ratio): "aspectRatio(\(ratio))"
        case .tier(let tier, let ratio): "tier(\"\(tier)\", aspectRatio: \(ratio.map { "Optional(\($0))" } ?? "nil"))"
        }
    }
}

/// What one edit produced, as written next to its outputs (`NAME.json`).
public struct EditRecord: Sendable, Codable {
    /// The job's key in the ledger (input content, endpoint and result-changing options).
    public var job: String
    /// The endpoint (profile id).
    public var endpoint: String
    /// The endpoint's model.
    public var model: String
    /// The prompt sent.
    public var prompt: String
    /// The seed sent, if any.
    public var seed: Int?
    /// The input file.
    public var input: String
    /// SHA-256 of the input file's bytes, hex.
    public var inputSHA256: String
    /// The files written.
    public var outputs: [String]
    /// The endpoint's ids for the requests.
    public var requestIDs: [String]
    /// How results came back.
    public var flow: ProviderProfile.Flow
    /// Submissions sent, over all requests.
    public var submissions: Int
    /// Status polls made, over all requests.
    public var polls: Int
    /// The cost the endpoint reported, USD, as decimal text.
    public var reportedCostUSD: String?
    /// The estimate before sending, USD, as decimal text.
    public var estimatedCostUSD: String?
    /// Seconds per step.
    public var timings: EditTimings
    /// How the input was sized for the endpoint.
    public var plan: SizePlan
    /// The restore applied.
    public var restored: RestoreMode?
    /// What was wrong with the endpoint's answers and ignored.
    public var warnings: [String]?
    /// How the request's images were encoded to fit the endpoint's payload
    /// limit, when they had to be (for example `JPEG quality 70`).
    public var requestEncoding: String?

    /// The record of `result` for job `key`.
    public init(_ result: EditResult, job key: String, input: String, inputSHA256: String, outputs: [String]) {
        job = key
        endpoint = result.endpoint
        model = result.model
        prompt = result.prompt
        seed = result.seed
        self.input = input
        self.inputSHA256 = inputSHA256
        self.outputs = outputs
        requestIDs = result.requestIDs
        flow = result.flow
        submissions = result.submissions
        polls = result.polls
        reportedCostUSD = result.reportedCost.map { "\($0)" }
        estimatedCostUSD = result.estimatedCost.map { "\($0)" }
        timings = result.timings
        plan = result.plan
        restored = result.restored
        warnings = result.warnings.isEmpty ? nil : result.warnings
        requestEncoding = result.requestEncoding
    }
}
