import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import QiePipeline
import Synchronization

/// A thrown `GatewayError` is answered by Hummingbird in OpenAI's shape:
/// `{"error": {...}}` with its status, `retry-after` and `x-should-retry`.
extension GatewayError: HTTPResponseError {
    /// The HTTP status, as Hummingbird takes it.
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    /// The error's answer.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        EditsService.response(self)
    }
}

/// Checks the gateway key of every request to the routes it guards, and
/// puts the key's id in the request's context (`keyID`) for the handler,
/// the log line and the request's record: `Authorization: Bearer KEY`, one
/// of the gateway's keys; without keys configured, only programs on this
/// machine (see `GatewayKeys.authenticate`). A refused request is answered
/// 401 or 403 before its handler runs, its body unread.
struct GatewayKeyMiddleware: RouterMiddleware {
    let keys: GatewayKeys

    func handle(
        _ request: Request, context: GatewayRequestContext, next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        let caller = keys.authenticate(request)
        context.requestLog?.update { $0.key = caller.keyID }
        if let failure = caller.failure { throw failure }
        var context = context
        context.keyID = caller.keyID
        return try await next(request, context)
    }
}

/// One log line (and record) per edits request, with an id: the request
/// gets its `x-request-id` and a `RequestLog` in its context, which the
/// handler fills in; the line is written when the answer is ready (a
/// streamed answer writes it when its stream ends), and a request that
/// fails, its key refused among them, is answered in OpenAI's shape with
/// its id and its line says how it ended.
struct RequestLogMiddleware: RouterMiddleware {
    let logger: Logger
    let recorder: RequestRecorder

    func handle(
        _ request: Request, context: GatewayRequestContext, next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        let requestID = "req_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        var line = RequestLog(requestID: requestID, arrived: recorder.clock.now())
        line.recorder = recorder
        let box = RequestLogBox(line)
        var context = context
        context.requestLog = box
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let failure = error as? GatewayError ?? GatewayError(status: 500, message: "\(error)", type: "server_error")
            box.update { line in
                line.streamed = false
                line.outcome = "\(failure.statusCode) \(failure.code ?? failure.type)"
            }
            response = EditsService.response(failure)
        }
        // A streamed answer writes its line when it ends.
        let ended = box.value
        if !ended.streamed { ended.end(to: logger) }
        response.headers[EditsService.requestIDHeader] = requestID
        return response
    }
}

/// A request's log line, shared by the middleware that writes it and the handler that fills it in.
final class RequestLogBox: Sendable {
    private let line: Mutex<RequestLog>

    init(_ line: RequestLog) { self.line = Mutex(line) }

    /// The line as it stands.
    var value: RequestLog {
        get { line.withLock { $0 } }
        set { line.withLock { $0 = newValue } }
    }

    /// Changes the line.
    func update(_ change: (inout RequestLog) -> Void) { line.withLock { change(&$0) } }
}

/// The gateway's keys, and how a request is checked against them.
struct GatewayKeys: Sendable {
    let keys: [GatewayKey]

    struct Authentication {
        var keyID: String
        var failure: GatewayError?
    }

    /// The client's key id, or why it is refused. Without keys configured the
    /// gateway listens on loopback only and takes any (or no) key.
    func authenticate(_ request: Request) -> Authentication {
        guard !keys.isEmpty else {
            // Without keys only this machine's own programs are served. A web
            // page open in a browser here is not one of them: its cross-site
            // POST (a multipart form needs no preflight) says where it comes
            // from in Origin, and a name rebound to 127.0.0.1 arrives as the Host.
            if let origin = request.headers[.origin], !Self.isLocal(origin: origin) {
                return Authentication(keyID: "-", failure: .notLocal("a web page at \(origin)"))
            }
            if let authority = request.head.authority, !NetworkAddress.isLoopback(host: Self.hostName(authority)) {
                return Authentication(keyID: "-", failure: .notLocal("the name \(authority)"))
            }
            return Authentication(keyID: "local")
        }
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            return Authentication(
                keyID: "-",
                failure: .unauthorized("no gateway key: send Authorization: Bearer KEY with one of the keys qie serve was started with"))
        }
        let given = Data(header.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces).utf8)
        let givenHash = Data(SHA256.hash(data: given))
        // Hashes compared in constant time: the key's length and content do not show in timing.
        for key in keys {
            let expected = Data(SHA256.hash(data: Data(key.secret.utf8)))
            var difference: UInt8 = 0
            for (a, b) in zip(givenHash, expected) { difference |= a ^ b }
            if difference == 0 { return Authentication(keyID: key.id) }
        }
        return Authentication(keyID: "-", failure: .unauthorized("the gateway key is not one of this gateway's keys"))
    }

    /// Whether an `Origin` is a page served from this machine.
    static func isLocal(origin: String) -> Bool {
        guard let host = URLComponents(string: origin)?.host, !host.isEmpty else { return false }
        return NetworkAddress.isLoopback(host: host)
    }

    /// The host of a `Host` header (`name`, `name:port`, `[v6]:port`).
    static func hostName(_ authority: String) -> String {
        if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") {
            return String(authority[...end])
        }
        let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 2 ? String(parts[0]) : authority
    }
}
