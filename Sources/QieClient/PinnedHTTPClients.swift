import AsyncHTTPClient
import Synchronization

/// HTTP clients that connect a result host's name to one address its check
/// saw, and to no other: one client per (name, address) pin.
///
/// Why clients of their own: AsyncHTTPClient resolves a name itself when it
/// connects, so a name that answered a public address to the check could
/// answer a private one to the connection a moment later (DNS rebinding).
/// A client whose `dnsOverride` maps the name to the checked address
/// connects to that address, while the name stays the Host header, the TLS
/// server name (SNI) and the name the certificate is verified against. The
/// override is fixed when a client is made, hence a client per pin. Pins are
/// kept, so that a run's results, which come from one or a few hosts, reuse
/// their connections as they did over the shared client: at most
/// `capacity` clients, the least recently used idle ones shut down first; a
/// client in use is never shut down under its download. Results on IP
/// addresses need no pin and go over the shared client.
final class PinnedHTTPClients: Sendable {
    /// A name and the checked address it connects to.
    struct Pin: Hashable, Sendable {
        var host: String
        var address: String
    }

    private struct Entry {
        var client: HTTPClient
        var leases: Int
        var used: UInt64
    }

    private struct State {
        var entries: [Pin: Entry] = [:]
        var uses: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())
    private let configuration: HTTPClient.Configuration
    private let capacity: Int

    /// Pinned clients made with `configuration` (its `dnsOverride` set per
    /// pin), keeping up to `capacity` of them.
    init(configuration: HTTPClient.Configuration, capacity: Int = 8) {
        self.configuration = configuration
        self.capacity = max(1, capacity)
    }

    /// `body`'s value, given the client for `pin`, which stays open at least
    /// until `body` returns or throws (read a response's body inside it).
    func with<T>(_ pin: Pin, _ body: (HTTPClient) async throws -> T) async throws -> T {
        let client = try lease(pin)
        let value: T
        do {
            value = try await body(client)
        } catch {
            await release(pin)
            throw error
        }
        await release(pin)
        return value
    }

    /// Shuts every client down; no pin is leased afterwards.
    func shutdown() async throws {
        let clients = state.withLock { state -> [HTTPClient] in
            state.closed = true
            defer { state.entries = [:] }
            return state.entries.values.map(\.client)
        }
        var failure: (any Error)? = nil
        for client in clients {
            do { try await client.shutdown() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    private func lease(_ pin: Pin) throws -> HTTPClient {
        try state.withLock { state throws -> HTTPClient in
            guard !state.closed else { throw HTTPClientError.alreadyShutdown }
            state.uses += 1
            if var entry = state.entries[pin] {
                entry.leases += 1
                entry.used = state.uses
                state.entries[pin] = entry
                return entry.client
            }
            var configuration = self.configuration
            configuration.dnsOverride = [pin.host: pin.address]
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            state.entries[pin] = Entry(client: client, leases: 1, used: state.uses)
            return client
        }
    }

    /// Ends one lease of `pin`; idle clients over the capacity (the least
    /// recently used first) are shut down.
    private func release(_ pin: Pin) async {
        let retired = state.withLock { state -> [HTTPClient] in
            state.entries[pin]?.leases -= 1
            let excess = state.entries.count - capacity
            guard excess > 0 else { return [] }
            let idle = state.entries.filter { $0.value.leases == 0 }.sorted { $0.value.used < $1.value.used }.prefix(excess)
            for (pin, _) in idle { state.entries[pin] = nil }
            return idle.map(\.value.client)
        }
        for client in retired { try? await client.shutdown() }
    }
}
