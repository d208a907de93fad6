import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOFoundationCompat
import QieClient
import QieProviders
import Synchronization

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
    private let signature: (any CallbackVerifier)?
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
    /// The check against the host's published keys, with when they were
    /// fetched, where signatures are checked against such keys.
    private let keyed = Mutex<(fetched: Date, check: any CallbackVerifier)?>(nil)

    /// A listener on `host`:`port` that posts each delivery to `signals`,
    /// checking signatures when `signingSecret` is set and not empty (or the
    /// endpoint's callback has a `defaultSecret`).
    public init(
        profile: ProviderProfile, host: String = "127.0.0.1", port: Int, signingSecret: String?, signals: JobSignals
    ) {
        self.profile = profile
        self.host = host
        self.port = port
        self.signature = (signingSecret.flatMap { $0.isEmpty ? nil : $0 } ?? profile.callback?.defaultSecret)
            .flatMap { profile.host.callbackVerifier(secret: $0) }
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
        if let unkeyed = signature {
            let now = Date()
            // Unavailable keys: the sender is asked to deliver again later.
            guard let signature = await check(unkeyed, now: now) else { return Self.refusal(.serviceUnavailable, "signing keys unavailable") }
            let headers = request.headers
            guard let delivery = signature.verify(header: { HTTPField.Name($0).flatMap { headers[$0] } }, body: body, now: now) else {
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

    /// `signature`, or where it checks against keys its host publishes, the
    /// check with those keys: fetched once and kept for `keySetLifetime`
    /// seconds; nil when they cannot be had.
    private func check(_ signature: any CallbackVerifier, now: Date) async -> (any CallbackVerifier)? {
        guard let url = signature.keySetURL else { return signature }
        if let kept = keyed.withLock({ $0 }), now.timeIntervalSince(kept.fetched) < signature.keySetLifetime { return kept.check }
        guard let document = try? await PublishedDocument.fetch(url), let check = signature.verifying(withKeySet: document) else {
            return nil
        }
        keyed.withLock { $0 = (now, check) }
        return check
    }

    private static func refusal(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
