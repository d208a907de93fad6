import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOFoundationCompat
import QiePipeline
import QieStore
import ServiceLifecycle
import Synchronization

/// A local OpenAI-compatible images gateway over the edit endpoints
/// (`qie serve`): `POST /v1/images/edits` as the OpenAI SDKs send it,
/// `GET /v1/models`, and `GET /v1/files/ID` for results asked for as URLs.
/// Each request runs the library's edit path (`Editor`), which supplies what
/// the endpoint lacks: sizes, `n`, output formats, restoring, cost.
///
/// ```swift
/// var configuration = GatewayConfiguration(stateDirectory: "/var/lib/qie")
/// configuration.models = ["runpod", "lumenfall"]
/// // Replicas behind a load balancer share one database:
/// // configuration.stateURL = "postgres://qie@db.internal/qie"
/// try await Gateway(configuration).run { address in print(address) }
/// ```
public struct Gateway: Sendable {
    /// What the gateway serves, and how.
    public let configuration: GatewayConfiguration
    /// Where endpoint keys and base URLs are read (`RUNPOD_API_KEY`, ...).
    public let environment: [String: String]
    /// One line per request (swift-log); never keys, never image bytes.
    public let logger: Logger
    /// Where UTC days, expiry and leases are read.
    public let clock: any QieClock

    /// A gateway; call `run` to serve.
    public init(
        _ configuration: GatewayConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "qie-serve"), clock: any QieClock = SystemClock()
    ) {
        self.configuration = configuration
        self.environment = environment
        self.logger = logger
        self.clock = clock
    }

    /// Serves until SIGTERM or SIGINT (or cancellation). The state, its
    /// sweeper and the HTTP server run as services in one group (Swift
    /// Service Lifecycle), over one HTTP client to the endpoints. On a
    /// signal the server stops taking requests and lets the edits in flight
    /// finish (each records its outcome, and its money, as every edit does);
    /// then the sweeper stops and the state closes (a PostgreSQL replica
    /// marks any edit of its own still running as possibly charged, so a
    /// retry elsewhere never sends it again). `onReady` gets the address
    /// (`http://HOST:PORT`) once the gateway listens.
    public func run(onReady: @escaping @Sendable (String) async -> Void = { _ in }) async throws {
        try await withParts(onReady: onReady) { parts in
            let group = ServiceGroup(
                configuration: .init(
                    services: [parts.state, parts.sweeper, parts.application], gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: Logger(label: "qie-serve.lifecycle", factory: { _ in SwiftLogNoOpLogHandler() })))
            try await group.run()
        }
    }

    /// Builds the gateway's HTTP application (state opened, one editor per
    /// model over one HTTP client, the sweeper running) and hands it to
    /// `body`, which runs it (or tests it with HummingbirdTesting);
    /// everything is closed when `body` returns or throws.
    public func withApplication<T: Sendable>(
        onReady: @escaping @Sendable (String) async -> Void = { _ in },
        _ body: @Sendable (Application<RouterResponder<GatewayRequestContext>>) async throws -> T
    ) async throws -> T {
        try await withParts(onReady: onReady) { parts in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await parts.sweeper.run() }
                defer { group.cancelAll() }
                let result = try await body(parts.application)
                // Records of the requests answered are written before the state closes.
                await parts.state.recorder.flush()
                return result
            }
        }
    }

    /// What a running gateway is made of.
    private struct Parts: Sendable {
        var application: Application<RouterResponder<GatewayRequestContext>>
        var sweeper: StateSweeper
        var state: StateService
    }

    /// Opens the state and one HTTP client, builds the parts, and closes
    /// both when `body` ends, on every path.
    private func withParts<T: Sendable>(
        onReady: @escaping @Sendable (String) async -> Void, _ body: @Sendable (Parts) async throws -> T
    ) async throws -> T {
        try configuration.validate()
        let store = try await openStore()
        let client = Editor.makeClient(configuration.options, connections: configuration.concurrency, clock: clock)
        do {
            let result = try await serve(store: store, client: client, onReady: onReady, body)
            await store.close()
            try? await client.shutdown()
            return result
        } catch {
            await store.close()
            try? await client.shutdown()
            throw error
        }
    }

    /// The state: PostgreSQL at `stateURL`, shared with other replicas, or
    /// SQLite in the state folder. The folder is made either way (uploads
    /// are spooled there while they are read).
    private func openStore() async throws -> any GatewayStore {
        guard let text = configuration.stateURL else {
            return try SQLiteGatewayStore(folder: configuration.stateDirectory, keyLifetime: configuration.keyLifetime, clock: clock)
        }
        try SQLiteGatewayStore.makeFolder(configuration.stateDirectory)
        do {
            let url = try PostgresURL(text, environment: environment)
            return try await PostgresGatewayStore.open(
                url: url, lease: configuration.stateLease, connections: min(16, configuration.concurrency + 2),
                keyLifetime: configuration.keyLifetime, clock: clock)
        } catch {
            throw GatewayConfigurationError.state("\(error)")
        }
    }

    private func serve<T: Sendable>(
        store: any GatewayStore, client: EditClient, onReady: @escaping @Sendable (String) async -> Void,
        _ body: @Sendable (Parts) async throws -> T
    ) async throws -> T {
        let profiles = try configuration.profiles()
        let budgets = GatewayBudgets(ledger: store.budgetLedger, limits: BudgetLimits(configuration), clock: clock)
        let recorder = RequestRecorder(store: store, clock: clock, thumbnailLifetime: configuration.fileLifetime, logger: logger)
        let host = configuration.host
        let port = configuration.port
        let configuredURL = configuration.publicURL
        let address = Mutex<String>(configuredURL ?? "http://\(host):\(port)")
        return try await Self.withEditors(
            profiles[...], options: configuration.options, environment: environment, client: client, opened: [:]
        ) { editors in
            let service = EditsService(
                configuration: configuration, profiles: profiles, editors: editors, client: client, store: store, budgets: budgets,
                recorder: recorder,
                admission: Turnstile(capacity: configuration.concurrency),
                intake: Intake(limit: configuration.concurrency + configuration.queueLimit),
                address: { address.withLock { $0 } }, logger: logger, clock: clock)
            let deadlines = configuration.clientDeadlines
            let clock = self.clock
            // Headers are bounded in size and count, and every connection in pace.
            let http = HTTP1Channel.Configuration(
                additionalChannelHandlers: [ClientPace(deadlines: deadlines, clock: clock)],
                httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 << 10, maxHeaderListSize: 64 << 10, maxHeaderFieldCount: 100))
            let application = Application(
                router: service.router(), server: .http1(configuration: http),
                configuration: .init(address: .hostname(host, port: port), serverName: "qie-serve"),
                onServerRunning: { channel in
                    let bound = channel.localAddress?.port ?? port
                    let shown = host.contains(":") ? "[\(host)]" : host
                    let listening = "http://\(shown):\(bound)"
                    if configuredURL == nil { address.withLock { $0 = listening } }
                    await onReady(listening)
                },
                logger: Logger(label: "qie-serve.http", factory: { _ in SwiftLogNoOpLogHandler() }))
            let sweeper = StateSweeper(
                store: store, keyLifetime: configuration.keyLifetime, recordLifetime: configuration.recordLifetime,
                interval: configuration.sweepInterval, clock: clock)
            return try await body(
                Parts(application: application, sweeper: sweeper, state: StateService(store: store, recorder: recorder)))
        }
    }

    /// Opens an editor for each profile in turn over `client`, nested, and runs `body` with all of them.
    private static func withEditors<T: Sendable>(
        _ profiles: ArraySlice<ProviderProfile>, options: EditOptions, environment: [String: String], client: EditClient,
        opened: [String: Editor], _ body: @Sendable ([String: Editor]) async throws -> T
    ) async throws -> T {
        guard let profile = profiles.first else { return try await body(opened) }
        var own = options
        own.endpoint = profile.id
        own.numImages = 1
        own.flow = nil
        let rest = profiles.dropFirst()
        return try await Editor.with(own, environment: environment, client: client) { editor in
            var all = opened
            all[profile.id] = editor
            return try await withEditors(rest, options: options, environment: environment, client: client, opened: all, body)
        }
    }
}

/// Deletes expired result files and idempotency keys, at once and then
/// every `interval` seconds of `clock`, whichever store keeps them, until
/// the gateway shuts down.
struct StateSweeper: Service {
    let store: any GatewayStore
    let keyLifetime: TimeInterval
    /// How long requests' records are kept (their thumbnails expire as files do).
    let recordLifetime: TimeInterval
    let interval: TimeInterval
    let clock: any QieClock

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await store.sweep(keyLifetime: keyLifetime)
                try? await store.sweepRecords(olderThan: recordLifetime)
                try? await clock.sleep(for: interval)
            }
        }
    }
}

/// The gateway's state as a service: open while the gateway runs, closed
/// once the server has shut down (a PostgreSQL replica then marks any edit
/// of its own still running as possibly charged, and leaves).
struct StateService: Service {
    let store: any GatewayStore
    /// Requests' records still being written are written before the state closes.
    let recorder: RequestRecorder

    func run() async throws {
        try? await gracefulShutdown()
        await recorder.flush()
        await store.close()
    }
}
