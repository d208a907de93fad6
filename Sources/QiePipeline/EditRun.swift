import Foundation
import QieClient
import QieFiles
import QieImaging
import QieProviders
import QieReport
import QieStore
import Synchronization

/// An edit run over files and folders, as a value: what to edit, where the
/// results go, what every edit asks (`EditOptions`), and how the run sends
/// and spends. Stored in the output folder's ledger when the run starts, so
/// `EditRun.resume(folder:)` runs it again from data. Keys are never part of it.
public struct EditRunConfiguration: Sendable, Codable, Equatable {
    /// The format version written with the configuration.
    public static let currentVersion = 1

    /// This configuration's format version.
    public var version = Self.currentVersion
    /// Image files and folders (walked recursively, hidden entries skipped).
    public var inputs: [String]
    /// The output folder (created if missing); it holds the ledger and the report.
    public var output: String
    /// What relative paths (inputs, output, manifest, references) are relative to.
    public var workingDirectory: String
    /// What each edit asks.
    public var options: EditOptions
    /// Prompts per image: CSV with a header (`file,prompt[,seed,negative_prompt,images]`) or JSON Lines.
    public var manifest: String?
    /// Reference images sent after each input.
    public var references: [String] = []
    /// Edits on the wire at once, sent in the order the run starts them; as
    /// many more are prepared ahead, waiting for a place.
    public var concurrency = 4
    /// Submissions per second to the endpoint, at most.
    public var rate: Double?
    /// Stop sending before spent + in flight (this run's and earlier runs'
    /// into the same folder) would pass this many USD.
    public var maxCost: Decimal?
    /// Try again the jobs that failed in an earlier run (a job whose results
    /// were recorded is fetched again, never sent again, unless they expired).
    public var retryFailed = false
    /// Send again the jobs an earlier run sent without a usable answer
    /// (`uncertain`, or caught sending by a kill): they may have been billed.
    public var retryUncertain = false
    /// Largest input, reference or manifest file read, in bytes (256 MiB):
    /// larger files are refused from their size alone, before any read.
    public var maxFileBytes = 256 << 20
    /// Send reference images a manifest names outside the run's input
    /// folders and the manifest's own folder (judged by where they lead,
    /// links and `..` resolved). Off: such a row is refused before anything
    /// is sent (a manifest is a file others may have written).
    public var allowOutsideReferences = false
    /// Follow symbolic links among the inputs (folder entries, prompt files,
    /// a manifest's references) wherever they lead. Off (`InputBounds.followsLinksByDefault`):
    /// a link is followed only when its target lies inside the inputs named;
    /// one leading elsewhere is skipped, with an `EditRunEvent.linkSkipped`.
    public var followLinks = InputBounds.followsLinksByDefault
    /// How outputs are named; nil: after their inputs (`photo.jpg`'s results
    /// as `photo.webp`, or `photo-1.webp`, `photo-2.webp`, ..., with the
    /// sidecar `photo.json`). Stored with the run, so a resumed run names
    /// its results alike.
    public var outputName: OutputNameTemplate?
    /// The command line the run was started with, for people reading the
    /// ledger (never used to resume).
    public var commandLine: [String]?

    /// A run of `inputs` into `output`, with paths relative to `workingDirectory`.
    public init(
        inputs: [String], output: String, options: EditOptions,
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) {
        self.inputs = inputs
        self.output = output
        self.options = options
        self.workingDirectory = workingDirectory
    }

    /// Reads a stored configuration; settings it does not mention (stored by
    /// an earlier qie) take their defaults.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            inputs: try values.decode([String].self, forKey: .inputs), output: try values.decode(String.self, forKey: .output),
            options: try values.decode(EditOptions.self, forKey: .options),
            workingDirectory: try values.decode(String.self, forKey: .workingDirectory))
        version = try values.decodeIfPresent(Int.self, forKey: .version) ?? version
        manifest = try values.decodeIfPresent(String.self, forKey: .manifest)
        references = try values.decodeIfPresent([String].self, forKey: .references) ?? references
        concurrency = try values.decodeIfPresent(Int.self, forKey: .concurrency) ?? concurrency
        rate = try values.decodeIfPresent(Double.self, forKey: .rate)
        maxCost = try values.decodeIfPresent(Decimal.self, forKey: .maxCost)
        retryFailed = try values.decodeIfPresent(Bool.self, forKey: .retryFailed) ?? retryFailed
        retryUncertain = try values.decodeIfPresent(Bool.self, forKey: .retryUncertain) ?? retryUncertain
        maxFileBytes = try values.decodeIfPresent(Int.self, forKey: .maxFileBytes) ?? maxFileBytes
        allowOutsideReferences = try values.decodeIfPresent(Bool.self, forKey: .allowOutsideReferences) ?? allowOutsideReferences
        followLinks = try values.decodeIfPresent(Bool.self, forKey: .followLinks) ?? followLinks
        commandLine = try values.decodeIfPresent([String].self, forKey: .commandLine)
        outputName = try values.decodeIfPresent(OutputNameTemplate.self, forKey: .outputName)
    }

    /// How the results of `files` are named on `profile`: after the inputs,
    /// or by `outputName`, whose names are checked here, before anything is
    /// sent (see `OutputNaming`).
    public func naming(_ files: [InputFile], on profile: ProviderProfile) throws(SettingError) -> OutputNaming {
        let copies = options.requestsPerInput(on: profile)
        let results = options.imagesPerRequest(on: profile)
        guard let outputName else {
            return OutputNaming(files, copies: copies, resultsPerRequest: results, sidecars: true)
        }
        return try OutputNaming(
            files, copies: copies, resultsPerRequest: results, sidecars: true, template: outputName, format: options.format)
    }

    /// Checks every setting before anything is read or sent.
    public func validate() throws(SettingError) {
        if inputs.isEmpty {
            throw SettingError(.inputs, .missing(hint: "give at least one file or folder to edit"))
        }
        if output.isEmpty { throw SettingError(.output, .missing(hint: "give the folder results go to")) }
        if concurrency < 1 { throw SettingError(.concurrency, value: String(concurrency), .invalid(expected: "at least 1")) }
        if let rate, !(rate > 0) {
            throw SettingError(.rate, value: "\(rate)", .invalid(expected: "a positive number of requests per second"))
        }
        try options.validate(imageCount: references.count + 1)
        if maxFileBytes < 1024 {
            throw SettingError(.maxFileBytes, value: String(maxFileBytes), .invalid(expected: "at least 1024 bytes"))
        }
        if let maxCost {
            guard maxCost > 0 else {
                throw SettingError(.maxCost, value: "\(maxCost)", .invalid(expected: "a positive amount in USD such as 5 or 12.50"))
            }
            let profile = try options.profile()
            let unit = CostEstimator.estimate(profile, outputSize: PixelSize(width: 1024, height: 1024), override: options.price)
            if unit.total == nil {
                throw SettingError(
                    .maxCost, .needs([.pricePerImage, .pricePerMegapixel], why: "\(profile.id) publishes no price"))
            }
        }
    }

    /// Refuses a stored run (read back from `folder`'s ledger) that would
    /// send the key to an address not vouched for by `trust` (a base URL
    /// other than the endpoint's documented one, a callback URL) or read a
    /// file outside the trusted folders (an input, reference or manifest).
    public func check(_ trust: ResumeTrust, folder: String) throws(EditError) {
        let profile: ProviderProfile
        do { profile = try options.profile() } catch { throw .setting(error) }
        if let stored = options.baseURL {
            let vouched = [profile.baseURL, trust.baseURL, trust.environment[profile.baseURLVariable]].compactMap { $0 }
            if !vouched.contains(where: { Self.sameAddress($0, stored) }) {
                throw .unconfirmedAddress(
                    folder: folder, setting: .baseURL, address: stored, documented: profile.baseURL,
                    variable: profile.baseURLVariable)
            }
        }
        if let stored = options.callback?.url, trust.callbackURL.map({ Self.sameAddress($0, stored) }) != true {
            throw .unconfirmedAddress(folder: folder, setting: .callbackURL, address: stored, documented: nil, variable: nil)
        }
        let outputParent = (Self.absolute(resolve(output)) as NSString).deletingLastPathComponent
        let folders = ([outputParent] + trust.folders).map(Self.absolute)
        // Inputs given as addresses are fetched with the address checks, never read from disk as named.
        let paths = inputs.filter { !Self.isRemote($0) } + references + [manifest].compactMap { $0 }
        for path in paths.map({ Self.absolute(resolve($0)) }) {
            guard folders.contains(where: { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }) else {
                throw .untrustedInput(folder: folder, path: path, folders: folders)
            }
        }
    }

    /// A path made absolute and standardised (`..` and `.` removed, links not followed).
    private static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return URL(fileURLWithPath: full).standardized.path
    }

    /// Two addresses the same but for case in scheme and host and a trailing slash.
    private static func sameAddress(_ a: String, _ b: String) -> Bool {
        func key(_ text: String) -> String {
            guard let url = URL(string: text), let scheme = url.scheme, let host = url.host else { return text }
            let port = url.port.map { ":\($0)" } ?? ""
            let path = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
            return "\(scheme.lowercased())://\(host.lowercased())\(port)\(path)"
        }
        return key(a) == key(b)
    }

    /// `path` resolved against the working directory (unchanged when it is
    /// absolute, or when the working directory is the current one, so paths
    /// are shown as they were given).
    public func resolve(_ path: String) -> String {
        if path.hasPrefix("/") || workingDirectory == FileManager.default.currentDirectoryPath { return path }
        return (workingDirectory as NSString).appendingPathComponent(path)
    }
}

/// One paid request of a folder run: an input, or one copy of it when the
/// endpoint has no count field and requests are repeated.
public struct EditJob: Sendable, Equatable {
    /// The input.
    public var input: InputFile
    /// 0 for the only request of an input; 1... for repeated requests.
    public var copy: Int

    /// The job for `input`'s copy `copy`.
    public init(input: InputFile, copy: Int) {
        self.input = input
        self.copy = copy
    }
}

/// What a finished job wrote.
public struct EditJobOutput: Sendable {
    /// The files written (one per result), then the sidecar.
    public var paths: [String]
    /// The sidecar (`NAME.json`).
    public var sidecar: String
    /// The edit's result (images, plan, ids, cost, timings).
    public var result: EditResult
}

/// What happens during a run, in order, as typed values: front ends render
/// them (a progress line, plain lines, JSON lines).
public enum EditRunEvent: Sendable {
    /// The run starts `total` jobs on `endpoint`.
    case started(total: Int, endpoint: String)
    /// An argument or folder entry could not be walked (the run goes on).
    case inputProblem(InputProblem)
    /// A symbolic link among the inputs (a folder entry, or the prompt file
    /// beside an image) leads outside the inputs named, so it was skipped,
    /// not read; `followLinks` follows it.
    case linkSkipped(SkippedLink)
    /// A job began (it is read and prepared, then waits for a place on the wire).
    case jobStarted(EditJob)
    /// A job prepared ahead was not sent because the run was stopped first:
    /// nothing was sent or reserved for it, and the next run does it.
    case withdrawn(EditJob)
    /// Routing sent a job to `endpoint`; `after` is the endpoint tried
    /// before, which refused it before taking it (nothing billed there), and why.
    case routed(EditJob, endpoint: String, after: (endpoint: String, reason: String)?)
    /// The endpoint accepted a job's request as `jobID` (it may now be billed).
    case sent(EditJob, jobID: String)
    /// A job's results are written.
    case done(EditJob, EditJobOutput)
    /// A job was done in an earlier run; `output` is its first output.
    case earlier(EditJob, output: String)
    /// An input found in a folder is not an image (and not named like one): skipped.
    case skipped(EditJob)
    /// A job was not sent: the budget would be passed.
    case held(EditJob, EditError)
    /// Another worker sharing the run's store holds the job: this run waits
    /// for it at the end, and takes it over if that worker stops.
    case elsewhere(EditJob)
    /// A job failed (the run goes on).
    case failed(EditJob, EditError)
    /// A job was billed `amount` USD (reported, else estimated), whether its
    /// results were written or lost; `spent` is the run's total so far.
    case cost(EditJob, amount: Decimal, spent: Decimal)
}

/// How a run ended.
public struct EditRunSummary: Sendable {
    /// Counts of jobs by outcome, and the run's length.
    public var batch: BatchSummary
    /// Input problems found while walking (counted as failed in `batch`).
    public var inputProblems: Int
    /// Money this run's requests were billed (reported, else estimated),
    /// whether their results were written or lost, USD; nil when nothing
    /// priced was billed.
    public var spent: Decimal?
    /// Money this run's requests may have been billed (sent without a
    /// usable answer), USD; nil when none.
    public var atRisk: Decimal?
    /// The budget stopped sending.
    public var budget: (limit: Decimal, spent: Decimal)?
    /// The run was stopped before every job started.
    public var stopped: Bool
    /// The report's page, when it was written.
    public var report: String?
    /// Why the report could not be written.
    public var reportError: String?

    /// Whether every job ended written or done earlier.
    public var succeeded: Bool { batch.succeeded }
}

/// The plan and estimated cost of one file of a run, from its header.
public struct EditEstimateItem: Sendable {
    /// The file.
    public var input: InputFile
    /// Its plan, or why it cannot be planned.
    public var plan: Result<SizePlan, EditError>
    /// Requests it needs (repeated requests where the endpoint has no count field).
    public var requests: Int
    /// Its estimated cost, USD (all requests); nil when unpriced or unplanned.
    public var cost: Decimal?
    /// The prompt it would be sent with, when it has one.
    public var prompt: String?
    /// Not an image and not named like one (found in a folder): not counted.
    public var skipped: Bool
    /// The files its results would be written to, relative to the output
    /// folder, in the format asked (else the endpoint's default).
    public var outputs: [String] = []
    /// The endpoint it would go to (with routing, the one ranked first for it).
    public var endpoint: String? = nil
}

/// What a run would do and cost, from headers only.
public struct EditEstimate: Sendable {
    /// The endpoint.
    public var endpoint: String
    /// Each file, in order.
    public var items: [EditEstimateItem]
    /// Arguments or folder entries that could not be walked.
    public var problems: [InputProblem]
    /// Links skipped because they lead outside the inputs (see `InputBounds`).
    public var skippedLinks: [SkippedLink] = []
    /// The routing policy, when the run routes among endpoints.
    public var route: Routing.Policy? = nil
    /// With routing, each endpoint as if every file went there, with what routing saves against it.
    public var endpoints: [CostReport.EndpointTotal] = []
    /// Files planned.
    public var planned: Int { items.filter { !$0.skipped && (try? $0.plan.get()) != nil }.count }
    /// Files that cannot be edited.
    public var failed: Int { items.filter { !$0.skipped && (try? $0.plan.get()) == nil }.count + problems.count }
    /// Requests the run would send.
    public var requests: Int { items.filter { !$0.skipped && (try? $0.plan.get()) != nil }.reduce(0) { $0 + $1.requests } }
    /// Planned files with no price.
    public var unpriced: Int { items.filter { !$0.skipped && (try? $0.plan.get()) != nil && $0.cost == nil }.count }
    /// The estimated total of the priced files, USD.
    public var total: Decimal { items.compactMap(\.cost).reduce(0, +) }
}

/// A folder run: every input prepared, sent, fetched, converted, restored and
/// written next to a JSON sidecar, with a ledger in the output folder so a
/// run killed at any moment resumes without redoing or paying twice.
///
/// ```swift
/// var options = EditOptions(endpoint: "runpod")
/// options.prompt = "Make it night"
/// options.restore = .exact
/// let run = EditRun(EditRunConfiguration(inputs: ["photos"], output: "night", options: options))
/// try run.configuration.validate()
/// let summary = try await run.run { event in print(event) }
/// ```
public struct EditRun: Sendable {
    /// What the run does.
    public var configuration: EditRunConfiguration

    /// A run of `configuration`.
    public init(_ configuration: EditRunConfiguration) { self.configuration = configuration }

    /// The run last started into `folder`, from the configuration its ledger
    /// stored. Throws `EditError.noLedger` when the folder has none,
    /// `.legacyRun` for a ledger written before configurations were stored
    /// (it holds the command line instead), `.newerRun` for one from a newer qie.
    ///
    /// The stored run is checked against `trust` before it is returned: its
    /// key goes only to the endpoint's documented address or one given again
    /// now, and it reads only inputs under the folders trusted (see
    /// `ResumeTrust`), so a ledger written by someone else cannot send the
    /// key, or the user's images, anywhere new.
    ///
    /// A ledger written before configurations were stored records the
    /// command line instead. With `commandLine`, a front end that knows that
    /// command line reads it back (the arguments, and the directory they
    /// were run from) as the configuration it asked for, or nil when it is
    /// not one of its own; that configuration is validated and held to
    /// `trust` as a stored one is. Without it, or when it gives nil, such a
    /// ledger throws `.legacyRun`.
    public static func resume(
        folder: String, trust: ResumeTrust = ResumeTrust(), store settings: RunStoreSettings = RunStoreSettings(),
        commandLine reader: ((_ arguments: [String], _ directory: String) throws -> EditRunConfiguration?)? = nil
    ) async throws(EditError) -> EditRun {
        let store = try await openStore(folder: folder, settings: settings)
        let run: LedgerRun?
        do {
            run = try await store.lastRun()
            await store.close()
        } catch {
            await store.close()
            throw .ledger("\(error)")
        }
        guard let run else { throw .noRun(folder: folder) }
        guard let text = run.configuration, let version = run.configurationVersion else {
            return try legacy(run, folder: folder, trust: trust, reader: reader)
        }
        guard version <= EditRunConfiguration.currentVersion else { throw .newerRun(folder: folder, version: version) }
        let configuration: EditRunConfiguration
        do {
            configuration = try JSONDecoder().decode(EditRunConfiguration.self, from: Data(text.utf8))
        } catch {
            throw .ledger("the stored configuration cannot be read: \(error)")
        }
        try configuration.check(trust, folder: folder)
        return EditRun(configuration)
    }

    /// The run an earlier qie's recorded command line asks for, read by
    /// `reader`, validated and held to `trust`.
    private static func legacy(
        _ run: LedgerRun, folder: String, trust: ResumeTrust,
        reader: ((_ arguments: [String], _ directory: String) throws -> EditRunConfiguration?)?
    ) throws(EditError) -> EditRun {
        let arguments = run.argumentList
        let read: EditRunConfiguration?
        do {
            read = try reader?(arguments, run.directory)
        } catch {
            throw .ledger("the command line recorded in \(DisplayPath.escape(folder)) cannot be read: \(error)")
        }
        guard var configuration = read else {
            throw .legacyRun(folder: folder, arguments: arguments, directory: run.directory)
        }
        configuration.commandLine = arguments
        do { try configuration.validate() } catch { throw .setting(error) }
        try configuration.check(trust, folder: folder)
        return EditRun(configuration)
    }

    /// The ledger of an edit run's output folder: `.noLedger` when the folder
    /// has none (it is not an edit run's output), `.ledger` when it cannot
    /// be opened. Nothing is created.
    public static func openLedger(folder: String) throws(EditError) -> Ledger {
        guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(Ledger.fileName)) else {
            throw .noLedger(folder: folder)
        }
        do {
            return try Ledger(folder: folder)
        } catch {
            throw .ledger("cannot open the ledger in \(DisplayPath.escape(folder)): \(error)")
        }
    }

    /// The store of the run into `folder`: its SQLite ledger (which must
    /// exist: `.noLedger`), or the shared PostgreSQL store `settings` names,
    /// under the folder's absolute path (`.noLedger` when no run into that
    /// folder was recorded there). Close it when done.
    public static func openStore(folder: String, settings: RunStoreSettings) async throws(EditError) -> any RunStore {
        guard let url = settings.url else { return try openLedger(folder: folder) }
        let store = try await openShared(url: url, folder: folder, environment: settings.environment, clock: settings.clock)
        let last: LedgerRun?
        do {
            last = try await store.lastRun()
        } catch {
            await store.close()
            throw .ledger("\(error)")
        }
        guard last != nil else {
            await store.close()
            throw .noLedger(folder: folder)
        }
        return store
    }

    /// The shared store at `url`, scoped to `folder`'s absolute path.
    static func openShared(
        url: String, folder: String, environment: [String: String], clock: any QieClock
    ) async throws(EditError) -> PostgresStore {
        do {
            let address = try PostgresURL(url, environment: environment)
            return try await PostgresStore.open(url: address, scope: PromptManifest.absolute(folder), clock: clock)
        } catch {
            throw .ledger("\(error)")
        }
    }

    /// Where the run into `folder` stands, from its store: jobs by state and
    /// money spent, the jobs an endpoint accepted whose results were not
    /// fetched, the failed jobs with their reasons, and the last run.
    public static func status(folder: String, store settings: RunStoreSettings = RunStoreSettings()) async throws(EditError)
        -> EditRunStatus
    {
        let store = try await openStore(folder: folder, settings: settings)
        do {
            var status = EditRunStatus(summary: try await store.summary(), lastRun: try await store.lastRun())
            try await store.forEachJob { job in status.jobs.append(JobStatus(job)) }
            await store.close()
            return status
        } catch {
            await store.close()
            throw .ledger("\(error)")
        }
    }

    /// What a run starts from, checked: the endpoint, the prompts and the
    /// files (the output folder and the manifest excluded from the walk, and
    /// the text files that give an image its prompt, `NAME.txt` next to
    /// `NAME.jpg`, taken out), and the links skipped because they lead
    /// outside the inputs (folder entries and prompt files alike).
    private func start() throws(EditError)
        -> (
            profile: ProviderProfile, prompts: PromptManifest, files: [InputFile], problems: [InputProblem],
            skippedLinks: [SkippedLink], naming: OutputNaming
        )
    {
        let config = configuration
        let profile: ProviderProfile
        do throws(SettingError) {
            try config.validate()
            profile = try config.options.profile()
        } catch {
            throw .setting(error)
        }
        var prompts = try prompts()
        if !config.allowOutsideReferences, let manifest = config.manifest {
            // Rows may name references only under the inputs' folders or the
            // manifest's own, judged by where they lead, not by their text.
            let inputs = config.inputs.map { path in
                let full = config.resolve(path)
                return FileContents.isFolder(full) ? full : (full as NSString).deletingLastPathComponent
            }
            let folders = inputs + [(config.resolve(manifest) as NSString).deletingLastPathComponent]
            let inside = InputBounds(inputs: folders)
            // With links followed, a reference whose own path lies inside may lead anywhere.
            let outside = prompts.references(outside: folders).filter { found in
                !(config.followLinks && inside.contains(resolved: URL(fileURLWithPath: found.reference).standardized.path))
            }
            if let found = outside.first {
                let leads = found.target == URL(fileURLWithPath: found.reference).standardized.path
                    ? "" : " (it leads to \(DisplayPath.escape(found.target)))"
                throw .manifest(
                    ManifestError(
                        file: config.resolve(manifest), line: found.line,
                        "names the reference \(DisplayPath.escape(found.reference))\(leads) for \(DisplayPath.escape(found.image)), outside the input folders and the manifest's folder; move it there",
                        allowedBy: .allowOutsideReferences))
            }
        }
        var excluded = [config.resolve(config.output)]
        if let manifest = config.manifest { excluded.append(config.resolve(manifest)) }
        // Inputs given as addresses are walked as the files they were fetched to.
        var unfetched: [InputProblem] = []
        let local = config.inputs.compactMap { input -> String? in
            guard EditRunConfiguration.isRemote(input) else { return config.resolve(input) }
            let path = config.remoteInputPath(input)
            if FileManager.default.fileExists(atPath: path) { return path }
            unfetched.append(config.remoteInputFailure(input) ?? InputProblem(path: input, reason: "is an address, not fetched yet"))
            return nil
        }
        var walk = InputWalker(excluding: excluded, followsLinks: config.followLinks).walk(local)
        walk.problems += unfetched
        walk.files.removeAll(where: PromptManifest.isPromptFile(among: walk.files))
        prompts.bounds = walk.bounds
        // A prompt file beside a file named directly is not walked: judged here.
        var skipped = walk.skippedLinks
        for file in walk.files where file.isExplicit {
            if let link = prompts.skippedPromptFile(for: file.path), !skipped.contains(link) { skipped.append(link) }
        }
        let naming: OutputNaming
        do { naming = try config.naming(walk.files, on: profile) } catch { throw .setting(error) }
        return (profile, prompts, walk.files, walk.problems, skipped, naming)
    }

    /// The prompts per image: the manifest's rows (and `NAME.txt` files).
    func prompts() throws(EditError) -> PromptManifest {
        guard let manifest = configuration.manifest else { return PromptManifest() }
        do {
            return try PromptManifest(file: configuration.resolve(manifest), maxBytes: configuration.maxFileBytes)
        } catch {
            throw .manifest(error)
        }
    }

    /// Each file's plan and estimated cost, and the total, from headers only:
    /// nothing is sent and no key is needed.
    public func estimate() throws(EditError) -> EditEstimate {
        let options = configuration.options
        let (profile, prompts, files, problems, skippedLinks, naming) = try start()
        let requests = options.requestsPerInput(on: profile)
        let planned: [PlannedInput]
        do { planned = try options.plan(files) } catch { throw .setting(error) }
        let results = options.imagesPerRequest(on: profile)
        let format = options.format ?? profile.outputFormat.defaultFormat
        let items = planned.map { item in
            let prompt = prompts.request(for: item.input.path)?.prompt ?? options.prompt
            let plan = item.plan.map(\.plan)
            let pick = item.endpoint.flatMap { try? ProviderCatalog.profile(named: $0) } ?? profile
            let cost = (try? plan.get()).flatMap { options.estimate($0, on: pick).total.map { $0 * Decimal(requests) } }
            let copies = requests == 1 ? [0] : Array(1...requests)
            let outputs = copies.flatMap { copy in
                (0..<results).map { naming.resultPath(for: item.input, copy: copy, result: $0, of: results, format: format) }
            }
            return EditEstimateItem(
                input: item.input, plan: plan, requests: requests, cost: cost, prompt: prompt, skipped: item.skipped,
                outputs: outputs, endpoint: item.endpoint)
        }
        var estimate = EditEstimate(endpoint: profile.id, items: items, problems: problems, skippedLinks: skippedLinks)
        if let routing = options.routing {
            // Each endpoint alone, beside the routed total: what routing saves.
            estimate.route = routing.policy
            do { estimate.endpoints = try options.endpointTotals(planned.map(\.offers).filter { !$0.isEmpty }) } catch { throw .setting(error) }
        }
        return estimate
    }

    /// Runs: owns the run's store (the SQLite ledger under the output
    /// folder's lock, or the shared store `store` names; the configuration is
    /// recorded first), the HTTP client and the listener for as long as the
    /// run lasts, and writes `report.html` / `report.json` at the end. Jobs
    /// done in an earlier run are not done again; jobs an endpoint accepted
    /// are asked about, never sent again. The cost limit counts what earlier
    /// runs (and other workers) spent or have in flight, checked by the store
    /// before each send. With a shared store, jobs held by other workers are
    /// left to them; the run ends once each of them is ended, taking over those
    /// whose worker stopped renewing its lease. `stop` stops starting new jobs
    /// (those in flight finish). Keys come from `environment`.
    public func run(
        store settings: RunStoreSettings? = nil, environment: [String: String] = ProcessInfo.processInfo.environment,
        stop: BatchCancellation = BatchCancellation(), events: @escaping @Sendable (EditRunEvent) -> Void = { _ in }
    ) async throws(EditError) -> EditRunSummary {
        let settings = settings ?? RunStoreSettings(environment: environment)
        // Inputs given as addresses are fetched first; those that cannot be are input problems.
        _ = await fetchRemoteInputs()
        let (profile, prompts, files, problems, skippedLinks, naming) = try start()
        // Folder runs poll where the endpoint can: the job's id is recorded
        // milliseconds after sending, so a kill never pays twice.
        var resolved = configuration
        if resolved.options.routing != nil {
            resolved.options.routing?.pollsWhereItCan = true
        } else if resolved.options.flow == nil {
            resolved.options.flow = profile.defaultRunFlow
        }
        let config = resolved
        let options = config.options
        if options.prompt == nil, config.manifest == nil, !files.contains(where: { prompts.request(for: $0.path) != nil }) {
            throw .noPrompts
        }
        // Every endpoint a job may go to has its key and a trusted address.
        let candidates: [ProviderProfile]
        do { candidates = try options.candidateProfiles() } catch { throw .setting(error) }
        for candidate in candidates { _ = try EndpointAccess(profile: candidate, options: options.on(candidate), environment: environment) }

        let outputPath = config.resolve(config.output)
        let folder: OutputFolder
        var lock: RunLock? = nil
        do {
            folder = try OutputFolder(path: outputPath)
            // Workers sharing a store share the folder; the SQLite ledger is one run's at a time.
            if settings.url == nil { lock = try RunLock(folder: outputPath) }
        } catch {
            throw .output(error)
        }
        let ledger: any RunStore
        if let url = settings.url {
            ledger = try await Self.openShared(
                url: url, folder: outputPath, environment: settings.environment, clock: settings.clock)
        } else {
            do {
                let local = try Ledger(folder: outputPath, clock: settings.clock)
                // Under the folder's lock, any lease left in the file is a killed run's.
                try local.releaseAll()
                ledger = local
            } catch {
                throw .ledger("\(error)")
            }
        }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            // The store may be shared: no password of a PostgreSQL URL in the
            // command line is recorded, however it was given.
            var recorded = configuration
            recorded.commandLine = configuration.commandLine?.map(PostgresURL.redacting)
            try await ledger.recordRun(
                configuration: String(decoding: try encoder.encode(recorded), as: UTF8.self),
                version: EditRunConfiguration.currentVersion, arguments: recorded.commandLine ?? [],
                directory: config.workingDirectory)
        } catch {
            await ledger.close()
            throw .ledger("\(error)")
        }
        let worker = RunWorker(name: WorkerIdentity.current, lease: settings.lease, costLimit: config.maxCost)
        let jobs = Self.jobs(of: files, options: options, profile: profile)
        let context = RunContext(
            configuration: config, profile: profile, prompts: prompts, naming: naming, folder: folder,
            ledger: ledger, worker: worker, limiter: config.rate.map { RateLimiter(perSecond: $0, clock: settings.clock) }, events: events)
        events(.started(total: jobs.count, endpoint: profile.id))
        for problem in problems { events(.inputProblem(problem)) }
        for link in skippedLinks { events(.linkSkipped(link)) }

        let start = Date()
        var initial = BatchSummary()
        initial.action = "edited"
        let summary = Mutex(initial)
        let spent = Mutex<(billed: Decimal?, atRisk: Decimal?)>((nil, nil))
        let elsewhere = Mutex<[(job: EditJob, row: Int64)]>([])
        @Sendable func record(_ job: EditJob, _ outcome: JobOutcome) {
            if let kind = outcome.kind { summary.withLock { $0.record(kind) } }
            if let row = outcome.elsewhere { elsewhere.withLock { $0.append((job, row)) } }
            guard let cost = outcome.cost else { return }
            switch outcome.charge {
            case .billed:
                // Billed, whether its results were written or lost.
                let total = spent.withLock { spent in
                    let sum = (spent.billed ?? 0) + cost
                    spent.billed = sum
                    return sum
                }
                events(.cost(job, amount: cost, spent: total))
            case .atRisk:
                spent.withLock { $0.atRisk = ($0.atRisk ?? 0) + cost }
            case .none:
                break
            }
        }
        // Leases are renewed three times per lease while the run lasts.
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await settings.clock.sleep(for: worker.lease / 3)
                if Task.isCancelled { return }
                try? await ledger.renew(worker: worker.name, lease: worker.lease)
            }
        }
        do {
            try await Editor.with(options, environment: environment, connections: config.concurrency, clock: settings.clock) { editor in
                // `concurrency` jobs on the wire, in order, and as many again
                // prepared ahead, so that places freed together are taken at once.
                let gate = OrderedTurnstile(capacity: config.concurrency)
                await withTaskGroup(of: (EditJob, JobOutcome)?.self) { group in
                    var next = 0
                    var running = 0
                    func addNext() {
                        guard next < jobs.count, !stop.isCancelled, !worker.wasRefused else { return }
                        let (job, number) = (jobs[next], next)
                        next += 1
                        running += 1
                        events(.jobStarted(job))
                        group.addTask {
                            (job, await context.process(job, number: number, editor: editor, gate: gate, stop: stop))
                        }
                    }
                    // A stop now cancels the edits in progress (see `BatchCancellation.stopNow()`).
                    group.addTask {
                        await stop.untilStoppedNow()
                        return nil
                    }
                    for _ in 0..<(config.concurrency * 2) { addNext() }
                    while running > 0, let ended = await group.next() {
                        guard let (job, outcome) = ended else {
                            group.cancelAll()
                            continue
                        }
                        running -= 1
                        record(job, outcome)
                        addNext()
                    }
                    group.cancelAll()
                    // The budget stopped the run: the jobs never started are held too.
                    if worker.wasRefused { summary.withLock { $0.held += jobs.count - next } }
                }
                // Jobs other workers held: wait for each to end, and take over
                // those whose worker stopped renewing its lease.
                var waiting = elsewhere.withLock { $0 }
                while !waiting.isEmpty, !stop.isCancelled, !worker.wasRefused {
                    var still: [(job: EditJob, row: Int64)] = []
                    var takeovers: [EditJob] = []
                    for (job, row) in waiting {
                        let found: JobLease?
                        do {
                            found = try await ledger.lease(of: row)
                        } catch {
                            // The store did not answer: ask again next time round.
                            still.append((job, row))
                            continue
                        }
                        // Gone: its worker found it is not an image.
                        guard let lease = found else { continue }
                        if lease.isLive {
                            still.append((job, row))
                        } else if lease.state == .completed || (!lease.isSet && [.failed, .uncertain, .lost, .cancelled].contains(lease.state)) {
                            // Ended by its worker (done, failed, cancelled, or left uncertain): that worker reported it.
                            summary.withLock { $0.record(.elsewhere) }
                        } else {
                            // Its worker stopped (or gave it up unfinished): it is this run's now.
                            takeovers.append(job)
                        }
                    }
                    // Taken over together, `concurrency` at a time, like the run's own jobs.
                    let gate = OrderedTurnstile(capacity: config.concurrency)
                    let retaken = await withTaskGroup(of: (EditJob, JobOutcome).self) { group in
                        for (number, job) in takeovers.enumerated() {
                            group.addTask { (job, await context.process(job, number: number, editor: editor, gate: gate, stop: stop)) }
                        }
                        var again: [(job: EditJob, row: Int64)] = []
                        for await (job, outcome) in group {
                            if let row = outcome.elsewhere { again.append((job, row)) } else { record(job, outcome) }
                        }
                        return again
                    }
                    waiting = still + retaken
                    // Often enough that the run ends within a moment of the other
                    // workers' last job; a lease check is one indexed read.
                    if !waiting.isEmpty { try? await settings.clock.sleep(for: min(0.2, worker.lease / 4)) }
                }
                if !waiting.isEmpty, worker.wasRefused { summary.withLock { $0.held += waiting.count } }
            }
        } catch {
            // The heartbeat ends before the store closes: nothing of the run outlives it.
            heartbeat.cancel()
            await heartbeat.value
            await ledger.close()
            throw EditError.wrapping(error)
        }
        heartbeat.cancel()
        await heartbeat.value
        var batch = summary.withLock { $0.close(total: jobs.count, since: start) }
        batch.failed += problems.count
        batch.total += problems.count
        var result = EditRunSummary(
            batch: batch, inputProblems: problems.count, spent: spent.withLock { $0.billed },
            atRisk: spent.withLock { $0.atRisk },
            budget: worker.refusal.withLock { $0 }.map { (limit: $0.limit, spent: $0.spent + $0.inFlight) },
            stopped: stop.isCancelled, report: nil, reportError: nil)
        do {
            try await RunReport(store: ledger, folder: outputPath).write(to: folder)
            result.report = (outputPath as NSString).appendingPathComponent(RunReport.htmlName)
        } catch {
            result.reportError = "\(error)"
        }
        await ledger.close()
        withExtendedLifetime(lock) {}
        return result
    }

    /// The jobs of a run: each input once, or once per copy when the endpoint
    /// has no count field and requests are repeated.
    static func jobs(of files: [InputFile], options: EditOptions, profile: ProviderProfile) -> [EditJob] {
        let copies = options.requestsPerInput(on: profile)
        return files.flatMap { input in
            (0..<copies).map { index in EditJob(input: input, copy: copies == 1 ? 0 : index + 1) }
        }
    }
}

/// An input's header and plan for an endpoint, or why it has none.
public struct PlannedInput: Sendable {
    /// The file.
    public var input: InputFile
    /// Its header and plan.
    public var plan: Result<(info: ImageInfo, plan: SizePlan), EditError>
    /// Not an image and not named like one (found in a folder): to be skipped, not failed.
    public var skipped: Bool
    /// The endpoint it is planned for (with routing, the one ranked first for it).
    public var endpoint: String? = nil
    /// With routing, every endpoint's offer for it, best first (see `EditOptions.endpointTotals`).
    public var offers: [EndpointOffer] = []
}

extension EditOptions {
    /// Plans each file for the endpoint from its header alone (several at
    /// once), in order: the plans and costs shown before a run.
    /// With routing, each file is planned for the endpoint its policy ranks
    /// first for it (by price: its planned output's on each).
    public func plan(_ files: [InputFile]) throws(SettingError) -> [PlannedInput] {
        let profile = try profile()
        let candidates = try candidateProfiles()
        return zip(files, ProbeBatch(files: files).run()).map { file, probe in
            switch probe {
            case .failure(let error):
                return PlannedInput(input: file, plan: .failure(.input(error)), skipped: file.isSkippable(error))
            case .success(let info):
                if candidates.count > 1 {
                    // The candidates are checked above: ranking them cannot fail.
                    let offers = (try? offers(for: info.displaySize)) ?? []
                    switch offers[0].plan {
                    case .success(let plan):
                        return PlannedInput(
                            input: file, plan: .success((info, plan)), skipped: false, endpoint: offers[0].profile.id, offers: offers)
                    case .failure(let error):
                        return PlannedInput(input: file, plan: .failure(.request(error)), skipped: false, offers: offers)
                    }
                }
                do {
                    return PlannedInput(
                        input: file, plan: .success((info, try plan(info.displaySize, on: profile))), skipped: false, endpoint: profile.id)
                } catch {
                    return PlannedInput(input: file, plan: .failure(EditError.wrapping(error)), skipped: false)
                }
            }
        }
    }
}

/// Where an edit run stands, as its store records it (`EditRun.status(folder:)`):
/// the same states and money in text (`qie status`) and JSON (`qie status
/// --json`, this value encoded; see `encode(to:)` for its fields).
public struct EditRunStatus: Sendable, Encodable {
    /// Jobs by state, the run's money, submissions and polls.
    public var summary: LedgerSummary
    /// Every job, in the order they were registered.
    public var jobs: [JobStatus] = []
    /// The last run into the folder: its command line or stored configuration.
    public var lastRun: LedgerRun?

    /// Jobs an endpoint accepted or answered whose results are not written
    /// yet (billed): the next run asks about them or fetches their results.
    public var inFlight: [JobStatus] { jobs.filter { $0.state == .accepted || $0.state == .answered } }
    /// Jobs that failed before anything was billed, with the reason recorded.
    public var failed: [JobStatus] { jobs.filter { $0.state == .failed } }
    /// Jobs sent without a usable answer, or being sent when their run
    /// stopped: they may have been billed (money at risk), and are sent
    /// again only with `retryUncertain`.
    public var uncertain: [JobStatus] { jobs.filter { $0.state == .uncertain || $0.state == .sending } }
    /// Jobs billed whose results were lost: fetched again while their
    /// recorded links last, sent again (paying again) only with `retryFailed`.
    public var lost: [JobStatus] { jobs.filter { $0.state == .lost } }
    /// Jobs given up and cancelled at the endpoint before they ran: nothing
    /// was billed, and the next run sends them again.
    public var cancelled: [JobStatus] { jobs.filter { $0.state == .cancelled } }

    /// A status of `summary`, `jobs` and `lastRun`.
    public init(summary: LedgerSummary, jobs: [JobStatus] = [], lastRun: LedgerRun? = nil) {
        self.summary = summary
        self.jobs = jobs
        self.lastRun = lastRun
    }

    private enum Keys: String, CodingKey {
        case format, jobCount, byState, spentUSD, atRiskUSD, earlierUSD, unpriced, submissions, polls, lastRun, jobs
    }

    /// The JSON `qie status --json` prints, format 1: `jobCount`,
    /// `byState` (counts by `JobState` name), `spentUSD` (billed: completed,
    /// in flight or results lost), `atRiskUSD` (may have been billed: sent
    /// without a usable answer), `earlierUSD` (earlier attempts of jobs sent
    /// again), `unpriced`, `submissions`, `polls`, `lastRun` (`arguments`,
    /// `directory`, `startedAt`; null when none) and `jobs` (`JobStatus`
    /// each). Amounts are decimal text.
    public func encode(to encoder: any Encoder) throws {
        var values = encoder.container(keyedBy: Keys.self)
        let money = summary.money
        try values.encode(1, forKey: .format)
        try values.encode(summary.jobs, forKey: .jobCount)
        try values.encode(summary.byState, forKey: .byState)
        try values.encode("\(money.billed)", forKey: .spentUSD)
        try values.encode("\(money.atRisk)", forKey: .atRiskUSD)
        try values.encode("\(money.earlier)", forKey: .earlierUSD)
        try values.encode(money.unpriced, forKey: .unpriced)
        try values.encode(summary.submissions, forKey: .submissions)
        try values.encode(summary.polls, forKey: .polls)
        if let lastRun {
            try values.encode(
                ["arguments": lastRun.argumentList.joined(separator: " "), "directory": lastRun.directory,
                 "startedAt": "\(lastRun.startedAt)"], forKey: .lastRun)
        } else {
            try values.encodeNil(forKey: .lastRun)
        }
        try values.encode(jobs, forKey: .jobs)
    }
}

/// One job as `qie status` shows it, in text and JSON alike.
public struct JobStatus: Sendable, Codable, Equatable {
    /// The job's row id in its store.
    public var id: Int64
    /// The job's identity (its input's content, endpoint and result-changing options, hashed).
    public var key: String
    /// The input file.
    public var input: String
    /// 0 for the only request of an input; 1... for repeated requests.
    public var copy: Int
    /// The endpoint (profile id).
    public var endpoint: String
    /// Where it stands.
    public var state: JobState
    /// What its money is: `none`, `at-risk` or `billed`.
    public var charge: JobState.Charge
    /// Its amount (reported, else estimated), USD as decimal text; nil when unpriced.
    public var costUSD: String?
    /// Whether the amount is the endpoint's own figure.
    public var costReported: Bool
    /// What earlier attempts may have been billed, USD as decimal text; nil when nothing.
    public var earlierCostUSD: String?
    /// The endpoint's id for the job, once it gave one.
    public var requestID: String?
    /// Result links recorded (fetched again on resume while they last).
    public var resultURLs: [String]
    /// Submissions sent, over all runs.
    public var attempts: Int
    /// Status polls sent, over all runs.
    public var polls: Int
    /// Files written.
    public var outputs: [String]
    /// Why it is not done.
    public var error: String?
    /// The worker that last claimed it.
    public var worker: String?

    /// The status of `job`'s row.
    public init(_ job: LedgerJob) {
        id = job.id ?? 0
        key = job.key
        worker = job.worker
        input = job.inputPath
        copy = job.copy
        endpoint = job.endpoint
        state = job.state
        charge = job.state.charge
        costUSD = job.cost.map { "\($0)" }
        costReported = job.reportedCost != nil
        earlierCostUSD = job.earlierCost > 0 ? "\(job.earlierCost)" : nil
        requestID = job.requestID
        resultURLs = job.resultURLList
        attempts = job.attempts
        polls = job.polls
        outputs = job.outputPaths
        error = job.error
    }
}

/// What the person resuming a run vouches for now. A stored run is read from
/// a file anyone with access to the folder could have written, so it is held
/// to this before it runs: the key goes only to the endpoint's documented
/// address, or to a base URL or callback URL given again here (or in the
/// endpoint's base-URL variable); inputs, references and a manifest must lie
/// under the output folder's parent or one of `folders`.
public struct ResumeTrust: Sendable {
    /// A base URL given again now.
    public var baseURL: String?
    /// A callback URL given again now.
    public var callbackURL: String?
    /// Folders the run may read inputs from, besides the output folder's parent.
    public var folders: [String]
    /// Where base-URL variables are read.
    public var environment: [String: String]

    /// Trust in the current directory and the environment's base-URL variables, and in the addresses given.
    public init(
        baseURL: String? = nil, callbackURL: String? = nil, folders: [String] = [FileManager.default.currentDirectoryPath],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.baseURL = baseURL
        self.callbackURL = callbackURL
        self.folders = folders
        self.environment = environment
    }
}
