import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import QieClient
import QieProviders
import Synchronization

/// Peak resident memory of this process, in bytes (`VmHWM`).
func peakResidentBytes() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
}

/// Resets the peak to the current resident size (Linux `clear_refs`).
func resetPeakResident() {
    try? Data("5".utf8).write(to: URL(fileURLWithPath: "/proc/self/clear_refs"))
}

/// RSS growth while sending one request with three large inputs, as
/// the client sends it now (streamed from disk, data URIs encoded on the fly)
/// and as a body collected in memory first (how qie sent it before), each in
/// a fresh process, side by side.
func streamingMemory(inputMegabytes: Int) throws {
    print("RSS growth sending one request with three \(inputMegabytes) MB inputs as data URIs (peak resident, fresh process each)")
    print("      mode          growth   x one input")
    for mode in ["buffered", "streamed"] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["stream-once", mode, String(inputMegabytes)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let growth = Double(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            print("  \(mode): failed (\(output))")
            continue
        }
        let one = Double(inputMegabytes * 1_048_576)
        print(String(format: "  %-10@ %9.1f MB %9.2fx", mode, growth / 1_048_576, growth / one))
    }
}

/// One measurement: prints the peak RSS growth in bytes.
func streamOnce(buffered: Bool, inputMegabytes: Int) async throws {
    // An endpoint that takes three inputs as data URIs in JSON.
    let profile = ProviderCatalog.all.first { $0.images.maxCount >= 3 && $0.images.inline == .dataURI && $0.envelope != .multipart }!
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qie-bench-stream-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var generator = SystemRandomNumberGenerator()
    let megabyte = Data((0..<1_048_576).map { _ in UInt8.random(in: 0...255, using: &generator) })
    var images: [PayloadImage] = []
    for index in 0..<3 {
        let path = folder + "/\(index).png"
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        for _ in 0..<inputMegabytes { try handle.write(contentsOf: megabyte) }
        try handle.close()
        images.append(.file(path: path, format: .png))
    }

    // A local endpoint that reads each body as it arrives and keeps nothing.
    let router = Router()
    let received = ReceivedBytes()
    router.post(RouterPath(profile.routes.submit)) { request, _ -> Response in
        var count = 0
        for try await chunk in request.body { count += chunk.readableBytes }
        received.add(count)
        let answer = #"{"id":"sync-1","status":"COMPLETED","output":{"image_url":"http://127.0.0.1:1/result.png","cost":0.02}}"#
        return Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
    }
    let (ports, port) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { port.yield($0.localAddress?.port ?? 0) },
        logger: Logger(label: "sink", factory: { _ in SwiftLogNoOpLogHandler() }))
    let server = Task { try await app.runService() }
    var iterator = ports.makeAsyncIterator()
    let bound = await iterator.next() ?? 0
    let base = "http://127.0.0.1:\(bound)"

    let plan = try SizePlanner.plan(input: PixelSize(width: 1024, height: 1024), for: profile)
    let built = try RequestBuilder.build(
        EditRequest(prompt: "make it night", images: images), plan: plan, for: profile, apiKey: "bench", baseURL: base)
    let expected = try built.body.contentLength()
    let client = EditClient()
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    // Both clients and the server are warm before the peak is reset.
    _ = try? await client.send(
        try RequestBuilder.build(EditRequest(prompt: "warm", images: [.bytes(Data([1]), format: .png, filename: "w.png")]), plan: plan, for: profile, apiKey: "bench", baseURL: base), to: profile)
    resetPeakResident()
    let before = peakResidentBytes()
    if buffered {
        // Before streaming: the whole body collected in memory, then sent.
        let body = try built.body.data()
        var request = HTTPClientRequest(url: built.url)
        request.method = .POST
        for (name, value) in built.headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(data: body))
        _ = try await http.execute(request, timeout: .seconds(120)).body.collect(upTo: 1 << 20)
    } else {
        _ = try await client.send(built, to: profile)
    }
    let growth = peakResidentBytes() - before
    try await http.shutdown()
    try await client.shutdown()
    server.cancel()
    guard received.total >= expected else {
        throw BenchError("the endpoint received \(received.total) of \(expected) bytes")
    }
    print(growth)
}

/// Bytes the local endpoint read, over all requests.
final class ReceivedBytes: Sendable {
    private let count = Mutex(0)
    func add(_ bytes: Int) { count.withLock { $0 += bytes } }
    var total: Int { count.withLock { $0 } }
}

/// A benchmark that could not measure what it set out to.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
