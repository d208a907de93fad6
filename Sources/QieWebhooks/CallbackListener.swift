import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOFoundationCompat
import QieClient
import QieProviders
import Synchronization

/// Checks a callback's signature header: a hex HMAC-SHA256 of the raw body
/// with the signing secret, given bare, as `sha256=HEX`, or as
/// `t=UNIX,v1=HEX` signed over `"UNIX.BODY"`. Every form must be recent, as
/// a replayed delivery is not: the `t=` time, or for the bare forms the
/// signed body's own `timestampField` (ISO 8601), within `tolerance`
/// seconds of now. Comparison is constant-time.
public struct CallbackSignature: Sendable {
    /// The account's signing secret.
    public var secret: String
    /// How far the signed time may be from now, in seconds.
    public var tolerance: Double
    /// The body's field holding when it was sent, for the forms without `t=`
    /// (Runflow's payload: `completed_at`).
    public var timestampField: String

    /// A check with `secret`, accepting signed times within `tolerance` seconds.
    public init(secret: String, tolerance: Double = 300, timestampField: String = "completed_at") {
        self.secret = secret
        self.tolerance = tolerance
        self.timestampField = timestampField
    }

    /// Whether `header` is a valid, recent signature of `body` (false when the header is missing).
    public func isValid(_ header: String?, body: Data, now: Date = Date()) -> Bool {
        verify(header, body: body, now: now) != nil
    }

    /// What a valid, recent signature vouches for: when the delivery was
    /// signed and a digest of its body; nil when `header` is missing, wrong
    /// or stale. Two deliveries with the same `replayKey` are one delivery
    /// however their headers are spelled (`sha256=` or not, hex in either
    /// case, extra candidates, spaces), so a replay is judged by this.
    public func verify(_ header: String?, body: Data, now: Date = Date()) -> SignedDelivery? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
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
            else { return nil }
            let signed = Data((timestamp + ".").utf8) + body
            guard signatures.contains(where: { Self.matches($0, signed, key) }) else { return nil }
            return SignedDelivery(signedAt: Date(timeIntervalSince1970: seconds), body: body)
        }
        let hex = header.hasPrefix("sha256=") ? String(header.dropFirst(7)) : header
        guard Self.matches(hex, body, key) else { return nil }
        // Signed, but when? The body says, and the signature covers it.
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let text = object[timestampField] as? String, let sent = Self.date(text),
            abs(now.timeIntervalSince(sent)) <= tolerance
        else { return nil }
        return SignedDelivery(signedAt: sent, body: body)
    }

    private static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
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

/// What a verified callback signature vouches for: the time it was signed
/// at and the SHA-256 of the body it covers.
public struct SignedDelivery: Sendable, Hashable {
    /// When the delivery was signed (the `t=` time, or the body's own time for the bare forms).
    public var signedAt: Date
    /// The SHA-256 of the signed body, in hex.
    public var bodyDigest: String

    /// The delivery of `body` signed at `signedAt`.
    public init(signedAt: Date, body: Data) {
        self.signedAt = signedAt
        bodyDigest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
    }

    /// The same for every spelling of the same signed delivery: its time and body digest.
    public var replayKey: String { "\(signedAt.timeIntervalSince1970):\(bodyDigest)" }
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
    /// Largest delivery read, in bytes; larger ones are refused (413) from
    /// their length, before any verification.
    public static let maxBodyBytes = 1 << 20
    /// Deliveries handled at once; more are refused (503) unread.
    public static let maxConcurrent = 32
    private let inFlight = Mutex(0)
    /// Deliveries already accepted (by `SignedDelivery.replayKey`: what was
    /// signed, not how the header spelled it), with when: a replay is
    /// acknowledged and ignored.
    private let seen = Mutex<[String: Date]>([:])

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
        // Caps first: nothing unverified may hold the listener's memory or time.
        let admitted = inFlight.withLock { count in
            guard count < Self.maxConcurrent else { return false }
            count += 1
            return true
        }
        guard admitted else { return Self.refusal(.serviceUnavailable, "busy") }
        defer { inFlight.withLock { $0 -= 1 } }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > Self.maxBodyBytes {
            return Self.refusal(.contentTooLarge, "too large")
        }
        let body: Data
        do {
            body = Data(buffer: try await request.body.collect(upTo: Self.maxBodyBytes))
        } catch {
            return Self.refusal(.contentTooLarge, "too large")
        }
        var trusted = false
        if let signature {
            let header = request.headers[HTTPField.Name(spec.signatureHeader)!]
            let now = Date()
            guard let delivery = signature.verify(header, body: body, now: now) else {
                return Self.refusal(.unauthorized, "bad signature")
            }
            // A delivery seen before (a replay, however its signature is
            // spelled, or a retry after a lost acknowledgement) is
            // acknowledged and not acted on again.
            let fresh = seen.withLock { seen in
                seen = seen.filter { now.timeIntervalSince($0.value) <= 2 * signature.tolerance }
                return seen.updateValue(now, forKey: delivery.replayKey) == nil
            }
            guard fresh else { return Response(status: .ok) }
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

    private static func refusal(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
