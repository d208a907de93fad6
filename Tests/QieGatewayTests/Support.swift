import Foundation
import HummingbirdTesting
import NIOCore
import QieEmulator
import QieGateway
import QiePipeline
import Testing

/// A multipart/form-data body, as the OpenAI SDK builds one.
struct Multipart {
    let boundary = "qie-test-\(UUID().uuidString)"
    private(set) var data = Data()

    mutating func field(_ name: String, _ value: String) {
        data.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8))
    }

    mutating func file(_ name: String, _ bytes: Data, filename: String = "image.png", type: String = "application/octet-stream") {
        data.append(
            Data(
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: \(type)\r\n\r\n"
                    .utf8))
        data.append(bytes)
        data.append(Data("\r\n".utf8))
    }

    var body: ByteBuffer {
        var all = data
        all.append(Data("--\(boundary)--\r\n".utf8))
        return ByteBuffer(data: all)
    }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }
}

/// A form built by `build`.
func multipart(_ build: (inout Multipart) -> Void) -> Multipart {
    var form = Multipart()
    build(&form)
    return form
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
    defer { server.cancel() }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        Issue.record("the emulator did not start")
        return
    }
    var environment: [String: String] = [:]
    for profile in ProviderCatalog.all {
        environment[profile.auth.keyVariable] = endpointKey
        environment[profile.baseURLVariable] = "http://127.0.0.1:\(port)"
    }
    try await body(emulator, environment)
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
