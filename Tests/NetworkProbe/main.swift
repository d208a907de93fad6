// Runs edits whose results point at private addresses, inside a network
// namespace of its own (see Tests/QieClientTests/NetworkNamespaceTests.swift,
// which starts it under `unshare -n -m`): the endpoint (the emulator) is on
// 203.0.113.5, a public address, and a trap server that would hand out a
// valid result sits on 10.0.0.1, a private one. Both are on the namespace's
// own `lo`, so nothing leaves it. Prints one JSON object: per scenario, how
// the edit ended and who was connected to.
import Foundation
import NIOCore
import NIOPosix
import QieClient
import QieEmulator
import QieImaging
import QiePipeline
import QieProviders
import Synchronization

let publicHost = "203.0.113.5"
let privateHost = "10.0.0.1"

/// A server that answers every request with a JPEG and counts the
/// connections it accepted (a connection is counted before a byte is read).
final class CountingServer: Sendable {
    let channel: any Channel
    private let accepted: Tally

    /// A count several event loops add to.
    final class Tally: Sendable {
        let value = Mutex(0)
        func add() { value.withLock { $0 += 1 } }
    }

    var connections: Int { accepted.value.withLock { $0 } }
    var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel, accepted: Tally) {
        self.channel = channel
        self.accepted = accepted
    }

    static func start(host: String, port: Int, image: Data) async throws -> CountingServer {
        let accepted = Tally()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                accepted.add()
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Answer(image: image))
                }
            }
            .bind(host: host, port: port).get()
        return CountingServer(channel: channel, accepted: accepted)
    }

    func stop() async { try? await channel.close() }
}

/// Reads a request head and answers it with the image, then closes.
final class Answer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let image: Data
    var head = ""

    init(image: Data) { self.image = image }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        head += buffer.readString(length: buffer.readableBytes) ?? ""
        guard head.contains("\r\n\r\n") else { return }
        var out = context.channel.allocator.buffer(capacity: image.count + 128)
        out.writeString("HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: \(image.count)\r\nConnection: close\r\n\r\n")
        out.writeBytes(image)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// A resolver playing DNS: each name answers the next of its answers (the
/// last one again once they run out), and every question is recorded.
final class PlayedResolver: Sendable {
    private let answers: [String: [[String]]]
    private let asked = Mutex<[String]>([])

    init(_ answers: [String: [[String]]]) { self.answers = answers }

    var questions: [String] { asked.withLock { $0 } }

    var resolver: HostResolver {
        HostResolver { host in
            let count = self.asked.withLock { asked in
                asked.append(host)
                return asked.filter { $0 == host }.count
            }
            guard let list = self.answers[host], !list.isEmpty else { return nil }
            return list[min(count, list.count) - 1]
        }
    }
}

struct Scenario {
    var name: String
    var fault: (_ trapPort: Int) -> EmulatedFault
    var answers: [String: [[String]]] = [:]
}

let scenarios: [Scenario] = [
    // 012.0.0.1 is 12.0.0.1 read as decimal, 10.0.0.1 to the system's resolver (octal).
    Scenario(name: "ambiguous-literal", fault: { .resultAddress("http://012.0.0.1:\($0)/a.jpg") }),
    Scenario(name: "redirect-to-private", fault: { .redirectedResult(hops: 1, location: "http://\(privateHost):\($0)/a.jpg") }),
    Scenario(
        name: "name-resolving-private", fault: { .resultAddress("http://results.test:\($0)/a.jpg") },
        answers: ["results.test": [[privateHost]]]),
    Scenario(
        name: "name-resolving-public-and-private", fault: { .resultAddress("http://results.test:\($0)/a.jpg") },
        answers: ["results.test": [[publicHost, privateHost]]]),
    // Public to the check, private to anyone who asks again (as the system's
    // resolver does here: the namespace's hosts file says 10.0.0.1).
    Scenario(
        name: "rebinding", fault: { .resultAddress("http://results.test:\($0)/a.jpg") },
        answers: ["results.test": [[publicHost], [privateHost]]]),
]

func jpeg(_ width: Int, _ height: Int) throws -> Data {
    let pixels = [UInt8]((0..<(width * height)).flatMap { i in [UInt8(i % 256), 120, 30] })
    return try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .jpeg))
}

/// One scenario: an edit on the emulator (on the public address) whose
/// result the fault points elsewhere; what came of it.
func play(_ scenario: Scenario, image: Data) async throws -> [String: Any] {
    let trap = try await CountingServer.start(host: privateHost, port: 0, image: image)
    let results = try await CountingServer.start(host: publicHost, port: trap.port, image: image)
    let emulator = EditEmulator(apiKey: "test-key")
    let played = PlayedResolver(scenario.answers)
    var outcome: [String: Any] = ["scenario": scenario.name]
    await withTaskGroup(of: Void.self) { group in
        let (ready, announce) = AsyncStream<Int>.makeStream()
        group.addTask {
            defer { announce.finish() }
            try? await emulator.run(host: publicHost, port: 0) { announce.yield($0) }
        }
        var iterator = ready.makeAsyncIterator()
        guard let port = await iterator.next() else {
            outcome["error"] = "the emulator did not start on \(publicHost)"
            return
        }
        emulator.inject([scenario.fault(trap.port)])
        var options = EditOptions(endpoint: ProviderProfile.runpodQwenImageEdit2511.id)
        options.prompt = "make it night"
        options.flow = .synchronous
        options.baseURL = "http://\(publicHost):\(port)"
        options.allowInsecureHTTP = true
        let client = EditClient(retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.05, maxDelay: 0.2), resolver: played.resolver)
        do {
            let result = try await Editor.with(options, environment: ["RUNPOD_API_KEY": "test-key"], client: client) { editor in
                try await editor.edit(EditInput(image: .data(image)))
            }
            outcome["images"] = result.images.count
        } catch {
            outcome["error"] = "\(error)"
        }
        try? await client.shutdown()
        group.cancelAll()
    }
    outcome["trapConnections"] = trap.connections
    outcome["publicConnections"] = results.connections
    outcome["emulatorResultRequests"] = emulator.resultRequests
    outcome["resolverQuestions"] = played.questions
    await trap.stop()
    await results.stop()
    return outcome
}

let image = try jpeg(96, 64)
var report: [[String: Any]] = []
for scenario in scenarios {
    report.append(try await play(scenario, image: image))
}
let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
FileHandle.standardOutput.write(json + Data("\n".utf8))
