import ArgumentParser
import Foundation
import QieClient
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
            sync (one request), poll (submit, then ask until done), callback (Runflow POSTs to \
            --callback-url; a local listener receives it, verified with RUNFLOW_SIGNING_SECRET when set) \
            or sse (Oxen's event stream). An accepted job is only ever polled, never sent again. \
            A ledger in --out records every job: running the same command again (or `qie resume \
            OUT`) skips finished jobs and picks up accepted ones; `qie status OUT` summarises it, and \
            OUT/report.html shows before/after pairs.
            """)

    @Argument(help: "Image files or folders.", completion: .file())
    var inputs: [String]

    @OptionGroup var endpoint: ProviderOptions

    @Option(help: "The edit instruction (for every image without a --manifest row or a NAME.txt next to it).")
    var prompt: String?

    @Option(help: "Prompts per image: CSV with a header (file,prompt[,seed,negative_prompt,images]) or JSON Lines.")
    var manifest: String?

    @Flag(name: .customLong("dry-run"), help: "Print the plan and the estimated cost; send nothing.")
    var dryRun = false

    @Option(name: .customLong("max-cost"), help: "Stop sending before spent + in flight would pass this many USD.")
    var maxCost: String?

    @Option(help: "Submissions per second to the endpoint, at most.")
    var rate: Double?

    @Flag(name: .customLong("retry-failed"), help: "Try again the jobs that failed in an earlier run into --out.")
    var retryFailed = false

    @OptionGroup var price: PriceOptions

    @Option(help: "Output folder (created if missing).", completion: .directory)
    var out: String

    @Option(name: .customLong("negative-prompt"), help: "What to keep out of the result.")
    var negativePrompt: String?

    @Option(help: "Seed for reproducible results.")
    var seed: Int?

    @Option(name: .customLong("num-images"), help: "Results per input (repeated requests where the endpoint has no such field).")
    var numImages: Int = 1

    @Option(help: "Ask for this exact size (WxH).")
    var size: String?

    @Option(help: "contain (pad, default), cover (crop) or fill (stretch).")
    var fit: Fit = .contain

    @Option(help: "Padding colour, blur or edge (see `qie prepare --help`).")
    var background: String = "white"

    @Option(help: "Format written: jpeg, png, webp, avif or gif (converted locally when the endpoint cannot). Default: as returned.")
    var format: String?

    @Option(help: "Quality 1-100 when converting.")
    var quality: Int?

    @Option(help: "Undo the padding on the result: exact (the input's size) or aspect (its shape at the result's scale).")
    var restore: RestoreMode?

    @Option(name: .customLong("image"), help: "A reference image sent after each input (repeat for several).")
    var references: [String] = []

    @Option(help: "Edits in flight at once.")
    var concurrency: Int = 4

    @Option(name: .customLong("base-url"), help: "Send to this address instead (for example `qie emulate`).")
    var baseURL: String?

    @Option(help: "How results come back: sync, poll, callback or sse (default: sync where offered, else poll).")
    var flow: ProviderProfile.Flow?

    @Option(name: .customLong("callback-url"), help: "With --flow callback: the public address the endpoint POSTs to.")
    var callbackURL: String?

    @Option(
        name: .customLong("callback-listen"),
        help: "With --flow callback: HOST:PORT the local listener binds (default: the callback URL's, when it is local).")
    var callbackListen: String?

    @Option(help: "Longest wait for one edit, from submission to result, in seconds.")
    var timeout: Double = 1800

    @Option(name: .customLong("request-timeout"), help: "Longest wait for one HTTP answer, in seconds.")
    var requestTimeout: Double = 300

    @Option(name: .customLong("connect-timeout"), help: "Longest wait to connect, in seconds.")
    var connectTimeout: Double = 10

    @Option(name: .customLong("poll-interval"), help: "First pause between status polls, in seconds (grows to 10).")
    var pollInterval: Double = 1

    @OptionGroup var fields: EndpointFieldOptions

    @Flag(help: "One JSON object per file and a summary object.")
    var json = false

    @OptionGroup var limits: LimitOptions

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one file or folder to edit") }
        if let prompt, prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("--prompt is empty; say what to change")
        }
        if let maxCost, Decimal(string: maxCost).map({ $0 > 0 }) != true {
            throw ValidationError("--max-cost must be a positive amount in USD such as 5 or 12.50; got \"\(maxCost)\"")
        }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be a positive number of requests per second, got \(rate)") }
        if let format, OutputFormat(name: format) == nil {
            throw ValidationError("--format must be jpeg, jpg, png, webp, avif or gif; got \"\(format)\"")
        }
        if let quality, !(1...100).contains(quality) {
            throw ValidationError("--quality must be an integer from 1 to 100, got \(quality)")
        }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1, got \(concurrency)") }
        for (name, value) in [("--timeout", timeout), ("--request-timeout", requestTimeout), ("--connect-timeout", connectTimeout), ("--poll-interval", pollInterval)]
        where !(value > 0) {
            throw ValidationError("\(name) must be a positive number of seconds, got \(value)")
        }
        if ![Fit.contain, .cover, .fill].contains(fit) {
            throw ValidationError("--fit for an endpoint must be contain, cover or fill: the endpoint needs its exact size")
        }
        let profile = try endpoint.profile()
        let flow = flow ?? profile.defaultFlow
        if !profile.flow.contains(flow) {
            throw ValidationError(
                "\(profile.id) does not offer --flow \(flow.rawValue); it offers \(profile.flow.map(\.rawValue).joined(separator: ", "))")
        }
        if flow == .callback {
            guard callbackURL != nil else {
                throw ValidationError("--flow callback needs --callback-url, the address \(profile.id) will POST to")
            }
            _ = try listenAddress()
        } else if callbackURL != nil || callbackListen != nil {
            throw ValidationError("--callback-url and --callback-listen go with --flow callback")
        }
        if references.count + 1 > profile.images.maxCount {
            throw ValidationError(
                "\(profile.id) takes at most \(profile.images.maxCount) image\(profile.images.maxCount == 1 ? "" : "s") per request: the input plus \(profile.images.maxCount - 1) --image")
        }
        var check = try editRequest()
        if check.prompt.isEmpty { check.prompt = "-" }
        try checkBeforeReading(
            profile: profile, size: try endpoint.sizeRequest(size: size), fit: fit, request: check,
            imageCount: references.count + 1)
        if maxCost != nil {
            let unit = CostEstimator.estimate(profile, outputSize: PixelSize(width: 1024, height: 1024), override: price.override)
            if unit.total == nil {
                throw ValidationError(
                    "--max-cost needs a price: \(profile.id) publishes none; set --price-per-image or --price-per-megapixel")
            }
        }
    }

    private func editRequest() throws -> EditRequest {
        var request = EditRequest(
            prompt: prompt ?? "", images: [], outputFormat: format.flatMap(OutputFormat.init(name:)),
            negativePrompt: negativePrompt, seed: seed, numImages: numImages)
        request.callbackURL = callbackURL
        try fields.apply(to: &request)
        return request
    }

    /// Where the callback listener binds: --callback-listen, or the callback
    /// URL's own host and port when it is a local address.
    private func listenAddress() throws -> (host: String, port: Int) {
        if let callbackListen {
            let parts = callbackListen.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2, let port = Int(parts.last!), (1...65535).contains(port) else {
                throw ValidationError("--callback-listen must be HOST:PORT, for example 0.0.0.0:8788; got \"\(callbackListen)\"")
            }
            return (parts.dropLast().joined(separator: ":"), port)
        }
        guard let callbackURL, let url = URL(string: callbackURL), let host = url.host,
            ["http", "https"].contains(url.scheme ?? "")
        else {
            throw ValidationError("--callback-url must be an http(s) URL, got \"\(callbackURL ?? "")\"")
        }
        guard ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) else {
            throw ValidationError(
                "--callback-url \(callbackURL) is not a local address: say where to listen with --callback-listen HOST:PORT (the URL must reach it, for example through a tunnel)")
        }
        return (host == "localhost" ? "127.0.0.1" : host, url.port ?? (url.scheme == "https" ? 443 : 80))
    }

    func run() async throws {
        let profile = try endpoint.profile()
        let environment = ProcessInfo.processInfo.environment
        let prompts: PromptManifest
        do {
            prompts = try manifest.map { try PromptManifest(file: $0) } ?? PromptManifest()
        } catch {
            TextStream.standardError.write("error: manifest \(error)\n")
            throw ExitCode(2)
        }
        let target = ProviderTarget(
            profile: profile, size: try endpoint.sizeRequest(size: size), fit: fit, position: .centre,
            fill: try PaddingFill(parsing: background))
        var (files, problems) = InputWalker(excluding: [out] + (manifest.map { [$0] } ?? [])).walk(inputs)
        // NAME.txt next to NAME.jpg is that image's prompt, not an input.
        let imageStems = Set(files.filter { !$0.path.hasSuffix(".txt") }.map { ($0.path as NSString).deletingPathExtension })
        files.removeAll { $0.path.hasSuffix(".txt") && imageStems.contains(($0.path as NSString).deletingPathExtension) }
        if prompt == nil, manifest == nil, !files.contains(where: { prompts.request(for: $0.path) != nil }) {
            TextStream.standardError.write(
                "error: no prompt: give --prompt, a --manifest, or a text file NAME.txt next to each image\n")
            throw ExitCode(2)
        }
        if dryRun {
            try dryRunReport(files: files, problems: problems, target: target, prompts: prompts)
            return
        }

        guard let key = environment[profile.auth.keyVariable], !key.isEmpty else {
            TextStream.standardError.write(
                "error: \(profile.id) needs an API key in \(profile.auth.keyVariable) (read from the environment only)\n")
            throw ExitCode(2)
        }
        let folder: OutputFolder
        let ledger: Ledger
        let lock: RunLock
        do {
            folder = try OutputFolder(path: out)
            lock = try RunLock(folder: out)
            ledger = try Ledger(folder: out)
            // `qie resume` runs the recorded command again and records nothing new.
            let invoked = Array(CommandLine.arguments.dropFirst())
            if invoked.first == "edit" {
                try ledger.recordRun(arguments: invoked, directory: FileManager.default.currentDirectoryPath)
            }
        } catch {
            TextStream.standardError.write("error \(error)\n")
            throw ExitCode(1)
        }
        var settings = EditSettings(
            target: target, request: try editRequest(), references: references,
            outputFormat: format.flatMap(OutputFormat.init(name:)), quality: quality, restore: restore,
            limits: limits.limits, concurrency: concurrency,
            baseURL: baseURL ?? environment[profile.baseURLVariable], apiKey: key, flow: flow,
            wait: WaitPolicy(firstInterval: pollInterval, timeout: timeout),
            callbackListen: (flow == .callback) ? try listenAddress() : nil,
            signingSecret: profile.callback.flatMap { environment[$0.secretVariable] })
        settings.prompts = prompts
        settings.price = price.override
        settings.rounding = price.megapixelRounding
        settings.retryFailed = retryFailed
        settings.rate = rate
        var budget: Budget? = nil
        if let maxCost = maxCost.flatMap({ Decimal(string: $0) }) {
            // What earlier runs into this folder spent or have in flight counts too.
            budget = Budget(limit: maxCost, spent: try ledger.committedCost(includingSubmitted: true).total)
        }
        for problem in problems { TextStream.standardError.write("error \(problem)\n") }
        let reporter = progressReporter(json: json)

        // Ctrl-C: start no more edits and let those in flight finish (their
        // jobs may already be paid for); a second Ctrl-C stops at once and
        // names the accepted jobs whose results were not fetched.
        let cancellation = BatchCancellation()
        let inFlight = Mutex<[String: String]>([:])
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        interrupt.setEventHandler {
            if cancellation.isCancelled {
                let jobs = inFlight.withLock { $0 }
                var lines = ["\nstopped"]
                for (path, id) in jobs.sorted(by: { $0.key < $1.key }) {
                    lines.append("  \(DisplayPath.escape(path)): job \(id) at \(profile.id) was accepted; its result was not fetched")
                }
                if !jobs.isEmpty { lines.append("run the same command again (or qie resume \(out)) to pick them up") }
                TextStream.standardError.write(lines.joined(separator: "\n") + "\n")
                Foundation.exit(130)
            }
            TextStream.standardError.write(
                "\ninterrupted: finishing the edits in flight, starting no more (Ctrl-C again to stop now)\n")
            cancellation.cancel()
        }
        interrupt.resume()

        let batch = EditBatch(inputs: files, output: folder, settings: settings)
        reporter.start(total: batch.jobs().count)
        let client = EditClient(
            connectTimeout: .milliseconds(Int64(connectTimeout * 1000)),
            requestTimeout: .milliseconds(Int64(requestTimeout * 1000)), connectionsPerHost: max(8, concurrency))
        var summary: BatchSummary
        do {
            summary = try await batch.run(
                client: client, ledger: ledger, budget: budget, cancellation: cancellation,
                accepted: { input, id in inFlight.withLock { $0[input.path] = id } },
                started: { reporter.started($0) },
                report: { result in
                    inFlight.withLock { _ = $0.removeValue(forKey: result.input.path) }
                    reporter.report(result)
                })
        } catch {
            try? await client.shutdown()
            TextStream.standardError.write("error: \(error)\n")
            throw ExitCode(1)
        }
        try? await client.shutdown()
        interrupt.cancel()
        summary.failed += problems.count
        summary.total += problems.count
        reporter.finish(summary, outputFolder: out)
        do {
            try RunReport(ledger: ledger, folder: out).write(to: folder)
            if !json { TextStream.standardOutput.write("report: \((out as NSString).appendingPathComponent(RunReport.htmlName))\n") }
        } catch {
            TextStream.standardError.write("error: cannot write the report: \(error)\n")
        }
        withExtendedLifetime(lock) {}
        if let budget, budget.wasReached {
            TextStream.standardError.write(
                "stopped sending at --max-cost $\(budget.limit): $\(budget.spent) spent; run again with a higher --max-cost to go on\n")
        }
        if cancellation.isCancelled { throw ExitCode(130) }
        if !summary.succeeded { throw ExitCode(1) }
    }

    /// --dry-run: each file's plan and estimate, and the total, from headers only.
    private func dryRunReport(files: [InputFile], problems: [InputProblem], target: ProviderTarget, prompts: PromptManifest) throws {
        let profile = target.profile
        let copies = profile.field(for: .numImages) == nil ? numImages : 1
        let perRequest = profile.field(for: .numImages) == nil ? 1 : numImages
        var out = LineBuffer()
        var total = Decimal(0)
        var unpriced = 0
        var planned = 0
        var failed = problems.count
        for problem in problems { TextStream.standardError.write("error \(problem)\n") }
        for (file, result) in endpoint.plans(for: files, size: target.size, fit: fit, position: target.position, profile: profile) {
            switch result {
            case .failure(let error):
                if let error = error as? ImagingError, file.isSkippable(error) { continue }
                failed += 1
                TextStream.standardError.write("error \(DisplayPath.escape(file.path)): \(reason(error))\n")
            case .success(let (_, plan)):
                planned += 1
                let estimate = CostEstimator.estimate(
                    profile, outputSize: plan.expectedOutput, images: perRequest, override: price.override,
                    rounding: price.megapixelRounding)
                let each = estimate.total.map { $0 * Decimal(copies) }
                if let each { total += each } else { unpriced += 1 }
                let asked = prompts.request(for: file.path)?.prompt ?? prompt ?? "(no prompt)"
                out.add(
                    "would edit \(DisplayPath.escape(file.path)): \(plan.input) -> \(plan.target)\(copies > 1 ? " x\(copies)" : "") \(each.map { "~$\($0)" } ?? "price unknown") \"\(asked.prefix(60))\"")
            }
        }
        let money = unpriced == planned && planned > 0 ? "unknown (no price for \(profile.id); set --price-per-image)" : "$\(total)"
        out.add(
            "dry run: \(planned * copies) request\(planned * copies == 1 ? "" : "s") for \(planned) image\(planned == 1 ? "" : "s") on \(profile.id), estimated \(money)\(unpriced > 0 && unpriced < planned ? " (\(unpriced) unpriced)" : ""); nothing sent")
        out.flush()
        if failed > 0 { throw ExitCode(1) }
    }
}
