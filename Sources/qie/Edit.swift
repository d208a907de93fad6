import ArgumentParser
import Foundation
import QieFiles
import QieImaging
import QiePipeline
import QieProviders
import Synchronization

extension RestoreMode: ExpressibleByArgument {}
extension ProviderProfile.Flow: ExpressibleByArgument {}

struct Edit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Edit images on an endpoint: prepare, send, fetch, convert and restore.",
        discussion: """
            Each input is prepared for the endpoint (see `qie plan`), sent with the prompt, and its \
            result downloaded at once, converted to --format if asked, restored with --restore, and \
            written atomically next to a JSON sidecar (endpoint, prompt, seed, request ids, cost, \
            plan, input hash, timings). The key comes from the endpoint's environment variable (see \
            `qie providers`). --flow chooses how results come back where an endpoint offers several: \
            sync (one request), poll (submit, then ask until done), callback (the endpoint POSTs to \
            --callback-url; a local listener receives it, verified with the endpoint's signing secret \
            when set) or sse (the endpoint's event stream). The default is poll wherever an endpoint \
            offers it (`qie providers` lists each one's flows): the job's id is recorded milliseconds after \
            sending, so a killed run asks about the job instead of paying for it again; sync answers \
            a single edit soonest but a kill during its wait cannot tell whether it was billed. \
            An accepted job is only ever polled, never sent again. A submission is sent again only \
            when it provably was not processed (the connection failed before it was written, 429, \
            503 with Retry-After); one sent without a usable answer is uncertain: its estimate stays \
            counted, `qie status` lists it, and only --retry-uncertain sends it again. \
            A ledger in --out records every job: running the same command again (or `qie resume \
            OUT`) skips finished jobs and picks up accepted ones; `qie status OUT` summarises it, and \
            OUT/report.html shows before/after pairs.
            """)

    /// The library's defaults, which the options below start from.
    static let defaults = EditRunConfiguration(inputs: [], output: "", options: EditOptions(endpoint: ""), workingDirectory: "")

    @Argument(help: "Image files or folders.", completion: .file())
    var inputs: [String]

    @OptionGroup var endpoint: ProviderOptions

    @Option(help: "The edit instruction (for every image without a --manifest row or a NAME.txt next to it).")
    var prompt: String?

    @Option(help: "Prompts per image: CSV with a header (file,prompt[,seed,negative_prompt,images]) or JSON Lines.")
    var manifest: String?

    @Flag(name: .customLong("dry-run"), help: "Print the plan, the names written and the estimated cost; send nothing (with --json: one JSON document).")
    var dryRun = false

    @Option(
        name: .customLong("max-cost"),
        help: "Stop sending before the folder's money (spent, at risk and earlier attempts, this run's and earlier runs') would pass this many USD.")
    var maxCost: String?

    @Option(help: "Submissions per second to the endpoint, at most.")
    var rate: Double?

    @Flag(name: .customLong("retry-failed"), help: "Try again the jobs that failed in an earlier run into --out.")
    var retryFailed = false

    @Flag(name: .customLong("retry-uncertain"), help: "Send again the jobs an earlier run sent without a usable answer (they may have been billed: this may pay twice).")
    var retryUncertain = false

    @OptionGroup var price: PriceOptions

    @Option(help: "Output folder (created if missing).", completion: .directory)
    var out: String

    @Option(
        name: .customLong("name"),
        help: ArgumentHelp(
            "Name results from a template, relative to --out: {dir} (the input's folder under its input folder), {stem} (its name without extension), {ext} (the result's format), {index} (the result's number from 1; needed with several results per input). It ends with .{ext}; names that leave --out or meet are refused before anything is sent. Default: the input's path and name.",
            valueName: "template"))
    var name: String?

    @Option(name: .customLong("negative-prompt"), help: "What to keep out of the result.")
    var negativePrompt: String?

    @Option(help: "Seed for reproducible results.")
    var seed: Int?

    @Option(name: .customLong("num-images"), help: "Results per input (repeated requests where the endpoint has no such field).")
    var numImages = defaults.options.numImages

    @Option(help: "Ask for this exact size (WxH).")
    var size: String?

    @Option(help: "contain (pad, default), cover (crop) or fill (stretch).")
    var fit = defaults.options.fit

    @Option(help: "Padding colour, blur or edge (see `qie prepare --help`).")
    var background = defaults.options.background.description

    @Option(help: "Format written: jpeg, png, webp, avif or gif (converted locally when the endpoint cannot). Default: as returned.")
    var format: String?

    @Option(help: "Quality 1-100 when converting.")
    var quality: Int?

    @Option(help: "Undo the padding on the result: exact (the input's size) or aspect (its shape at the result's scale).")
    var restore: RestoreMode?

    @Option(name: .customLong("image"), help: "A reference image sent after each input (repeat for several).")
    var references: [String] = []

    @Option(help: "Edits on the wire at once (as many more are prepared ahead).")
    var concurrency = defaults.concurrency

    @Option(name: .customLong("base-url"), help: "Send to this address instead (for example `qie emulate`).")
    var baseURL: String?

    @Flag(name: .customLong("allow-insecure-http"), help: "Allow a plain-http base URL to another machine (the key crosses the network unencrypted).")
    var allowInsecureHTTP = false

    @Flag(
        name: .customLong("allow-private-results"),
        help: "Fetch results from loopback, private and link-local addresses even when the endpoint is public.")
    var allowPrivateResults = false

    @Flag(
        name: .customLong("allow-private-inputs"),
        help: "Fetch inputs given as addresses from loopback, private and link-local addresses too (off: only public ones).")
    var allowPrivateInputs = false

    @Option(name: .customLong("max-result-bytes"), help: "Largest result (and input fetched from an address) accepted, in bytes.")
    var maxResultBytes = defaults.options.maxResultBytes

    @Option(name: .customLong("download-timeout"), help: "Longest one result download may take, start to end, in seconds.")
    var downloadTimeout = defaults.options.timeouts.download

    @Option(
        name: .customLong("max-event-line-bytes"),
        help: "Longest line read from an event stream, in bytes (a longer one closes it; jobs are polled).")
    var maxEventLineBytes = defaults.options.maxEventLineBytes

    @Option(
        name: .customLong("max-event-bytes"), help: "Largest event read from an event stream, in bytes (a larger one closes it; jobs are polled).")
    var maxEventBytes = defaults.options.maxEventBytes

    @Flag(
        name: .customLong("keep-result-bytes"),
        help: "Write the endpoint's own bytes when no conversion is needed (after a full decode); default: re-encode without metadata.")
    var keepResultBytes = false

    @Option(name: .customLong("max-file-bytes"), help: "Largest input, reference or manifest read, in bytes (refused from its size before reading).")
    var maxFileBytes = defaults.maxFileBytes

    @Flag(
        name: .customLong("allow-outside-references"),
        help: "Send reference images a manifest names outside the input folders and the manifest's folder.")
    var allowOutsideReferences = false

    @OptionGroup var links: LinkOptions

    @Option(help: "How results come back: sync, poll, callback or sse (default: poll where offered, else sync).")
    var flow: ProviderProfile.Flow?

    @Option(name: .customLong("callback-url"), help: "With --flow callback: the public address the endpoint POSTs to.")
    var callbackURL: String?

    @Option(
        name: .customLong("callback-listen"),
        help: "With --flow callback: HOST:PORT the local listener binds (default: the callback URL's, when it is local).")
    var callbackListen: String?

    @Option(help: "Longest wait for one edit, from submission to result, in seconds.")
    var timeout = defaults.options.timeouts.overall

    @Option(name: .customLong("request-timeout"), help: "Longest wait for one HTTP answer, in seconds.")
    var requestTimeout = defaults.options.timeouts.request

    @Option(name: .customLong("connect-timeout"), help: "Longest wait to connect, in seconds.")
    var connectTimeout = defaults.options.timeouts.connect

    @Option(
        name: .customLong("poll-interval"),
        help: "Poll at exactly this cadence, in seconds (default: planned from the jobs that ended before).")
    var pollInterval: Double?

    @OptionGroup var fields: EndpointFieldOptions

    @Flag(help: "One JSON object per file and a summary object.")
    var json = false

    @OptionGroup var limits: LimitOptions

    @OptionGroup var store: StoreOptions

    func validate() throws {
        try Flags.validating { try configuration(in: FileManager.default.currentDirectoryPath).validate() }
    }

    /// The run these arguments ask for, with relative paths resolved against `directory`.
    func configuration(in directory: String) throws -> EditRunConfiguration {
        var options = try endpoint.editOptions()
        options.size = try endpoint.sizeRequest(size: size)
        options.fit = fit
        options.background = try Flags.validating { try PaddingFill(parsing: background) }
        options.prompt = prompt
        options.negativePrompt = negativePrompt
        options.seed = seed
        options.numImages = numImages
        options.fields = try fields.fields()
        options.format = try format.map { text in try Flags.validating { try OutputFormat(parsing: text) } }
        options.quality = quality
        options.restore = restore
        options.limits = limits.limits
        options.flow = flow
        if callbackURL != nil || callbackListen != nil {
            options.callback = CallbackOptions(url: callbackURL ?? "", listen: callbackListen)
        }
        options.timeouts.connect = connectTimeout
        options.timeouts.request = requestTimeout
        options.timeouts.overall = timeout
        options.timeouts.pollInterval = pollInterval
        options.baseURL = baseURL
        options.allowInsecureHTTP = allowInsecureHTTP
        options.allowPrivateResults = allowPrivateResults
        options.allowPrivateInputs = allowPrivateInputs
        options.maxResultBytes = maxResultBytes
        options.maxEventLineBytes = maxEventLineBytes
        options.maxEventBytes = maxEventBytes
        options.timeouts.download = downloadTimeout
        options.keepResultBytes = keepResultBytes
        options.price = try price.override()
        options.rounding = try price.megapixelRounding()

        var run = EditRunConfiguration(inputs: inputs, output: out, options: options, workingDirectory: directory)
        run.manifest = manifest
        run.references = references
        run.concurrency = concurrency
        run.rate = rate
        run.maxCost = try maxCost.map { text in try Flags.validating { try Decimal(usd: text, for: .maxCost, positive: true) } }
        run.retryFailed = retryFailed
        run.retryUncertain = retryUncertain
        run.maxFileBytes = maxFileBytes
        run.allowOutsideReferences = allowOutsideReferences
        run.followLinks = links.followLinks
        run.outputName = try name.map { text in try Flags.validating { try OutputNameTemplate(text) } }
        return run
    }

    func run() async throws {
        var configuration = try configuration(in: FileManager.default.currentDirectoryPath)
        configuration.commandLine = Array(CommandLine.arguments.dropFirst())
        let run = EditRun(configuration)
        if dryRun {
            // Inputs given as addresses are fetched to be planned (fetching costs nothing).
            _ = await run.fetchRemoteInputs()
            try dryRunReport(run)
            return
        }
        try await Edit.execute(run, json: json, store: store.settings())
    }

    /// Runs `run`, rendering its events: a progress line on a terminal, plain
    /// lines, or JSON lines. Ctrl-C starts no more edits and lets those in
    /// flight finish (their jobs may already be paid for); a second Ctrl-C
    /// stops now: accepted jobs are cancelled where the endpoint can cancel
    /// them, and each is named with what became of it; a third quits at once.
    static func execute(_ run: EditRun, json: Bool, store: RunStoreSettings) async throws {
        let configuration = run.configuration
        let out = configuration.output
        let progress = EditProgress(reporter: progressReporter(json: json), endpoint: configuration.options.endpoint)
        let stop = BatchCancellation()
        let givenUp = Mutex<[(String, (endpoint: String, id: String))]>([])
        let interrupt = Terminal.onInterrupt {
            if stop.isStoppedNow {
                TextStream.standardError.write(Self.leftBehind(givenUp.withLock { $0 }, states: [:], folder: out))
                Terminal.exitNow(130)
            }
            if stop.isCancelled {
                givenUp.withLock { $0 = progress.accepted() }
                TextStream.standardError.write(
                    "\nstopping now: the edits in flight are given up, their accepted jobs cancelled where the endpoint can (Ctrl-C again to quit at once)\n")
                stop.stopNow()
                return
            }
            TextStream.standardError.write(
                "\ninterrupted: finishing the edits in flight, starting no more (Ctrl-C again to stop now)\n")
            stop.cancel()
        }
        defer { interrupt.cancel() }

        let summary: EditRunSummary
        do {
            summary = try await run.run(store: store, stop: stop) { progress.render($0) }
        } catch {
            TextStream.standardError.write("error: \(error.message(naming: Flags.name))\n")
            switch error {
            case .noPrompts, .missingKey, .manifest, .setting: throw ExitCode(2)
            default: throw ExitCode(1)
            }
        }
        let reporter = progress.reporter
        reporter.finish(summary.batch, outputFolder: out)
        if let report = summary.report, !json { TextStream.standardOutput.write("report: \(DisplayPath.escape(report))\n") }
        if let reportError = summary.reportError {
            TextStream.standardError.write("error: cannot write the report: \(reportError)\n")
        }
        if let atRisk = summary.atRisk, atRisk > 0 {
            TextStream.standardError.write(
                "at risk: $\(atRisk) sent without a usable answer (may have been billed); qie status lists the jobs\n")
        }
        if let budget = summary.budget {
            TextStream.standardError.write(
                "stopped sending at --max-cost $\(budget.limit): $\(budget.spent) spent or possibly billed; run again with a higher --max-cost to go on\n")
        }
        if stop.isStoppedNow {
            // What became of each job given up, as the run's store recorded it.
            let jobs = givenUp.withLock { $0 }
            let recorded = (try? await EditRun.status(folder: out, store: store))?.jobs ?? []
            var states: [String: JobState] = [:]
            for job in recorded { if let id = job.requestID { states[id] = job.state } }
            TextStream.standardError.write(Self.leftBehind(jobs, states: states, folder: out))
        }
        if summary.stopped { throw ExitCode(130) }
        if !summary.succeeded { throw ExitCode(1) }
    }

    /// The jobs a stop gave up, each with what became of it (`states`, by
    /// job id; a job not found there was accepted and not fetched).
    static func leftBehind(_ jobs: [(String, (endpoint: String, id: String))], states: [String: JobState], folder: String) -> String {
        var lines = ["\nstopped"]
        for (input, job) in jobs {
            let fate =
                switch states[job.id] {
                case .cancelled?: "was cancelled before it ran; nothing was billed"
                case .uncertain?: "was cancelled too late to know whether it ran; it may have been billed (qie status lists it)"
                case .completed?: "finished; its result was written"
                case .lost?: "was paid for; its result was lost (qie status lists it)"
                default: "was accepted; its result was not fetched"
                }
            lines.append("  \(input): job \(job.id) at \(job.endpoint) \(fate)")
        }
        if !jobs.isEmpty { lines.append("run the same command again (or qie resume \(DisplayPath.escape(folder))) to pick them up") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// --dry-run: each file's plan and estimate, and the total, from headers only.
    private func dryRunReport(_ run: EditRun) throws {
        let estimate: EditEstimate
        do {
            estimate = try run.estimate()
        } catch {
            TextStream.standardError.write("error: \(error.message(naming: Flags.name))\n")
            throw ExitCode(2)
        }
        var out = LineBuffer()
        for problem in estimate.problems { TextStream.standardError.write("error \(problem.message(naming: Flags.name(setting:)))\n") }
        for link in estimate.skippedLinks { TextStream.standardError.write(LinkOptions.warning(link)) }
        for item in estimate.items where !item.skipped {
            if case .failure(let error) = item.plan {
                TextStream.standardError.write(
                    "error \(DisplayPath.escape(run.configuration.shownInput(item.input.path))): \(error.reason(naming: Flags.name))\n")
            }
        }
        if json {
            TextStream.standardOutput.write(try JSONText.document(EditEstimateReport(estimate, naming: Flags.name)))
            if estimate.failed > 0 { throw ExitCode(1) }
            return
        }
        for item in estimate.items where !item.skipped {
            guard case .success(let plan) = item.plan else { continue }
            let copies = item.requests
            let asked = item.prompt ?? "(no prompt)"
            let names = item.outputs.map(DisplayPath.escape).joined(separator: ", ")
            out.add(
                "would edit \(DisplayPath.escape(run.configuration.shownInput(item.input.path))) as \(names): \(plan.input) -> \(plan.target)\(copies > 1 ? " x\(copies)" : "") \(item.cost.map { "~$\($0)" } ?? "price unknown")\(estimate.route != nil ? " on " + (item.endpoint ?? "") : "") \"\(asked.prefix(60))\""
            )
        }
        let planned = estimate.planned
        let requests = estimate.requests
        let unpriced = estimate.unpriced
        let money =
            unpriced == planned && planned > 0
            ? "unknown (no price for \(estimate.endpoint); set --price-per-image)" : "$\(estimate.total)"
        let on = estimate.route.map { "routed (\($0.rawValue)) among \(estimate.endpoints.map(\.endpoint).joined(separator: ", "))" } ?? "on \(estimate.endpoint)"
        out.add(
            "dry run: \(requests) request\(requests == 1 ? "" : "s") for \(planned) image\(planned == 1 ? "" : "s") \(on), estimated \(money)\(unpriced > 0 && unpriced < planned ? " (\(unpriced) unpriced)" : ""); nothing sent"
        )
        if let route = estimate.route { for line in routeLines(estimate.endpoints, policy: route).dropFirst() { out.add(line) } }
        out.flush()
        if estimate.failed > 0 { throw ExitCode(1) }
    }
}

/// Renders a run's events through a reporter, and keeps what Ctrl-C needs:
/// the jobs an endpoint accepted whose results are not fetched yet.
final class EditProgress: Sendable {
    let reporter: any BatchReporter
    private let endpoint: String
    /// Accepted jobs not fetched yet, by job (an input's copies apart).
    private let inFlight = Mutex<[String: (label: String, endpoint: String, id: String)]>([:])
    /// Where routing sent each job, by job.
    private let routed = Mutex<[String: String]>([:])
    private let started = Mutex<[String: Date]>([:])

    init(reporter: any BatchReporter, endpoint: String) {
        self.reporter = reporter
        self.endpoint = endpoint
    }

    /// Accepted jobs whose results were not fetched: each named by its
    /// input (and copy, with several results per input).
    func accepted() -> [(String, (endpoint: String, id: String))] {
        inFlight.withLock { $0 }.sorted { $0.key < $1.key }.map { ($0.value.label, ($0.value.endpoint, $0.value.id)) }
    }

    func render(_ event: EditRunEvent) {
        switch event {
        case .started(let total, _):
            reporter.start(total: total)
        case .inputProblem(let problem):
            TextStream.standardError.write("error \(problem.message(naming: Flags.name(setting:)))\n")
        case .linkSkipped(let link):
            TextStream.standardError.write(LinkOptions.warning(link))
        case .jobStarted(let job):
            started.withLock { $0[Self.key(job)] = Date() }
            reporter.started(job.input)
        case .routed(let job, let to, let after):
            routed.withLock { $0[Self.key(job)] = to }
            if let after {
                TextStream.standardError.write(
                    "note \(Self.label(job)): \(after.endpoint) refused it before taking it, so nothing was billed there (\(after.reason)); sent to \(to)\n")
            }
        case .sent(let job, let id):
            let sentTo = routed.withLock { $0[Self.key(job)] } ?? endpoint
            inFlight.withLock { $0[Self.key(job)] = (Self.label(job), sentTo, id) }
        case .done(let job, let output):
            let result = output.result
            for warning in result.warnings {
                TextStream.standardError.write("warning \(DisplayPath.escape(job.input.path)): \(warning)\n")
            }
            let first = result.images[0]
            let image = PreparedSummary(
                format: first.format, size: first.size, byteCount: first.data.count, source: result.source,
                geometry: result.plan.geometry, plan: result.plan)
            finished(job, .written(path: output.paths[0], image: image), cost: result.cost)
        case .earlier(let job, let output):
            finished(job, .earlier(path: output))
        case .skipped(let job):
            finished(job, .skipped)
        case .withdrawn(let job), .elsewhere(let job):
            // Not started here (or another worker's: the end of the run waits
            // for it); counted in the summary, no line of its own.
            started.withLock { _ = $0.removeValue(forKey: Self.key(job)) }
            reporter.withdrawn(job.input)
        case .held(let job, let error):
            finished(job, .held(error.reason(naming: Flags.name)))
        case .failed(let job, let error):
            finished(job, .failed(error.reason(naming: Flags.name)))
        case .cost(_, _, let spent):
            reporter.spent(spent)
        }
    }

    private static func key(_ job: EditJob) -> String { job.input.path + (job.copy > 0 ? "#\(job.copy)" : "") }

    private static func label(_ job: EditJob) -> String {
        job.copy > 0 ? "\(DisplayPath.escape(job.input.path)) (copy \(job.copy))" : DisplayPath.escape(job.input.path)
    }

    private func finished(_ job: EditJob, _ status: ItemReport.Status, cost: Decimal? = nil) {
        inFlight.withLock { _ = $0.removeValue(forKey: Self.key(job)) }
        let seconds = started.withLock { $0.removeValue(forKey: Self.key(job)) }.map { Date().timeIntervalSince($0) } ?? 0
        reporter.report(ItemReport(input: job.input, status: status, seconds: seconds, cost: cost))
    }
}
