import ArgumentParser
import Foundation
import QiePipeline

/// Opens an output folder's ledger, or says why not.
private func openLedger(_ folder: String) throws -> Ledger {
    guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(Ledger.fileName)) else {
        TextStream.standardError.write("error: \(DisplayPath.escape(folder)) has no qie ledger: it is not the --out of a qie edit run\n")
        throw ExitCode(2)
    }
    do {
        return try Ledger(folder: folder)
    } catch {
        TextStream.standardError.write("error: cannot open the ledger in \(DisplayPath.escape(folder)): \(error)\n")
        throw ExitCode(1)
    }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the last qie edit into a folder again: finished jobs are skipped, accepted ones polled.",
        discussion: """
            Reads the command from the folder's ledger and runs it again from the directory it was \
            started in. Jobs done are not redone; jobs an endpoint accepted are asked about, never sent \
            again; jobs that failed are tried again only with --retry-failed. Keys still come from the \
            environment.
            """)

    @Argument(help: "The output folder of an earlier qie edit.", completion: .directory)
    var folder: String

    @Flag(name: .customLong("retry-failed"), help: "Also try again the jobs that failed.")
    var retryFailed = false

    func run() async throws {
        let ledger = try openLedger(folder)
        guard let run = try ledger.lastRun(), var arguments = Optional(run.argumentList), arguments.first == "edit" else {
            TextStream.standardError.write("error: the ledger in \(DisplayPath.escape(folder)) records no qie edit command\n")
            throw ExitCode(2)
        }
        arguments.removeFirst()
        if retryFailed, !arguments.contains("--retry-failed") { arguments.append("--retry-failed") }
        guard FileManager.default.changeCurrentDirectoryPath(run.directory) else {
            TextStream.standardError.write("error: cannot go back to \(DisplayPath.escape(run.directory)), where the run started\n")
            throw ExitCode(1)
        }
        let edit = try Edit.parse(arguments)
        try await edit.run()
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise an output folder's ledger: jobs by state, money spent, what is in flight or failed.")

    @Argument(help: "The output folder of a qie edit run.", completion: .directory)
    var folder: String

    @Flag(help: "The summary and every job as JSON.")
    var json = false

    func run() throws {
        let ledger = try openLedger(folder)
        let summary = try ledger.summary()
        if json {
            let jobs = try ledger.jobs()
            struct Output: Encodable {
                var summary: LedgerSummary
                var jobs: [LedgerJob]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            TextStream.standardOutput.write(String(decoding: try encoder.encode(Output(summary: summary, jobs: jobs)), as: UTF8.self) + "\n")
            return
        }
        var out = LineBuffer()
        let states = JobState.allCases.compactMap { state in summary.byState[state.rawValue].map { "\($0) \(state.rawValue)" } }
        out.add("\(summary.jobs) job\(summary.jobs == 1 ? "" : "s") in \(DisplayPath.escape(folder)): \(states.joined(separator: ", "))")
        out.add(
            "spent: $\(summary.spentUSD)\(summary.unpriced > 0 ? " (+ \(summary.unpriced) unpriced)" : "") over \(summary.submissions) submission\(summary.submissions == 1 ? "" : "s")")
        try ledger.forEachJob { job in
            if job.state == .submitted {
                out.add("in flight: \(DisplayPath.escape(job.inputPath)): job \(job.requestID ?? "?") at \(job.endpoint)")
            } else if job.state == .failed {
                out.add("failed: \(DisplayPath.escape(job.inputPath)): \(job.error ?? "no reason recorded")")
            }
        }
        if let run = try ledger.lastRun() {
            out.add("last run: qie \(run.argumentList.joined(separator: " "))")
        }
        out.flush()
    }
}
