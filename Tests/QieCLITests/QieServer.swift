import Foundation

/// A `qie` server (`emulate`, `serve`) running in the background for a test:
/// the address its first line announces, and everything it prints. Used
/// across threads: what it printed is behind a lock, and its process and
/// address do not change once it started.
class QieServer: @unchecked Sendable {
    let process = Process()
    let address: String
    private let log = OutputLog()

    init(_ arguments: [String], environment extra: [String: String]) throws {
        process.executableURL = QieBinary.url
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let banner = firstLine(of: out)
        guard let found = banner.split(whereSeparator: { $0 == " " || $0 == "\n" }).first(where: { $0.hasPrefix("http://127.0.0.1:") })
        else {
            if process.isRunning { process.terminate() }
            let errors = String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
            throw ServerStartError(description: "qie \(arguments.first ?? "") printed no address: \(banner) \(errors)")
        }
        address = String(found)
        log.append(banner)
        log.read([out.fileHandleForReading, err.fileHandleForReading])
    }

    /// Everything the server printed so far.
    var output: String { log.text }

    /// How many times `text` occurs in what the server printed.
    func count(of text: String) -> Int { log.count(of: text) }

    /// Waits until what the server printed holds `text` `count` times (an
    /// event); `seconds` only guards against a server that never prints it.
    func waitForLog(_ text: String, count: Int = 1, seconds: Double = 300) -> Bool {
        log.wait(seconds: seconds) { printed, ended in
            printed.components(separatedBy: text).count - 1 >= count ? true : ended ? false : nil
        } ?? false
    }

    /// Waits until what the server printed satisfies `done`, or `client` (a
    /// process run against the server) has ended: each is an event (a chunk
    /// printed, the client's exit), and `done` is asked again at each. Ten
    /// minutes only guard against a broken run hanging the suite.
    func waitForOutput(until done: @escaping (String) -> Bool, orEndOf client: Process) {
        client.terminationHandler = { [log] _ in log.wake() }
        _ = log.wait(seconds: 600) { printed, _ in done(printed) || !client.isRunning ? true : nil }
    }

    /// `waitForLog` for async tests: the wait blocks a thread of its own,
    /// never one of the few the tests' tasks share, so tasks the test started
    /// (a request in flight) go on meanwhile.
    func waitingForLog(_ text: String, count: Int = 1, seconds: Double = 300) async -> Bool {
        await offThePool { self.waitForLog(text, count: count, seconds: seconds) }
    }

    deinit {
        // Only a process still running is signalled: the pid of one that
        // ended may by now be another process's (pids wrap quickly on a
        // busy machine), which a stray SIGTERM would stop.
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// What a process prints, read as it comes by a thread per output, and
/// whether it has closed them all (it ended). Each chunk read, and each
/// output closed, wakes whoever waits on it (`wait(seconds:for:)`).
final class OutputLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var printed = ""
    private var open = 0

    /// Reads each of `handles` to its end on a thread of its own.
    func read(_ handles: [FileHandle]) {
        changing { open += handles.count }
        for handle in handles {
            Thread.detachNewThread { [self] in
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    append(String(decoding: chunk, as: UTF8.self))
                }
                changing { open -= 1 }
            }
        }
    }

    func append(_ text: String) { changing { printed += text } }

    /// Wakes the waiters to ask again: something they watch besides the
    /// output changed (a process ended).
    func wake() { changing {} }

    private func changing(_ change: () -> Void) {
        condition.withLock {
            change()
            condition.broadcast()
        }
    }

    /// Everything read so far.
    var text: String { condition.withLock { printed } }

    /// How many times `text` occurs in what was read.
    func count(of text: String) -> Int { condition.withLock { printed.components(separatedBy: text).count - 1 } }

    /// Whether every output read has reached its end.
    var ended: Bool { condition.withLock { open == 0 } }

    /// Waits until `found` answers for what was read and whether every
    /// output ended (it is asked again each time either changes: the
    /// event), and returns its answer; nil once `seconds` pass, which only
    /// guard against a process that never prints what is awaited.
    func wait<T>(seconds: Double, for found: (_ printed: String, _ ended: Bool) -> T?) -> T? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let answer = found(printed, open == 0) { return answer }
            if !condition.wait(until: deadline) { return found(printed, open == 0) }
        }
    }
}

/// Waits for `process` to end (its exit is the event); false once `seconds`
/// pass without it.
func waitForExit(_ process: Process, seconds: Double) -> Bool {
    let ended = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in ended.signal() }
    // An exit before the handler was set is seen here; one after, signalled.
    return !process.isRunning || ended.wait(timeout: .now() + seconds) == .success
}

/// Runs `executable` to its end with exactly `environment`; what it prints
/// on its outputs, together.
func runToEnd(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

struct ServerStartError: Error, CustomStringConvertible {
    var description: String
}

/// Runs blocking `work` (a process to wait for, a log to watch) on a thread
/// of its own and awaits it, so an async test's other tasks keep the shared
/// threads.
func offThePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: work()) }
    }
}

/// What a process printed to `pipe` up to its first line's end (or until it closed).
func firstLine(of pipe: Pipe) -> String {
    var banner = ""
    while !banner.contains("\n") {
        let chunk = pipe.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        banner += String(decoding: chunk, as: UTF8.self)
    }
    return banner
}
