import ArgumentParser
import Foundation
import QieCore
import QieFiles
import QiePipeline
import QieStore

/// Prints a library error the CLI's way and ends with its exit status (2: not an edit run's folder).
private func fail(_ error: EditError) -> ExitCode {
    TextStream.standardError.write("error: \(error.message(naming: Flags.name))\n")
    if case .noLedger = error { return ExitCode(2) }
    return ExitCode(1)
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the last qie edit into a folder again: finished jobs are skipped, accepted ones polled.",
        discussion: """
            Reads the run's configuration from the folder's ledger and runs it again (relative paths \
            are resolved against the directory it was started in). Jobs done are not redone; jobs an \
            endpoint accepted are asked about, never sent again; jobs that failed are tried again only \
            with --retry-failed (a failed job whose results were recorded is fetched again instead); \
            jobs sent without a usable answer (uncertain: they may have been billed) are sent again \
            only with --retry-uncertain. Keys still come from the environment.

            The configuration is printed before anything runs. The key goes only to the \
            endpoint's documented address: a ledger naming another base URL or a callback URL \
            is refused unless that address is given again (--base-url, --callback-url, or the \
            endpoint's base-URL variable), and one naming inputs outside the output folder's \
            parent and the current directory is refused too.
            """)

    @Argument(help: "The output folder of an earlier qie edit.", completion: .directory)
    var folder: String

    @Flag(name: .customLong("retry-failed"), help: "Also try again the jobs that failed.")
    var retryFailed = false

    @Flag(name: .customLong("retry-uncertain"), help: "Also send again the jobs sent without a usable answer (they may have been billed: this may pay twice).")
    var retryUncertain = false

    @Option(name: .customLong("base-url"), help: "The base URL the stored run names, given again to confirm the key may go there.")
    var baseURL: String?

    @Option(name: .customLong("callback-url"), help: "The callback URL the stored run names, given again to confirm it.")
    var callbackURL: String?

    @Flag(help: "One JSON object per file and a summary object.")
    var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        var run: EditRun
        let trust = ResumeTrust(baseURL: baseURL, callbackURL: callbackURL)
        let settings = try store.settings()
        do {
            // A ledger from before runs stored their configuration records
            // the command line: it is read as the command line it is.
            run = try await EditRun.resume(folder: folder, trust: trust, store: settings) { arguments, directory in
                guard arguments.first == "edit" else { return nil }
                return try Edit.parse(Array(arguments.dropFirst())).configuration(in: directory)
            }
        } catch {
            throw fail(error)
        }
        if retryFailed { run.configuration.retryFailed = true }
        if retryUncertain { run.configuration.retryUncertain = true }
        TextStream.standardError.write(Self.describe(run.configuration))
        try await Edit.execute(run, json: json, store: settings)
    }

    /// The configuration about to run, as lines: where the key goes, what is read, what is written.
    static func describe(_ configuration: EditRunConfiguration) -> String {
        let options = configuration.options
        let profile = try? options.profile()
        let address = profile.map { options.address(on: $0, environment: ProcessInfo.processInfo.environment) } ?? "?"
        var lines = ["resuming into \(DisplayPath.escape(configuration.output)):"]
        lines.append("  endpoint: \(profile?.id ?? options.endpoint) at \(address), flow \(options.flow?.rawValue ?? "default")")
        if let callback = options.callback { lines.append("  callback: \(callback.url)") }
        lines.append("  inputs: \(configuration.inputs.map { DisplayPath.escape(configuration.resolve($0)) }.joined(separator: ", "))")
        if !configuration.references.isEmpty {
            lines.append("  references: \(configuration.references.map { DisplayPath.escape(configuration.resolve($0)) }.joined(separator: ", "))")
        }
        if let manifest = configuration.manifest { lines.append("  manifest: \(DisplayPath.escape(configuration.resolve(manifest)))") }
        if let prompt = options.prompt { lines.append("  prompt: \(Sanitized.text(prompt, limit: 120))") }
        var limits = ["concurrency \(configuration.concurrency)"]
        if let maxCost = configuration.maxCost { limits.append("max cost $\(maxCost)") }
        if configuration.retryFailed { limits.append("retrying failed jobs") }
        if configuration.retryUncertain { limits.append("sending uncertain jobs again") }
        lines.append("  " + limits.joined(separator: ", "))
        return lines.joined(separator: "\n") + "\n"
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise an output folder's ledger: jobs by state, money spent, what is in flight or failed.")

    @Argument(help: "The output folder of a qie edit run.", completion: .directory)
    var folder: String

    @Flag(help: "The summary and every job as JSON.")
    var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let status: EditRunStatus
        let settings = try store.settings()
        do { status = try await EditRun.status(folder: folder, store: settings) } catch { throw fail(error) }
        let summary = status.summary
        if json {
            TextStream.standardOutput.write(try JSONText.document(status))
            return
        }
        var out = LineBuffer()
        let money = summary.money
        let states = JobState.allCases.compactMap { state in summary.byState[state.rawValue].map { "\($0) \(state.rawValue)" } }
        out.add("\(summary.jobs) job\(summary.jobs == 1 ? "" : "s") in \(DisplayPath.escape(folder)): \(states.joined(separator: ", "))")
        let lost = status.lost.count
        out.add(
            "spent: $\(money.billed)\(money.unpriced > 0 ? " (+ \(money.unpriced) unpriced)" : "") over \(summary.submissions) submission\(summary.submissions == 1 ? "" : "s")"
                + (lost > 0 ? ", \(lost) of them paid with \(lost == 1 ? "its results" : "their results") lost" : ""))
        if money.atRisk > 0 || !status.uncertain.isEmpty {
            out.add("at risk: $\(money.atRisk) (\(status.uncertain.count) sent without a usable answer: may have been billed)")
        }
        if money.earlier > 0 { out.add("earlier attempts: $\(money.earlier) (jobs sent again; the first attempts may have been billed)") }
        if summary.polls > 0 {
            let completed = max(1, summary.byState[JobState.completed.rawValue] ?? 0)
            out.add(String(format: "polls: %d (%.1f per completed job)", summary.polls, Double(summary.polls) / Double(completed)))
        }
        for job in status.inFlight {
            out.add("\(job.state.rawValue): \(DisplayPath.escape(job.input)): job \(job.requestID ?? "?") at \(job.endpoint) (billed; resuming fetches it)")
        }
        for job in status.uncertain {
            let reason = job.state == .sending ? "a run was stopped while sending it" : job.error ?? "no answer"
            out.add("\(job.state.rawValue) (may have been billed; --retry-uncertain sends it again): \(DisplayPath.escape(job.input)): \(reason)")
        }
        for job in status.lost {
            let again = job.resultURLs.isEmpty
                ? "--retry-failed sends it again, paying again" : "resuming fetches its results again while their links last"
            out.add(
                "lost (paid\(job.costUSD.map { " $\($0)" } ?? ""), results lost; \(again)): \(DisplayPath.escape(job.input)): \(job.error ?? "no reason recorded")\(job.requestID.map { " (job \($0))" } ?? "")")
        }
        for job in status.failed {
            out.add("failed: \(DisplayPath.escape(job.input)): \(job.error ?? "no reason recorded")")
        }
        for job in status.cancelled {
            out.add(
                "cancelled (not billed; the next run sends it again): \(DisplayPath.escape(job.input)): \(job.error ?? "no reason recorded")\(job.requestID.map { " (job \($0))" } ?? "")")
        }
        if let run = status.lastRun {
            let arguments = run.argumentList
            out.add(arguments.isEmpty ? "last run: started from the library (qie resume runs it again)" : "last run: qie \(arguments.joined(separator: " "))")
        }
        out.flush()
    }
}

/// Where a run keeps its jobs: `--ledger` (or `QIE_LEDGER_URL`) names a
/// PostgreSQL database shared by workers on several machines; without it,
/// the SQLite ledger in the output folder.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .customLong("ledger"),
        help: ArgumentHelp(
            "A PostgreSQL URL (postgres://USER@HOST:PORT/DB; another machine's needs ?sslmode=require, verify-full or disable) shared by workers on several machines (default: $QIE_LEDGER_URL, else the SQLite ledger in the output folder). Give the password in ~/.pgpass (or PGPASSFILE), PGPASSWORD or QIE_LEDGER_URL rather than here.",
            valueName: "url"))
    var ledger: String?

    @Option(name: .customLong("lease"), help: "With --ledger: seconds a worker's claim on a job lasts unrenewed (a dead worker's jobs wait this long).")
    var lease = RunStoreSettings(environment: [:]).lease

    func validate() throws {
        // The flags alone: a URL from the environment is judged when it is read.
        try Flags.validating { try store([:]).validate() }
    }

    /// The settings these options and `environment` ask for.
    private func store(_ environment: [String: String]) -> RunStoreSettings {
        var settings = RunStoreSettings(environment: environment)
        if let ledger { settings.url = ledger }
        settings.lease = lease
        return settings
    }

    func settings() throws -> RunStoreSettings {
        let environment = ProcessInfo.processInfo.environment
        let settings = store(environment)
        if let url = settings.url {
            do {
                let address = try PostgresURL(url, environment: environment)
                for warning in address.warnings { TextStream.standardError.write("warning: \(warning)\n") }
            } catch {
                TextStream.standardError.write("error: \(error)\n")
                throw ExitCode(2)
            }
        }
        return settings
    }
}
