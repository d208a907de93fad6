import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// A PostgreSQL server address as libpq spells it:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require&host=/socket/dir]`.
/// A password missing from the URL is read from `PGPASSWORD`. The URL's
/// `description` never shows the password.
public struct PostgresURL: Sendable, CustomStringConvertible {
    /// The user to log in as.
    public var user: String
    /// The password, if any.
    var password: String?
    /// The host name or address (TCP), when no socket folder is given.
    public var host: String
    /// The port (5432 by default); also names the unix socket file.
    public var port: Int
    /// The database.
    public var database: String
    /// A folder holding the server's unix socket (`?host=/run/postgresql`), used instead of TCP.
    public var socketFolder: String?
    /// `disable`, `prefer` (the default, as libpq) or `require`.
    public var sslMode: String

    /// Whether `text` is a PostgreSQL URL (`postgres://` or `postgresql://`).
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses `text`; `environment` supplies `PGPASSWORD` when the URL has no password.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) {
        guard Self.isPostgres(text), let components = URLComponents(string: text) else {
            throw .badURL("a PostgreSQL URL must look like postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        guard let user = components.user, !user.isEmpty else {
            throw .badURL("the PostgreSQL URL names no user (postgres://USER@HOST/DATABASE)")
        }
        let name = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !name.isEmpty, !name.contains("/") else {
            throw .badURL("the PostgreSQL URL names no database (postgres://USER@HOST/DATABASE)")
        }
        self.user = user
        password = components.password ?? environment["PGPASSWORD"]
        database = name
        port = components.port ?? 5432
        var socket: String? = nil
        var mode = "prefer"
        for item in components.queryItems ?? [] {
            switch item.name {
            case "host": socket = item.value
            case "sslmode":
                guard let value = item.value, ["disable", "prefer", "require"].contains(value) else {
                    throw .badURL("the PostgreSQL URL's sslmode must be disable, prefer or require")
                }
                mode = value
            default:
                throw .badURL("the PostgreSQL URL's option \(item.name) is not known (known: sslmode, host)")
            }
        }
        socketFolder = socket
        sslMode = mode
        host = components.host ?? ""
        guard socket != nil || !host.isEmpty else { throw .badURL("the PostgreSQL URL names no host") }
    }

    /// The URL without its password.
    public var description: String {
        let address = socketFolder.map { "\(host)?host=\($0)" } ?? (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        return "postgres://\(user)@\(address)/\(database)"
    }

    /// Removes the password from a URL inside `text` (a command line argument, say).
    public static func redacting(_ text: String) -> String {
        guard isPostgres(text), var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = nil
        return components.string ?? text
    }

    /// The server's socket file in `folder`, as libpq names it.
    static func socket(in folder: String, port: Int) -> String { (folder as NSString).appendingPathComponent(".s.PGSQL.\(port)") }

    /// One connection's configuration, to check the address and credentials
    /// once before the pool (which retries quietly for a minute) is used.
    func connectionConfiguration() throws(StoreError) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketFolder {
            configuration = PostgresConnection.Configuration(
                unixSocketPath: Self.socket(in: socketFolder, port: port), username: user, password: password, database: database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            do {
                switch sslMode {
                case "disable": tls = .disable
                case "require": tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                default: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
                }
            } catch {
                throw .unavailable(location: "\(self)", reason: "cannot set up TLS: \(error)")
            }
            configuration = PostgresConnection.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    func clientConfiguration() throws(StoreError) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketFolder {
            configuration = PostgresClient.Configuration(
                unixSocketPath: Self.socket(in: socketFolder, port: port), username: user, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch sslMode {
            case "disable": tls = .disable
            case "require": tls = .require(.makeClientConfiguration())
            default: tls = .prefer(.makeClientConfiguration())
            }
            configuration = PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }
}

/// A pooled connection to one PostgreSQL database, with its background task,
/// and versioned schema migrations shared by the stores built on it.
public final class PostgresDatabase: Sendable {
    /// The server, without password.
    public let url: PostgresURL
    let client: PostgresClient
    private let runner: Task<Void, Never>
    package let logger: Logger

    /// Connects (lazily: the first query opens a connection) to `url`.
    public init(_ url: PostgresURL, maxConnections: Int = 20) throws(StoreError) {
        self.url = url
        var configuration = try url.clientConfiguration()
        configuration.options.maximumConnections = maxConnections
        configuration.options.minimumConnections = 0
        var logger = Logger(label: "qie.postgres")
        logger.logLevel = .critical
        self.logger = logger
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Connects once, outside the pool, and closes: a wrong address,
    /// password or database name fails here at once with the server's words.
    public func check() async throws(StoreError) {
        let configuration = try url.connectionConfiguration()
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try? await connection.close()
        } catch {
            throw describe(error)
        }
    }

    /// Stops the pool: its connections close.
    public func close() async {
        runner.cancel()
        _ = await runner.result
    }

    /// Runs `query`, turning a failure into a `StoreError` that says what the server said.
    @discardableResult
    package func query(_ query: PostgresQuery) async throws(StoreError) -> PostgresRowSequence {
        do {
            return try await client.query(query, logger: logger)
        } catch {
            throw describe(error)
        }
    }

    /// Runs `query` and maps each row it returns with `transform`, reading
    /// them all; a failure becomes a `StoreError` with the server's words.
    package func rows<T>(_ query: PostgresQuery, _ transform: (PostgresRow) throws -> T) async throws(StoreError) -> [T] {
        do {
            var mapped: [T] = []
            for try await row in try await client.query(query, logger: logger) { mapped.append(try transform(row)) }
            return mapped
        } catch {
            throw describe(error)
        }
    }

    /// Runs `body` in one transaction (committed when it returns, rolled back when it throws).
    package func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        } catch let error as StoreError {
            throw error
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError as? StoreError { throw inner }
            throw describe(error.closureError ?? error.beginError ?? error.commitError ?? error)
        } catch {
            throw describe(error)
        }
    }

    /// A store error with the server's message (never the password: the
    /// configuration is not part of what PostgresNIO reports).
    func describe(_ error: any Error) -> StoreError {
        if let store = error as? StoreError { return store }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let state = error.serverInfo?[.sqlState].map { " (\($0))" } ?? ""
                return .unavailable(location: "\(url)", reason: "the server said: \(message)\(state)")
            }
            if let underlying = error.underlying {
                return .unavailable(location: "\(url)", reason: "cannot connect: \(underlying); is the server running, and is the address right?")
            }
            return .unavailable(location: "\(url)", reason: "\(error.code)")
        }
        return .unavailable(location: "\(url)", reason: "\(error)")
    }

    /// Applies the migrations of `namespace` this database lacks, in order,
    /// under a lock so workers starting together apply each once. A database
    /// with a migration of `namespace` this qie does not know was written by
    /// a newer qie: `StoreError.newer`.
    package func migrate(namespace: String, _ migrations: [(name: String, sql: [String])]) async throws {
        let known = Set(migrations.map { "\(namespace).\($0.name)" })
        try await transaction { connection in
            // One lock for every qie migration: the first worker migrates, the rest wait and find it done.
            try await connection.query("SELECT pg_advisory_xact_lock(7151001)", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS qie_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            var applied = Set<String>()
            let prefix = namespace + ".%"
            for try await name in try await connection.query(
                "SELECT name FROM qie_migrations WHERE name LIKE \(prefix)", logger: logger
            ).decode(String.self) {
                applied.insert(name)
            }
            guard applied.isSubset(of: known) else { throw StoreError.newer(location: "\(url)") }
            for migration in migrations where !applied.contains("\(namespace).\(migration.name)") {
                for statement in migration.sql {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                let name = "\(namespace).\(migration.name)"
                try await connection.query("INSERT INTO qie_migrations (name) VALUES (\(name))", logger: logger)
            }
        }
    }
}
