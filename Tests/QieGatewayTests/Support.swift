import Foundation
import HummingbirdTesting
import Logging
import NIOCore
import QieEmulator
import QieGateway
import QiePipeline
import QieTestSupport
import Synchronization
import Testing

extension Multipart {
    /// The whole body as the test client sends it.
    var body: ByteBuffer { ByteBuffer(data: bytes) }
}

/// A JPEG of `width` x `height` with a gradient.
func photo(_ width: Int, _ height: Int) throws -> Data {
    var pixels: [UInt8] = []
    pixels.reserveCapacity(width * height * 3)
    for y in 0..<height {
        for x in 0..<width { pixels += [UInt8(x * 255 / width), UInt8(y * 255 / height), 90] }
    }
    return try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .jpeg, quality: 90))
}

/// The emulator's key: the one endpoint key, which must never reach a client.
let endpointKey = "endpoint-secret-\(UUID().uuidString.prefix(8))"

/// Runs an emulator on a free port and `body` with an environment that points every endpoint at it.
func withEmulator(
    latency: Duration = .zero, effect: EmulatedEffect = .none, _ body: (EditEmulator, [String: String]) async throws -> Void
) async throws {
    let emulator = EditEmulator(apiKey: endpointKey, latency: latency, effect: effect)
    let (ports, sink) = AsyncStream.makeStream(of: Int.self)
    let server = Task { try await emulator.run(port: 0) { sink.yield($0) } }
    // The server ends with the test, on every path: stopped, and waited for.
    func stop() async {
        server.cancel()
        _ = await server.result
    }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        await stop()
        Issue.record("the emulator did not start")
        return
    }
    var environment: [String: String] = [:]
    for profile in ProviderCatalog.all {
        environment[profile.auth.keyVariable] = endpointKey
        environment[profile.baseURLVariable] = "http://127.0.0.1:\(port)"
    }
    do {
        try await body(emulator, environment)
        await stop()
    } catch {
        await stop()
        throw error
    }
}

/// Where a gateway under test keeps its state: the SQLite file in its
/// folder, or a new database on the tests' PostgreSQL server.
enum StateKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// A configuration with its state in `folder` (SQLite) or a new database.
    func configuration(folder: String) throws -> GatewayConfiguration {
        var configuration = GatewayConfiguration(stateDirectory: folder)
        if self == .postgres { configuration.stateURL = try PostgresServer.newDatabase() }
        return configuration
    }
}

/// A new, empty state folder.
func stateFolder() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("qie-gateway-\(UUID().uuidString)").path
}

/// The JSON object of a response body.
func object(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]) ?? [:]
}

/// The `error` object of an OpenAI-style error body.
func errorObject(_ response: TestResponse) -> [String: Any] {
    object(response)["error"] as? [String: Any] ?? [:]
}

/// Decoded images of a response's `data[].b64_json`.
func images(_ response: TestResponse) throws -> [ImageInfo] {
    let data = object(response)["data"] as? [[String: Any]] ?? []
    return try data.map { item in
        guard let text = item["b64_json"] as? String, let bytes = Data(base64Encoded: text) else {
            throw GatewayTestError.noImage
        }
        return try ImageProbe.probe(data: bytes)
    }
}

enum GatewayTestError: Error { case noImage }

/// Log lines a gateway wrote, kept for a test to read: each as its message
/// and metadata, `key=value` sorted.
final class CapturedLog: Sendable {
    private struct State {
        var lines: [String] = []
        var waiters: [(matches: @Sendable (String) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())
    /// The lowest level kept (`.debug` to see a request's steps as they happen).
    let level: Logger.Level

    init(level: Logger.Level = .info) { self.level = level }

    var all: [String] { state.withLock { $0.lines } }

    /// A logger writing here.
    var logger: Logger {
        let level = self.level
        return Logger(label: "qie-serve") { _ in
            var handler = Handler(log: self)
            handler.logLevel = level
            return handler
        }
    }

    /// Returns once a line holding `text` was written (an event, not a time).
    func wait(for text: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let found = state.withLock { state -> Bool in
                if state.lines.contains(where: { $0.contains(text) }) { return true }
                state.waiters.append(({ $0.contains(text) }, continuation))
                return false
            }
            if found { continuation.resume() }
        }
    }

    fileprivate func append(_ line: String) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.lines.append(line)
            let due = state.waiters.filter { $0.matches(line) }.map(\.continuation)
            state.waiters.removeAll { $0.matches(line) }
            return due
        }
        for waiter in woken { waiter.resume() }
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = (metadata.merging(event.metadata ?? [:]) { $1 }).map { "\($0.key)=\($0.value)" }.sorted()
            log.append(([event.message.description] + fields).joined(separator: " "))
        }
    }
}
