import Foundation
import QieFiles
import QiePipeline
import Synchronization

/// One finished item of a batch (a prepared file, an edit job), as the
/// command line reports it.
struct ItemReport: Sendable {
    enum Status: Sendable {
        case written(path: String, image: PreparedSummary)
        case earlier(path: String)
        case skipped
        /// Left alone: its output is at this path already.
        case existing(path: String)
        case held(String)
        case failed(String)
    }

    var input: InputFile
    var status: Status
    var seconds: Double
    /// USD, reported by the endpoint or estimated (edits).
    var cost: Decimal?

    init(input: InputFile, status: Status, seconds: Double, cost: Decimal? = nil) {
        self.input = input
        self.status = status
        self.seconds = seconds
        self.cost = cost
    }

    init(_ result: PrepareResult) {
        let status: Status =
            switch result.outcome {
            case .written(let path, let image): .written(path: path, image: image)
            case .skipped: .skipped
            case .existing(let path): .existing(path: path)
            case .failed(let error): .failed(error.reason(naming: Flags.name))
            }
        self.init(input: result.input, status: status, seconds: result.seconds)
    }
}

/// Receives a batch's items as they finish.
protocol BatchReporter: Sendable {
    func start(total: Int)
    /// An item began (for counts of work in flight).
    func started(_ input: InputFile)
    /// An item that began was given up before any work that counts (a stopped run).
    func withdrawn(_ input: InputFile)
    func report(_ item: ItemReport)
    /// Money spent so far (edits).
    func spent(_ total: Decimal)
    func finish(_ summary: BatchSummary, outputFolder: String)
}

extension BatchReporter {
    func started(_ input: InputFile) {}
    func withdrawn(_ input: InputFile) {}
    func spent(_ total: Decimal) {}
}

/// JSON lines when asked, a live bar on a terminal, plain lines otherwise.
func progressReporter(json: Bool) -> any BatchReporter {
    if json { return JSONLinesReporter() }
    return TextStream.standardError.isTerminal ? TerminalReporter() : LineReporter()
}

enum ReportText {
    static func written(_ item: ItemReport, path: String, image: PreparedSummary) -> String {
        var line =
            "ok \(DisplayPath.escape(item.input.path)) -> \(DisplayPath.escape(path)) \(image.size) \(image.format.rawValue) \(byteCount(image.byteCount))"
        let padding = image.geometry.paddingFraction
        if padding > 0.0005 { line += String(format: " (%.1f%% padding)", padding * 100) }
        return line
    }

    static func byteCount(_ bytes: Int) -> String {
        if bytes < 1024 { return "\(bytes) B" }
        if bytes < 1024 * 1024 { return String(format: "%.1f KB", Double(bytes) / 1024) }
        return String(format: "%.1f MB", Double(bytes) / 1_048_576)
    }

    static func summary(_ summary: BatchSummary, outputFolder: String) -> String {
        var parts: [String] = []
        if summary.failed > 0 { parts.append("\(summary.failed) failed") }
        if summary.skipped > 0 { parts.append("\(summary.skipped) skipped (not images)") }
        if summary.existing > 0 { parts.append("\(summary.existing) skipped (output exists)") }
        if summary.earlier > 0 { parts.append("\(summary.earlier) done in an earlier run") }
        if summary.elsewhere > 0 { parts.append("\(summary.elsewhere) by other workers") }
        if summary.held > 0 { parts.append("\(summary.held) held back by --max-cost") }
        if summary.notStarted > 0 { parts.append("\(summary.notStarted) not started (interrupted)") }
        let tail = parts.isEmpty ? "" : "; " + parts.joined(separator: ", ")
        return String(
            format: "%@ %d of %d files into %@ in %.1f s%@\n", summary.action, summary.written, summary.total,
            DisplayPath.escape(outputFolder), summary.seconds, tail)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }
}

/// One plain line per file: successes on standard output, failures on standard error.
struct LineReporter: BatchReporter {
    func start(total: Int) {}
    func report(_ item: ItemReport) {
        let path = DisplayPath.escape(item.input.path)
        switch item.status {
        case .written(let output, let image):
            TextStream.standardOutput.write(ReportText.written(item, path: output, image: image) + "\n")
        case .skipped:
            TextStream.standardOutput.write("skipped \(path): not an image\n")
        case .existing(let output):
            TextStream.standardOutput.write("skipped \(path): \(DisplayPath.escape(output)) exists\n")
        case .earlier(let output):
            TextStream.standardOutput.write("done \(path) -> \(DisplayPath.escape(output)) (earlier run)\n")
        case .held(let reason):
            TextStream.standardError.write("held \(path): \(reason)\n")
        case .failed(let reason):
            TextStream.standardError.write("error \(path): \(reason)\n")
        }
    }
    func finish(_ summary: BatchSummary, outputFolder: String) {
        TextStream.standardOutput.write(ReportText.summary(summary, outputFolder: outputFolder))
    }
}

/// One JSON object per file on standard output; the summary as the last object.
struct JSONLinesReporter: BatchReporter {
    struct Line: Encodable {
        var input: String
        var status: String
        var output: String?
        var error: String?
        var seconds: Double
        var result: PreparedSummary?
        /// USD, reported by the endpoint or estimated (edits).
        var costUSD: String?
    }

    struct Summary: Encodable {
        var summary = true
        var total, written, failed, skipped, existing, earlier, held, elsewhere, notStarted: Int
        var seconds: Double
    }

    func start(total: Int) {}

    func report(_ item: ItemReport) {
        var line = Line(input: item.input.path, status: "", seconds: (item.seconds * 1000).rounded() / 1000)
        line.costUSD = item.cost.map { "\($0)" }
        switch item.status {
        case .written(let path, let image):
            line.status = "ok"
            line.output = path
            line.result = image
        case .skipped:
            line.status = "skipped"
            line.error = "not an image"
        case .existing(let path):
            line.status = "exists"
            line.output = path
        case .earlier(let path):
            line.status = "earlier"
            line.output = path
        case .held(let reason):
            line.status = "held"
            line.error = reason
        case .failed(let reason):
            line.status = "failed"
            line.error = reason
        }
        emit(line)
    }

    func finish(_ summary: BatchSummary, outputFolder: String) {
        emit(
            Summary(
                total: summary.total, written: summary.written, failed: summary.failed, skipped: summary.skipped,
                existing: summary.existing,
                earlier: summary.earlier, held: summary.held, elsewhere: summary.elsewhere, notStarted: summary.notStarted,
                seconds: (summary.seconds * 1000).rounded() / 1000))
    }

    private func emit(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(value) {
            TextStream.standardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
        }
    }
}

/// A live progress line on a terminal (standard error), with failures printed
/// above it as they happen.
final class TerminalReporter: BatchReporter {
    private struct State {
        var total = 0
        var done = 0
        var failed = 0
        var inFlight = 0
        var spent: Decimal?
        var start = Date()
        var lastDraw = Date.distantPast
        var current = ""
    }

    private let state = Mutex(State())
    private let stream = TextStream.standardError

    func start(total: Int) {
        state.withLock {
            $0.total = total
            $0.start = Date()
        }
    }

    func started(_ input: InputFile) {
        state.withLock { $0.inFlight += 1 }
    }

    func withdrawn(_ input: InputFile) {
        state.withLock { $0.inFlight = max(0, $0.inFlight - 1) }
    }

    func spent(_ total: Decimal) {
        state.withLock { $0.spent = total }
    }

    func report(_ item: ItemReport) {
        state.withLock { state in
            state.done += 1
            state.inFlight = max(0, state.inFlight - 1)
            state.current = item.input.relativePath
            var message: String? = nil
            switch item.status {
            case .failed(let reason):
                state.failed += 1
                message = "error \(DisplayPath.escape(item.input.path)): \(reason)"
            case .held(let reason):
                message = "held \(DisplayPath.escape(item.input.path)): \(reason)"
            case .skipped, .existing, .earlier, .written:
                break
            }
            let now = Date()
            if let message {
                stream.write("\r\u{1B}[2K" + message + "\n")
            } else if now.timeIntervalSince(state.lastDraw) < 0.1 && state.done < state.total {
                return
            }
            state.lastDraw = now
            stream.write("\r\u{1B}[2K" + bar(state, now: now))
        }
    }

    func finish(_ summary: BatchSummary, outputFolder: String) {
        stream.write("\r\u{1B}[2K")
        TextStream.standardOutput.write(ReportText.summary(summary, outputFolder: outputFolder))
    }

    private func bar(_ state: State, now: Date) -> String {
        let width = 24
        let fraction = state.total == 0 ? 1 : Double(state.done) / Double(state.total)
        let filled = Int(fraction * Double(width))
        let elapsed = now.timeIntervalSince(state.start)
        let rate = elapsed > 0 ? Double(state.done) / elapsed : 0
        let eta = rate > 0 ? Double(state.total - state.done) / rate : .infinity
        var line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
        line += "\(state.done)/\(state.total)"
        if state.failed > 0 { line += " \(state.failed) failed" }
        if state.inFlight > 0 { line += " \(state.inFlight) in flight" }
        if let spent = state.spent { line += " $\(spent)" }
        line += String(format: " %.1f img/s", rate) + " ETA " + ReportText.duration(eta)
        let name = DisplayPath.escape(state.current)
        line += " " + (name.count > 40 ? "…" + name.suffix(39) : name)
        return line
    }
}

/// Buffers output lines and writes them in large pieces.
struct LineBuffer {
    private var text = ""
    private let stream: TextStream

    init(_ stream: TextStream = .standardOutput) { self.stream = stream }

    mutating func add(_ line: String) {
        text += line
        text += "\n"
        if text.utf8.count > 64 * 1024 { flush() }
    }

    mutating func flush() {
        stream.write(text)
        text = ""
    }
}
