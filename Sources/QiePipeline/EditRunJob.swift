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
    /// What its money is now, as its last recorded move left it.
    var charge: JobState.Charge = .none
    /// Its amount (reported, else estimated), when priced.
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

    /// Runs one job: register it (or find it done), claim it (or leave it
    /// to the worker that holds it), then hand it to the edit path with its
    /// recorded state, where its state machine (`PaidRequest`) decides
    /// what is sent, asked about or fetched again; each move it makes is
    /// committed to the store before the next irreversible step, and its
    /// results are written before it counts as completed. Once prepared,
    /// the job waits at `gate` for its turn (`number`); if `stop` was asked
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
        var registeredRow: LedgerJob? = nil
        // What the job's recorded moves say about its money, and what was announced.
        let money = Mutex(RequestMoney())
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
                if let problem = prompts.promptFileProblem(for: input.path) {
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
            registeredRow = registered
            guard let rowID = registered.id else { throw EditError.ledger("job \(key) has no row") }
            // Taken for this worker, unless done, or held by another worker whose lease still runs.
            var row = registered
            if registered.state != .completed {
                if let taken = try await ledger.claim(rowID, worker: worker.name, lease: worker.lease) {
                    row = taken
                    held = rowID
                } else if let now = try await ledger.job(id: rowID) {
                    row = now
                    if now.state != .completed {
                        events(.elsewhere(job))
                        return JobOutcome(kind: nil, elsewhere: rowID)
                    }
                }
            }
            if row.state == .completed {
                events(.earlier(job, output: row.outputPaths.first ?? ""))
                return JobOutcome(kind: .earlier)
            }
            money.withLock { $0 = RequestMoney(row) }

            // The job's record is where its state machine starts: a new job
            // is sent; an accepted one asked about; recorded results fetched
            // again; an ended one tried again only as the run allows.
            var hooks = EditHooks(
                resume: PaidRequest.Start(
                    job: row, retryFailed: configuration.retryFailed, retryUncertain: configuration.retryUncertain,
                    priced: worker.costLimit != nil))
            hooks.costLimited = worker.costLimit != nil
            let limiter = self.limiter
            hooks.events = { event in
                switch event {
                case .started, .waitingForKey, .imageReady:
                    break
                case .routed(let endpoint, let after):
                    // The refusal ended the job (and its lease): taken again
                    // before it goes elsewhere, unless another worker took it.
                    if after != nil, try await ledger.claim(rowID, worker: worker.name, lease: worker.lease) == nil {
                        throw EditError.yielded
                    }
                    // Where the job goes is recorded before it is sent there,
                    // so a run picking it up asks that endpoint about it.
                    try await ledger.route(rowID, to: endpoint, worker: worker.name)
                    events(.routed(job, endpoint: endpoint, after: after))
                case .prepared:
                    await gate.enter(number)
                    let withdrawn = stop.isCancelled
                    passage.withLock { $0 = (entered: true, left: false, withdrawn: withdrawn) }
                    if withdrawn { throw CancellationError() }
                case .moved(_, let move):
                    if move.state == .sending { try await limiter?.wait() }
                    do {
                        // Counted before sending, under this worker's lease
                        // and within the run's cost limit: a kill during the
                        // request still shows the attempt, and no other
                        // worker sends the job.
                        try await ledger.record(move, job: rowID, worker: worker.name, limit: worker.costLimit)
                    } catch StoreError.costLimit(let limit, let spent, let inFlight, let estimate) {
                        let refusal = BudgetRefusal(limit: limit, spent: spent, inFlight: inFlight, estimate: estimate)
                        worker.refusal.withLock { $0 = $0 ?? refusal }
                        throw EditError.overBudget(refusal)
                    }
                    if let id = money.withLock({ $0.apply(move) }) { events(.sent(job, jobID: id)) }
                case .fetched:
                    // Converting and writing are local work: the next request need not wait for them.
                    let leaving = passage.withLock { passage -> Bool in
                        guard passage.entered, !passage.left else { return false }
                        passage.left = true
                        return true
                    }
                    if leaving { gate.leave() }
                }
            }
            let written = Mutex<EditJobOutput?>(nil)
            let rowNumber = row.id
            hooks.deliver = { result in
                let output = try await write(result, for: job, key: key, inputSHA256: identity.sha256, rowID: rowNumber)
                written.withLock { $0 = output }
                return output.paths
            }

            var options = configuration.options
            options.numImages = options.imagesPerRequest(on: profile)
            if options.routing != nil, Self.pinned(row.state), let sentTo = try? ProviderCatalog.profile(named: row.endpoint) {
                // Sent before: it stays where it went, to be asked about (or
                // sent again only as the run allows) there.
                options = options.on(sentTo)
            }
            if job.copy > 0 { options.numImages = 1 }
            // The report's thumbnail of the first result, made beside it when it is finished.
            if rowNumber != nil { options.preview = RunReport.thumbnailPreview }
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
            held = nil
            guard let output = written.withLock({ $0 }) else { throw EditError.ledger("job \(key) was not written") }
            events(.done(job, output))
            // Counted as this run's spending only when this run sent it.
            let sentHere = money.withLock { $0.sentHere }
            return JobOutcome(kind: .written, charge: sentHere ? .billed : .none, cost: sentHere ? result.cost : nil)
        } catch {
            let failure = EditError.wrapping(error)
            let (charge, cost) = money.withLock { $0.sentHere ? ($0.charge, $0.amount) : (.none, nil) }
            if passage.withLock({ $0.withdrawn }) {
                // Prepared ahead, never sent: the next run does it.
                events(.withdrawn(job))
                return JobOutcome(kind: nil)
            }
            if case .input(let imaging) = failure, input.isSkippable(imaging), registeredRow?.state == .pending,
                let rowID = registeredRow?.id
            {
                // Not an image: nothing to remember.
                try? await ledger.forget(rowID)
                events(.skipped(job))
                return JobOutcome(kind: .skipped)
            }
            switch failure {
            case .overBudget:
                events(.held(job, failure))
                return JobOutcome(kind: .held)
            case .yielded:
                if let rowID = registeredRow?.id {
                    events(.elsewhere(job))
                    return JobOutcome(kind: nil, elsewhere: rowID)
                }
            default:
                break
            }
            events(.failed(job, failure))
            return JobOutcome(kind: .failed, charge: charge, cost: cost)
        }
    }

    /// Writes a job's results, thumbnails for the report and its sidecar.
    private func write(_ result: EditResult, for job: EditJob, key: String, inputSHA256: String, rowID: Int64?) async throws
        -> EditJobOutput
    {
        let input = job.input
        var written: [String] = []
        for (index, image) in result.images.enumerated() {
            let name = naming.resultPath(for: input, copy: job.copy, result: index, of: result.images.count, format: image.format)
            written.append(try folder.write(image.data, to: name, protecting: input.path))
        }
        if let rowID, let first = result.images.first {
            // Contact-sheet thumbnails of the input and of what was written;
            // a failure here costs only the picture.
            let names = RunReport.thumbnailNames(job: rowID)
            let thumbnails = try? await ImagingRuntime.offload {
                (try RunReport.thumbnail(file: input.path), try first.preview ?? RunReport.thumbnail(data: first.data))
            }
            if let (before, after) = thumbnails {
                _ = try? folder.write(before, to: names.before, isPrivate: true)
                _ = try? folder.write(after, to: names.after, isPrivate: true)
            }
        }
        let record = EditRecord(result, job: key, input: input.path, inputSHA256: inputSHA256, outputs: written)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let sidecar = try folder.write(try encoder.encode(record), to: naming.sidecarPath(for: input, copy: job.copy), isPrivate: true)
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
extension RunContext {
    /// Whether a job in `state` was sent to the endpoint its row names, so a
    /// routed run keeps it there: everything but a job never sent, failed
    /// (nothing billed) or cancelled before it ran.
    static func pinned(_ state: JobState) -> Bool {
        switch state {
        case .pending, .failed, .cancelled: false
        default: true
        }
    }
}

enum JobKey {
    static func make(
        inputPath: String, inputSHA256: String, copy: Int, request: InputRequest, references: [String],
        configuration: EditRunConfiguration, profile: ProviderProfile
    ) -> (key: String, options: String) {
        let asked = configuration.options
        // A routed job is the same job on whichever endpoint of its release
        // runs it: its key names the release, not the endpoint.
        let endpoint = asked.routing == nil ? profile.id : "route:" + profile.version.rawValue
        let model = asked.routing == nil ? profile.model : profile.version.rawValue
        var options: [String: String] = [
            "endpoint": endpoint, "model": model, "prompt": request.prompt, "size": asked.size.jobKeySpelling,
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
