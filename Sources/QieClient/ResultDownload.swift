import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import QieFiles
import QieProviders

/// What an endpoint's result must pass before its bytes are accepted: where
/// it may be fetched from, how large it may be, and how long its download may
/// take. Result addresses come from the endpoint's answer, so they are
/// treated as untrusted: only `http`/`https`, no user name or password, no
/// IPv4 address spelled other than as four decimal numbers, and (unless
/// `allowPrivateAddresses`) only hosts whose every address is on the public
/// internet, checked before connecting and again for every redirect; a
/// name's connection goes to an address its check saw (`ResultTarget`).
public struct ResultChecks: Sendable, Equatable {
    /// Largest result accepted, in bytes.
    public var maxBytes: Int
    /// Longest one download may take from connecting to its last byte, in
    /// seconds of the client's clock, redirects and retries included: a
    /// result that trickles in is cut off, not only one that stalls.
    public var deadline: Double
    /// Fetch results from loopback, private and link-local addresses too
    /// (on when the endpoint itself is on such an address, like a local emulator).
    public var allowPrivateAddresses: Bool
    /// Redirects followed, each hop checked like the first address.
    public var maxRedirects: Int
    /// The endpoint's base URL: when it is itself on a loopback, private or
    /// link-local address (a local emulator, a proxy on the user's network),
    /// its results may be too.
    public var endpoint: String?
    /// What is fetched: an endpoint's result, or an input image given as a
    /// URL (`EditClient.fetchImage`), which messages and hints name as such.
    public var subject = Subject.result

    /// What a download fetches.
    public enum Subject: Sendable, Equatable {
        /// An endpoint's result.
        case result
        /// An input image given as a URL.
        case input
    }

    /// The thing fetched, as messages name it.
    var noun: String { subject == .result ? "result" : "image" }

    /// The formats results from `profile` may be in: JPEG, PNG, WebP, and any
    /// other its output format field offers; a result in any other (TIFF,
    /// HEIC) is refused before decoding.
    public static func formats(of profile: ProviderProfile) -> Set<ImageFormat> {
        Set([.jpeg, .png, .webp] + profile.outputFormat.formats.compactMap { ImageFormat(rawValue: $0.rawValue) })
    }

    /// Checks with a `maxBytes` cap (64 MiB), a `deadline` per download
    /// (120 s), public addresses only (unless the `endpoint`'s base URL is
    /// private), and at most `maxRedirects` (5) redirects.
    public init(
        maxBytes: Int = 64 << 20, deadline: Double = 120, allowPrivateAddresses: Bool = false, maxRedirects: Int = 5,
        endpoint: String? = nil
    ) {
        self.maxBytes = maxBytes
        self.deadline = deadline
        self.allowPrivateAddresses = allowPrivateAddresses
        self.maxRedirects = maxRedirects
        self.endpoint = endpoint
    }

    /// Refuses a result address qie must not connect to, and says where it
    /// may connect for it: a scheme other than `http`/`https` (a unix
    /// socket, a file), a user name or password, an IPv4 address spelled
    /// other than as four decimal numbers (`012.0.0.1`, `127.1`,
    /// `0x7f000001`: see `NetworkAddress.isAmbiguousIPv4`), and, unless
    /// `allowPrivateAddresses`, a host with any loopback, private,
    /// link-local or special address. A name is resolved once, with
    /// `resolver`, and every address it gave is checked; the target returned
    /// names those addresses, and the download connects to them and to no
    /// other (see `ResultTarget`). Blocking when a name must be resolved.
    @discardableResult
    public func check(_ address: String, endpoint: String, resolver: HostResolver = .system) throws(ClientError)
        -> ResultTarget
    {
        func refuse(_ why: String, hint: Phrase? = nil) -> ClientError {
            ClientError(
                kind: .badResponse, message: "\(endpoint): the \(noun) address \(Self.shown(address)) is refused: \(why)",
                endpoint: endpoint, hint: hint)
        }
        guard let url = URL(string: address), let scheme = url.scheme?.lowercased() else {
            throw refuse("it is not a URL")
        }
        guard scheme == "http" || scheme == "https" else { throw refuse("\(noun)s are fetched over http or https only, not \(scheme)") }
        guard url.user == nil && url.password == nil else { throw refuse("it carries a user name or password") }
        // The host exactly as the HTTP client reads it (brackets trimmed).
        guard let given = url.host, !given.isEmpty else { throw refuse("it names no host") }
        let host = given.hasPrefix("[") && given.hasSuffix("]") ? String(given.dropFirst().dropLast()) : given
        let named = Sanitized.text(host, limit: 200)
        if NetworkAddress.isAmbiguousIPv4(host) {
            throw refuse("\(named) is an ambiguous IPv4 address; write it as four decimal numbers")
        }
        if allowPrivateAddresses { return ResultTarget(url: address, host: host, addresses: []) }
        // The endpoint's own address is looked up only when a result is not public.
        var endpointPrivate: Bool? = nil
        func allowed() -> Bool {
            if endpointPrivate == nil { endpointPrivate = self.endpoint.map { Self.endpointIsPrivate($0, resolver: resolver) } ?? false }
            return endpointPrivate ?? false
        }
        let hint: Phrase =
            subject == .result
            ? "\(setting: .allowPrivateResults) fetches it anyway, if you trust the endpoint"
            : "\(setting: .allowPrivateInputs) fetches it anyway, if you trust the address"
        let literal = NetworkAddress.scope(of: host) != nil
        if !literal && NetworkAddress.isLoopback(host: host) && !allowed() {
            throw refuse("\(named) is this machine; \(noun)s are fetched from public addresses only", hint: hint)
        }
        let addresses: [String]
        if literal {
            addresses = [host]
        } else {
            guard let resolved = resolver.addresses(of: host), !resolved.isEmpty else { throw refuse("\(named) does not resolve") }
            addresses = resolved
        }
        for address in addresses {
            let scope = NetworkAddress.scope(of: address) ?? .special
            if scope != .publicInternet && !allowed() {
                throw refuse(
                    "\(named) is a \(scope.rawValue) address (\(Sanitized.text(address, limit: 100))); \(noun)s are fetched from public addresses only",
                    hint: hint)
            }
        }
        return ResultTarget(url: address, host: host, addresses: literal ? [] : addresses)
    }

    /// An address as messages show it: control characters stripped, a user
    /// name or password replaced by `…`, at most 200 characters.
    public static func shown(_ address: String) -> String {
        // Whatever stands before an "@" in an authority (between "://" and
        // the next "/", "?" or "#") is a user name or password, wherever a
        // URL appears in the text (one may sit in another's query).
        var shown = ""
        var rest = Substring(address)
        while let scheme = rest.range(of: "://") {
            shown += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let authority = rest.prefix { !"/?#".contains($0) }
            if let at = authority.lastIndex(of: "@") {
                shown += "…"
                rest = rest[at...]
            }
        }
        shown += rest
        return Sanitized.text(shown, limit: 200)
    }

    /// A result or image (`what`: "the result at URL", "an inline result") over `maxBytes`, `size` said how.
    func tooLarge(_ what: String, size: String, endpoint: String) -> ClientError {
        ClientError(
            kind: .badResponse, message: "\(endpoint): \(what) is over the \(maxBytes)-byte limit (\(size)); it was not kept",
            endpoint: endpoint, hint: "raise \(setting: .maxResultBytes) only if you expect \(noun)s this large")
    }

    /// Whether results from an endpoint at `baseURL` may come from private
    /// addresses: when the endpoint itself is on one (a local emulator or a
    /// proxy on the user's own network), its name resolved with `resolver`.
    /// Blocking when a name must be resolved.
    public static func endpointIsPrivate(_ baseURL: String, resolver: HostResolver = .system) -> Bool {
        guard let host = URL(string: baseURL)?.host, !host.isEmpty else { return false }
        if NetworkAddress.isLoopback(host: host) { return true }
        if let scope = NetworkAddress.scope(of: host) { return scope != .publicInternet }
        return resolver.addresses(of: host)?.contains { NetworkAddress.scope(of: $0) != .publicInternet } ?? false
    }
}

/// A result address that passed `ResultChecks`, and where it may be
/// connected to.
public struct ResultTarget: Sendable, Equatable {
    /// The address as the endpoint gave it.
    public var url: String
    /// Its host as the HTTP client reads it (an IPv6 address without its
    /// brackets): sent as the Host header, and the name TLS asks for (SNI)
    /// and verifies the certificate against.
    public var host: String
    /// What `host` resolved to when it was checked, every one of them
    /// checked: connections for this address go to these and to no other
    /// address, whatever the name answers later. Empty when `host` is an
    /// address itself (connected to as written), or when nothing was checked
    /// (`ResultChecks.allowPrivateAddresses`).
    public var addresses: [String]

    /// A target for `url` on `host`, pinned to `addresses`.
    public init(url: String, host: String, addresses: [String]) {
        self.url = url
        self.host = host
        self.addresses = addresses
    }
}

/// How a result host's name becomes addresses: the system's resolver
/// unless a caller (a test playing DNS rebinding) injects another. It is
/// asked once per result address and redirect hop; the answer is checked
/// and then connected to as it is, so what it says next time cannot move a
/// connection that was already checked.
public struct HostResolver: Sendable {
    private let lookUp: @Sendable (String) -> [String]?

    /// A resolver whose answer for `host` is `lookUp(host)`: numeric
    /// addresses, best first; nil or none when the name does not resolve.
    /// It may block (it is called off the event loops).
    public init(_ lookUp: @escaping @Sendable (_ host: String) -> [String]?) { self.lookUp = lookUp }

    /// The numeric addresses `host` resolves to, or nil.
    public func addresses(of host: String) -> [String]? { lookUp(host) }

    /// The system's resolver (`getaddrinfo`: the hosts file, then DNS).
    public static let system = HostResolver { Platform.addresses(of: $0) }
}

extension EditClient {
    /// Downloads a result within `checks`: each address (and each redirect
    /// hop) checked before connecting, the body streamed into a private
    /// temporary file and cut off at `maxBytes`, the whole download cut off
    /// at the deadline (on the client's clock). The bytes are returned mapped
    /// from that file, which is already unlinked.
    func download(_ address: String, from profile: ProviderProfile, checks: ResultChecks) async throws -> Data {
        try await download(address, label: profile.id, checks: checks)
    }

    /// An input image given as a URL (`https://...`), fetched as results are
    /// (`download`): the address and every redirect checked before
    /// connecting (public addresses only unless `checks` allows private
    /// ones), at most `maxBytes`, within the deadline; network errors, 5xx
    /// and 429 tried again. `label` starts each message ("image 2"). The
    /// bytes are not checked to be an image: the caller probes them.
    public func fetchImage(_ address: String, label: String, checks: ResultChecks) async throws -> Data {
        var checks = checks
        checks.subject = .input
        return try await download(address, label: label, checks: checks)
    }

    private func download(_ address: String, label: String, checks: ResultChecks) async throws -> Data {
        let deadline = clock.now().addingTimeInterval(checks.deadline)
        let downloaded = try await clock.value(of: { try await self.following(address, label: label, checks: checks) }, before: deadline)
        guard let data = downloaded else {
            throw ClientError(
                kind: .network,
                message: "\(label): the \(checks.noun) at \(ResultChecks.shown(address)) did not arrive within \(Self.seconds(checks.deadline)); it was cut off",
                endpoint: label, hint: "\(setting: .downloadTimeout) gives downloads longer")
        }
        return data
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }

    /// What one request for a result came to.
    private enum Answer {
        /// A redirect to this address (the next hop, not yet checked).
        case redirected(to: String, status: Int)
        /// The result's bytes.
        case saved(Data)
        /// An answer worth asking again (5xx, 429), after `Retry-After` when given.
        case retry(after: Double?)
    }

    /// Follows redirects one checked hop at a time; network errors, 5xx and
    /// 429 are tried again (a download costs nothing). Each hop is checked
    /// once, its name resolved once, and every try of it connects only to
    /// the addresses that check saw (the next one after a network error).
    private func following(_ address: String, label: String, checks: ResultChecks) async throws -> Data {
        var current = address
        var hops = 0
        var tries = 0
        var target: ResultTarget? = nil
        while true {
            try Task.checkCancellation()
            let hop = current
            let checked: ResultTarget
            if let target {
                checked = target
            } else {
                checked = try await NIOThreadPool.singleton.runIfActive { [resolver] in
                    try checks.check(hop, endpoint: label, resolver: resolver)
                }
                target = checked
            }
            let shown = ResultChecks.shown(current)
            tries += 1
            var request = HTTPClientRequest(url: current)
            request.method = .GET
            var wait: Double? = nil
            do {
                let answer = try await connecting(to: checked, attempt: tries) { http in
                    let response = try await http.execute(request, timeout: requestTimeout)
                    let status = Int(response.status.code)
                    if (300..<400).contains(status), status != 304 {
                        guard let location = response.headers.first(name: "Location"),
                            let next = URL(string: location, relativeTo: URL(string: hop))?.absoluteURL.absoluteString
                        else {
                            throw ClientError(
                                kind: .badResponse, message: "\(label): the \(checks.noun) at \(shown) redirects nowhere (HTTP \(status))",
                                endpoint: label, status: status)
                        }
                        return Answer.redirected(to: next, status: status)
                    }
                    if (200..<300).contains(status) {
                        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > checks.maxBytes {
                            throw checks.tooLarge("the \(checks.noun) at \(shown)", size: "\(length) bytes", endpoint: label)
                        }
                        return Answer.saved(try await save(response.body, shown: shown, label: label, checks: checks))
                    }
                    guard RetryPolicy.shouldRetry(status: status), tries < retry.maxAttempts else {
                        throw ClientError(
                            kind: .badResponse,
                            message: "\(label): the \(checks.noun) at \(shown) answered HTTP \(status)\([403, 404, 410].contains(status) ? " (expired or removed)" : "")",
                            endpoint: label, status: status)
                    }
                    return Answer.retry(after: RetryPolicy.parseRetryAfter(response.headers.first(name: "Retry-After"), now: clock.now()))
                }
                switch answer {
                case .saved(let data):
                    return data
                case .redirected(let next, let status):
                    hops += 1
                    guard hops <= checks.maxRedirects else {
                        throw ClientError(
                            kind: .badResponse,
                            message: "\(label): the \(checks.noun) at \(ResultChecks.shown(address)) redirects more than \(checks.maxRedirects) times",
                            endpoint: label, status: status)
                    }
                    current = next
                    target = nil
                    tries = 0
                    continue
                case .retry(let after):
                    wait = after
                }
            } catch let error as ClientError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                guard tries < retry.maxAttempts else {
                    throw ClientError(
                        kind: .network,
                        message: "\(label): the \(checks.noun) at \(shown) could not be downloaded after \(tries) attempt\(tries == 1 ? "" : "s") (\(Self.describe(error)))",
                        endpoint: label)
                }
            }
            try await clock.sleep(for: retry.delay(after: tries, retryAfter: wait))
        }
    }

    /// `body`'s value, given the HTTP client that connects `target` where
    /// its check allows: the shared client when its host is an address
    /// itself (or nothing was checked), else a client pinned to one of the
    /// checked addresses (try `attempt` takes the next one), which keeps the
    /// name for the Host header and TLS.
    private func connecting<T>(
        to target: ResultTarget, attempt: Int, _ body: (HTTPClient) async throws -> T
    ) async throws -> T {
        guard !target.addresses.isEmpty else { return try await body(http) }
        let address = target.addresses[(attempt - 1) % target.addresses.count]
        return try await pinned.with(PinnedHTTPClients.Pin(host: target.host, address: address), body)
    }

    /// Streams a body into a new private temporary file, stopping at the cap,
    /// and returns its bytes mapped from the file (removed at once: the
    /// mapping outlives the name).
    private func save(
        _ body: HTTPClientResponse.Body, shown: String, label: String, checks: ResultChecks
    ) async throws -> Data {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qie-result-\(UUID().uuidString)").path
        // A new name, never a file or link that was there first.
        guard let handle = try? PrivateFile.createNew(path) else {
            throw ClientError(
                kind: .badResponse, message: "\(label): no temporary file for the \(checks.noun) at \(shown) (\(path))",
                endpoint: label)
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        var written = 0
        do {
            defer { try? handle.close() }
            for try await chunk in body {
                written += chunk.readableBytes
                if written > checks.maxBytes {
                    throw checks.tooLarge("the \(checks.noun) at \(shown)", size: "more than that arrived", endpoint: label)
                }
                try handle.write(contentsOf: chunk.readableBytesView)
            }
        }
        if written == 0 { return Data() }
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    }
}
