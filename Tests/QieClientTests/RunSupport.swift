import Foundation
import QieEmulator
import QiePipeline
import QieStore
import Synchronization
import Testing

/// The hash as coreutils' sha256sum computes it (an independent implementation).
func sha256sum(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}

/// A new temporary folder.
func folder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("qie-edit-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes a JPEG of the given size (creating folders).
func write(_ width: Int, _ height: Int, to path: String, colour: (UInt8, UInt8) = (200, 40)) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let pixels = [UInt8]((0..<(width * height)).flatMap { i in [UInt8(i % 256), colour.0, colour.1] })
    try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .jpeg)).write(to: URL(fileURLWithPath: path))
}

/// Every endpoint's key variable set to the emulator's key (or `key`).
func testEnvironment(key: String = "test-key") -> [String: String] {
    var environment: [String: String] = [:]
    for profile in ProviderCatalog.all { environment[profile.auth.keyVariable] = key }
    return environment
}

/// Options for `profile` against the emulator at `base`, polling fast. The
/// overall timeout stays the default: a run waits for its jobs however
/// loaded the machine is, and the suites' time limits bound a hang.
func testOptions(_ profile: ProviderProfile, base: String, prompt: String? = "make it night") -> EditOptions {
    var options = EditOptions(endpoint: profile.id)
    options.prompt = prompt
    options.baseURL = base
    options.timeouts.pollInterval = 0.05
    return options
}

/// What a run reported: its summary and every event, in order.
struct RunRecord {
    var summary: EditRunSummary
    var events: [EditRunEvent]

    /// Failures by input's relative path, worded as the library words them.
    var failures: [String: String] {
        var result: [String: String] = [:]
        for case .failed(let job, let error) in events { result[job.input.relativePath] = error.reason(naming: \.name) }
        return result
    }

    var done: [EditJobOutput] { events.compactMap { if case .done(_, let output) = $0 { output } else { nil } } }
}

/// Runs a folder run of `root/in` into `root/` + `output`, in process.
func runFolder(
    _ root: String, options: EditOptions, output: String = "out", environment: [String: String] = testEnvironment(),
    configure: (inout EditRunConfiguration) -> Void = { _ in }
) async throws -> RunRecord {
    var configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/" + output, options: options)
    configuration.concurrency = 2
    configure(&configuration)
    let events = Mutex<[EditRunEvent]>([])
    let summary = try await EditRun(configuration).run(environment: environment) { event in
        events.withLock { $0.append(event) }
    }
    return RunRecord(summary: summary, events: events.withLock { $0 })
}
