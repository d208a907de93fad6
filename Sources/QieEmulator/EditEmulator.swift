import Foundation
import Hummingbird
import NIOFoundationCompat
import QieImaging
import QieProviders
import Synchronization

/// A failure the emulator plays instead of answering the next submission.
public enum EmulatedFault: Sendable, Equatable {
    /// An HTTP error status with the endpoint's error shape.
    case status(Int)
    /// 429 with a `Retry-After` of this many seconds.
    case tooManyRequests(retryAfter: Int)
    /// HTTP 200 with a body that is not valid JSON.
    case malformedJSON
    /// A 502 HTML page, as a proxy in front of the endpoint would send.
    case htmlErrorPage
    /// A success whose result URL answers 404 (expired).
    case expiredResult
}

/// A local server that speaks the synchronous documented wire formats
/// (RunPod `runsync`, Oxen's edit, Lumenfall's multipart edit) strictly: it
/// rejects what the real endpoint would (wrong or missing bearer token,
/// unknown field, wrong enum, unsupported size, too many images, wrong
/// content type) and answers with a real image made from the input at the
/// size the endpoint would produce.
public final class EditEmulator: Sendable {
    /// The bearer token every emulated endpoint accepts.
    public let apiKey: String
    /// Added before every answer.
    public let latency: Duration

    private struct State {
        var files: [String: (Data, String)] = [:]
        var submissions: [String: Int] = [:]
        var faults: [EmulatedFault] = []
        var received: [String: [Data]] = [:]
        var port = 0
    }

    private let state = Mutex(State())

    public init(apiKey: String = "emulator-key", latency: Duration = .zero) {
        self.apiKey = apiKey
        self.latency = latency
    }

    /// Queues faults, played one per submission before normal answers resume.
    public func inject(_ faults: [EmulatedFault]) { state.withLock { $0.faults += faults } }

    /// Submissions received for an endpoint, faults and rejections included.
    public func submissions(to profile: ProviderProfile) -> Int { state.withLock { $0.submissions[profile.id] ?? 0 } }

    /// Request bodies received for an endpoint, in order.
    public func bodies(sentTo profile: ProviderProfile) -> [Data] { state.withLock { $0.received[profile.id] ?? [] } }

    /// The endpoints emulated: those with a synchronous flow.
    public static var profiles: [ProviderProfile] { ProviderCatalog.all.filter { $0.flow.contains(.synchronous) } }

    /// Serves on 127.0.0.1:`port` (0 picks a free port) until the task is cancelled.
    public func run(port: Int = 0, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "qie-emulator"),
            onServerRunning: { [self] channel in
                let bound = channel.localAddress?.port ?? port
                self.state.withLock { $0.port = bound }
                await onRunning(bound)
            })
        try await app.run()
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        for profile in Self.profiles {
            router.post(RouterPath(profile.routes.submit)) { [self] request, _ in
                try await self.submit(request, profile: profile)
            }
        }
        router.get("/files/:name") { [self] _, context in
            let name = context.parameters.get("name") ?? ""
            guard let (data, type) = self.state.withLock({ $0.files[name] }) else {
                return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: "expired or unknown file")))
            }
            return Response(
                status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(data: data)))
        }
        return router
    }

    private func submit(_ request: Request, profile: ProviderProfile) async throws -> Response {
        let began = ContinuousClock.now
        let body = try await request.body.collect(upTo: 64 * 1024 * 1024)
        let data = Data(buffer: body)
        let fault = state.withLock { state -> EmulatedFault? in
            state.submissions[profile.id, default: 0] += 1
            state.received[profile.id, default: []].append(data)
            return state.faults.isEmpty ? nil : state.faults.removeFirst()
        }
        if let fault, let response = play(fault, profile: profile) {
            try await Task.sleep(until: began + latency)
            return response
        }

        guard request.headers[.authorization] == "Bearer \(apiKey)" else {
            try await Task.sleep(until: began + latency)
            return errorResponse(profile, status: .unauthorized, "Unauthorized: missing or invalid bearer token")
        }
        do {
            let edit = try EmulatedRequest.parse(data, contentType: request.headers[.contentType] ?? "", profile: profile)
            let port = state.withLock { $0.port }
            // The images are made off the server's threads, within the latency
            // (a real endpoint's time includes its work).
            let outputs = try await Self.render(edit)
            try await Task.sleep(until: began + latency)
            var urls: [String] = []
            var inline: [Data] = []
            for output in outputs {
                if edit.returnsBase64 {
                    inline.append(output.data)
                } else {
                    let name = UUID().uuidString.lowercased() + "." + output.format.fileExtension
                    let expired = fault == .expiredResult
                    if !expired { state.withLock { $0.files[name] = (output.data, output.format.mimeType) } }
                    urls.append("http://127.0.0.1:\(port)/files/\(name)")
                }
            }
            return success(profile, urls: urls, inline: inline, edit: edit)
        } catch let error as EmulatorRejection {
            try await Task.sleep(until: began + latency)
            return errorResponse(profile, status: error.status, error.message, param: error.param)
        }
    }

    private static func render(_ edit: EmulatedRequest) async throws -> [PreparedImage] {
        try await ImagingRuntime.offload { try (0..<edit.count).map { _ in try edit.render() } }
    }

    private func play(_ fault: EmulatedFault, profile: ProviderProfile) -> Response? {
        switch fault {
        case .status(let code):
            return errorResponse(profile, status: HTTPResponse.Status(code: code), "emulated failure (HTTP \(code))")
        case .tooManyRequests(let seconds):
            var response = errorResponse(profile, status: .tooManyRequests, "rate limited")
            response.headers[.retryAfter] = String(seconds)
            return response
        case .malformedJSON:
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"id\": \"sync-1\", \"status\": ")))
        case .htmlErrorPage:
            return Response(
                status: .badGateway, headers: [.contentType: "text/html"],
                body: .init(byteBuffer: ByteBuffer(string: "<html><body><h1>502 Bad Gateway</h1></body></html>")))
        case .expiredResult:
            return nil
        }
    }

    private func success(_ profile: ProviderProfile, urls: [String], inline: [Data], edit: EmulatedRequest) -> Response {
        let object: [String: Any]
        switch profile.result {
        case .url(let path) where path == ["output", "image_url"]:
            let cost = CostEstimator.estimate(profile, outputSize: edit.outputSize).total ?? 0
            object = [
                "id": "sync-" + UUID().uuidString.lowercased(), "status": "COMPLETED", "delayTime": 0,
                "executionTime": 1, "output": ["image_url": urls.first ?? "", "cost": NSDecimalNumber(decimal: cost)],
            ]
        case .openAIData:
            let data: [[String: Any]] =
                edit.returnsBase64
                ? inline.map { ["b64_json": $0.base64EncodedString(), "revised_prompt": edit.prompt] }
                : urls.map { ["url": $0, "revised_prompt": edit.prompt] }
            object = ["created": Int(Date().timeIntervalSince1970), "data": data]
        default:
            object = ["generation_id": "gen_" + UUID().uuidString.lowercased(), "status": "succeeded", "result_url": urls.first ?? ""]
        }
        return json(object, status: .ok)
    }

    private func errorResponse(
        _ profile: ProviderProfile, status: HTTPResponse.Status, _ message: String, param: String? = nil
    ) -> Response {
        switch profile.envelope {
        case .inputObject:
            return json(["id": "sync-" + UUID().uuidString.lowercased(), "status": "FAILED", "error": message], status: status)
        case .multipart:
            var error: [String: Any] = ["message": message, "type": "invalid_request_error"]
            if let param { error["param"] = param }
            return json(["error": error], status: status)
        case .flatJSON:
            return json(["error": message], status: status)
        }
    }

    private func json(_ object: [String: Any], status: HTTPResponse.Status) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}
