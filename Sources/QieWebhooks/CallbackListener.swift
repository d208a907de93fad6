import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOFoundationCompat
import QieClient
import QieProviders

/// Checks a callback's signature header: a hex HMAC-SHA256 of the raw body
/// with the signing secret, given bare, as `sha256=HEX`, or as
/// `t=UNIX,v1=HEX` signed over `"UNIX.BODY"` (then the time must be within
/// `tolerance` seconds of now, against replays). Comparison is constant-time.
public struct CallbackSignature: Sendable {
    /// The account's signing secret.
    public var secret: String
    /// How far a `t=` timestamp may be from now, in seconds.
    public var tolerance: Double

    /// A check with `secret`, accepting timestamps within `tolerance` seconds.
    public init(secret: String, tolerance: Double = 300) {
        self.secret = secret
        self.tolerance = tolerance
    }

    /// Whether `header` is a valid signature of `body` (false when the header is missing).
    public func isValid(_ header: String?, body: Data, now: Date = Date()) -> Bool {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return false }
        let key = SymmetricKey(data: Data(secret.utf8))
        if header.contains("v1=") {
            var timestamp: String? = nil
            var signatures: [String] = []
            for item in header.split(separator: ",") {
                let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2 else { continue }
                if pair[0] == "t" { timestamp = pair[1] }
                if pair[0] == "v1" { signatures.append(pair[1]) }
            }
            guard let timestamp, let seconds = Double(timestamp), abs(now.timeIntervalSince1970 - seconds) <= tolerance
            else { return false }
            let signed = Data((timestamp + ".").utf8) + body
            return signatures.contains { Self.matches($0, signed, key) }
        }
        let hex = header.hasPrefix("sha256=") ? String(header.dropFirst(7)) : header
        return Self.matches(hex, body, key)
    }

    /// The `t=UNIX,v1=HEX` header for `body` (what a sender would write).
    public func header(for body: Data, at time: Date = Date()) -> String {
        let timestamp = String(Int(time.timeIntervalSince1970))
        let code = HMAC<SHA256>.authenticationCode(
            for: Data((timestamp + ".").utf8) + body, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + Data(code).map { String(format: "%02x", $0) }.joined()
    }

    private static func matches(_ hex: String, _ data: Data, _ key: SymmetricKey) -> Bool {
        guard let code = Self.bytes(fromHex: hex) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: data, using: key)
    }

    private static func bytes(fromHex hex: String) -> Data? {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes = Data(capacity: 32)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A local HTTP listener for an endpoint's callbacks (webhooks). Each
/// delivery is acknowledged at once and posted to `signals` under its job id.
/// With a signing secret, an unsigned or wrongly signed delivery is refused
/// (401) and ignored; a verified one carries its payload, so the waiting job
/// needs no poll. Without a secret, a delivery only wakes the job, which then
/// polls the endpoint for its result (an unverified body is never trusted).
public final class CallbackListener: Sendable {
    /// The endpoint whose callbacks are received.
    public let profile: ProviderProfile
    /// The address listened on.
    public let host: String
    /// The port asked for; 0 lets the system choose (see `run(onRunning:)`).
    public let port: Int
    private let signature: CallbackSignature?
    private let signals: JobSignals

    /// A listener on `host`:`port` that posts each delivery to `signals`,
    /// checking signatures when `signingSecret` is set and not empty.
    public init(
        profile: ProviderProfile, host: String = "127.0.0.1", port: Int, signingSecret: String?, signals: JobSignals
    ) {
        self.profile = profile
        self.host = host
        self.port = port
        self.signature = signingSecret.flatMap { $0.isEmpty ? nil : CallbackSignature(secret: $0) }
        self.signals = signals
    }

    /// Serves until the task is cancelled; `onRunning` gets the bound port.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router()
        router.post("**") { [self] request, _ in try await self.receive(request) }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "qie-callbacks"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? self.port) },
            logger: Logger(label: "qie-callbacks", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await app.run()
    }

    private func receive(_ request: Request) async throws -> Response {
        guard let spec = profile.callback else { return Response(status: .notFound) }
        let body = Data(buffer: try await request.body.collect(upTo: 16 * 1024 * 1024))
        var trusted = false
        if let signature {
            let header = request.headers[HTTPField.Name(spec.signatureHeader)!]
            guard signature.isValid(header, body: body) else {
                return Response(status: .unauthorized, body: .init(byteBuffer: ByteBuffer(string: "bad signature")))
            }
            trusted = true
        }
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let id = object[spec.idField] as? String, !id.isEmpty
        else {
            return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "no \(spec.idField)")))
        }
        signals.post(id, JobSignal(payload: trusted ? body : nil))
        return Response(status: .ok)
    }
}
