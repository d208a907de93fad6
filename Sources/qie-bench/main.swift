// Micro-benchmarks, not tests: `swift run -c release qie-bench`.
import AsyncHTTPClient
import ExtrasBase64
import Foundation
import QieImaging
import QiePipeline
import QieStore
import QieProviders

/// Data-URI encoding throughput of qie's streaming encoder against
/// Foundation's `base64EncodedString`, on the same buffers, one core
/// (`quick`: one small buffer, to keep the benchmark running).
func base64Throughput(quick: Bool = false) throws {
    var generator = SystemRandomNumberGenerator()
    let sizes = quick ? [256 * 1024] : [256 * 1024, 2 * 1024 * 1024, 16 * 1024 * 1024]
    print("data-URI encoding, one core (MB/s of input; best of 5 rounds)")
    print("      buffer            qie   swift-extras     Foundation  qie/Foundation")
    for size in sizes {
        let data = Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let rounds = quick ? 4 : max(4, (256 * 1024 * 1024) / size)
        func best(_ body: () throws -> Int) rethrows -> Double {
            var fastest = Double.infinity
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                var total = 0
                for _ in 0..<rounds { total &+= try body() }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                precondition(total > 0)
                fastest = min(fastest, seconds)
            }
            return Double(size) * Double(rounds) / fastest / 1_000_000
        }
        let image = PayloadImage.bytes(data, format: .png, filename: "x.png")
        let qie = try best {
            var sink = ChecksumSink()
            try JSONValue.image(image).write(to: &sink)
            return sink.count
        }
        let extras = best { ("data:image/png;base64," + Base64.encodeToString(bytes: data)).utf8.count }
        let foundation = best { ("data:image/png;base64," + data.base64EncodedString()).utf8.count }
        print(
            String(
                format: "%9d KB %9.0f MB/s %9.0f MB/s %9.0f MB/s %10.2fx", size / 1024, qie, extras, foundation,
                qie / foundation))
    }
}

/// Counts bytes without keeping them, so only encoding is timed.
struct ChecksumSink: ByteSink {
    var count = 0
    var checksum: UInt8 = 0
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        count += bytes.count
        if let last = bytes.last { checksum ^= last }
    }
}

/// The store's cost per job: the five committed moves a job makes in a run
/// (registered, claimed for this worker, about to be sent with its attempt
/// counted, submitted with its id, completed), one job after another, on a
/// real SQLite file, or on the PostgreSQL database `url` names (its tables
/// under a scope of their own, removed afterwards).
func storeOverhead(jobs: Int, url: String?) async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qie-bench-ledger-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let store: any RunStore
    if let url {
        store = try await PostgresStore.open(url: try PostgresURL(url), scope: folder)
    } else {
        store = try Ledger(folder: folder)
    }
    let worker = WorkerIdentity.current
    let start = DispatchTime.now().uptimeNanoseconds
    for index in 0..<jobs {
        let job = try await store.register(
            LedgerJob(
                key: "key-\(index)", inputPath: "/photos/\(index).jpg", inputSHA256: String(repeating: "a", count: 64),
                inputSize: 1_000_000, inputModified: 1.0, copy: 0, endpoint: ProviderCatalog.defaultProfile.id,
                prompt: "make it night", options: "{}"))
        let id = job.id!
        _ = try await store.claim(id, worker: worker, lease: 60)
        try await store.record(.sending(estimate: Decimal(string: "0.0315"), carried: 0), job: id, worker: worker, limit: nil)
        try await store.record(.accepted(requestID: "run_\(index)", extraAttempts: 0), job: id, worker: worker, limit: nil)
        try await store.record(.completed(outputs: ["/out/\(index).png"], reportedCost: nil, polls: 0), job: id, worker: worker, limit: nil)
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    if let shared = store as? PostgresStore {
        try await shared.removeRun()
    }
    await store.close()
    print(
        String(
            format: "%@: %d jobs x 5 committed moves in %.2f s = %.3f ms per job", url == nil ? "sqlite" : "postgres", jobs,
            seconds, seconds / Double(jobs) * 1000))
}

switch CommandLine.arguments.dropFirst().first {
case "ledger":
    // qie-bench ledger [JOBS [postgres://...]]
    let arguments = Array(CommandLine.arguments.dropFirst(2))
    try await storeOverhead(jobs: Int(arguments.first ?? "") ?? 5000, url: arguments.dropFirst().first)
case "stream":
    try streamingMemory(inputMegabytes: Int(CommandLine.arguments.dropFirst(2).first ?? "") ?? 20)
case "stream-once":
    let arguments = Array(CommandLine.arguments.dropFirst(2))
    try await streamOnce(buffered: arguments.first == "buffered", inputMegabytes: Int(arguments.dropFirst().first ?? "") ?? 20)
case "finishing":
    // qie-bench finishing [ROUNDS | quick]
    let argument = CommandLine.arguments.dropFirst(2).first
    let rounds = argument == "quick" ? 3 : Int(argument ?? "") ?? 60
    try resamplingRatios(rounds: rounds)
    try await finishingSteps(rounds: rounds)
case "base64":
    try base64Throughput(quick: CommandLine.arguments.dropFirst(2).first == "quick")
default:
    try base64Throughput()
}
