import Foundation
import Logging
import NIOSSL
import PostgresNIO
import QieFiles

/// A PostgreSQL server address as libpq spells it:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE&host=/socket/dir]`,
/// with the password policy and the TLS policy both the run ledger and the
/// gateway's state use (the one place qie reads a PostgreSQL URL).
///
/// The password is taken, as libpq takes it, from the URL, else from
/// `PGPASSWORD`, else from the password file (`PGPASSFILE`, else
/// `~/.pgpass`: lines `hostname:port:database:username:password`, `*`
/// matching anything in the first four fields, `\:` and `\\` escaping; a
/// file that group or others may read is ignored, with a warning in
/// `warnings`), so it need not be on a command line where `ps` shows it. It
/// is never part of `description`, and `redacting(_:)` takes it out of any
/// text.
///
/// A server on another machine is reached only as the URL says:
/// `sslmode=require` or `verify-full` (TLS, the server's certificate checked
/// against the system's roots and its name; `verify-ca` checks the roots
/// only), or `sslmode=disable` (no TLS, said explicitly). Without one, or
/// with `prefer` or `allow` (which fall back to no TLS), such a URL is
/// refused here, before anything is sent. A server on this machine (a
/// loopback address, `localhost`, or a unix socket) is reached with TLS when
/// it offers it (`prefer`, the default).
public struct PostgresURL: Sendable, CustomStringConvertible {
    /// The user to log in as.
    public var user: String
    /// The password, if any.
    var password: String?
    /// Where the password came from; nil when there is none.
    public private(set) var passwordSource: PasswordSource?
    /// The host name or address (TCP), when no socket folder is given.
    public var host: String
    /// The port (5432 by default); also names the unix socket file.
    public var port: Int
    /// The database.
    public var database: String
    /// A folder holding the server's unix socket (`?host=/run/postgresql`), used instead of TCP.
    public var socketFolder: String?
    /// `disable`, `allow`, `prefer` (the default on this machine), `require`,
    /// `verify-ca` or `verify-full`.
    public var sslMode: String
    /// What a person should know about how the URL was read (a password file
    /// ignored, and why), one line each; never a password.
    public private(set) var warnings: [String] = []

    /// Where a password was found.
    public enum PasswordSource: Sendable, Equatable {
        /// In the URL itself.
        case url
        /// In the `PGPASSWORD` variable.
        case environment
        /// In the password file at this path.
        case passwordFile(String)
    }

    /// The TLS modes libpq knows.
    static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// Whether `text` is a PostgreSQL URL (`postgres://` or `postgresql://`).
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses `text` and applies the TLS policy; `environment` supplies
    /// `PGPASSWORD`, `PGPASSFILE` and `HOME` when the URL has no password.
    /// Nothing is sent anywhere: a URL the policy refuses throws here.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) {
        guard Self.isPostgres(text), let components = URLComponents(string: text) else {
            throw .badURL("a PostgreSQL URL must look like postgres://USER@HOST:PORT/DATABASE")
        }
        guard let user = components.user, !user.isEmpty else {
            throw .badURL("the PostgreSQL URL names no user (postgres://USER@HOST/DATABASE)")
        }
        let name = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !name.isEmpty, !name.contains("/") else {
            throw .badURL("the PostgreSQL URL names no database (postgres://USER@HOST/DATABASE)")
        }
        self.user = user
        database = name
        port = components.port ?? 5432
        var socket: String? = nil
        var mode: String? = nil
        for item in components.queryItems ?? [] {
            switch item.name {
            case "host": socket = item.value
            case "sslmode":
                guard let value = item.value, Self.sslModes.contains(value) else {
                    throw .badURL("the PostgreSQL URL's sslmode must be one of \(Self.sslModes.joined(separator: ", "))")
                }
                mode = value
            default:
                throw .badURL("the PostgreSQL URL's option \(item.name) is not known (known: sslmode, host)")
            }
        }
        socketFolder = socket
        host = components.host.map(Self.unbracketed) ?? ""
        guard socket != nil || !host.isEmpty else { throw .badURL("the PostgreSQL URL names no host") }
        sslMode = mode ?? "prefer"
        if !isOnThisMachine, mode == nil || mode == "prefer" || mode == "allow" {
            throw .badURL(
                "the PostgreSQL server \(host) is not on this machine, and \(mode.map { "sslmode=\($0) falls back to a connection without TLS" } ?? "the URL does not say whether to use TLS"); add ?sslmode=require (or verify-full) to reach it over TLS only, or ?sslmode=disable to allow a connection without TLS (the password and data then cross the network in clear)")
        }
        if let given = components.password, !given.isEmpty {
            password = given
            passwordSource = .url
        } else if let given = environment["PGPASSWORD"], !given.isEmpty {
            password = given
            passwordSource = .environment
        } else {
            let file = PasswordFile(environment: environment)
            let (found, warning) = file.password(host: socketFolder.map(PasswordFile.hostName(socketFolder:)) ?? host, port: port, database: database, user: user)
            if let warning { warnings.append(warning) }
            if let found {
                password = found
                passwordSource = .passwordFile(file.path)
            }
        }
    }

    /// Whether the server is on this machine: a unix socket, `localhost`, or
    /// a loopback address (127.0.0.0/8, ::1), judged from the text alone.
    public var isOnThisMachine: Bool {
        if socketFolder != nil { return true }
        let name = host.lowercased()
        if name == "localhost" || name == "::1" || name == "0:0:0:0:0:0:0:1" { return true }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// `[::1]` as `::1`.
    private static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// The URL without its password.
    public var description: String {
        let address = socketFolder.map { "\(host)?host=\($0)" } ?? (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        return "postgres://\(user)@\(address)/\(database)"
    }

    /// `text` (a command line argument, say, `--ledger=postgres://...`) with
    /// the password of every PostgreSQL URL in it taken out, however the
    /// URL is spelled (a password holding `/` or `@` included), and any
    /// `password=` option in its query.
    public static func redacting(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let scheme = rest.firstRange(of: "://") {
            result += rest[..<scheme.lowerBound]
            let isPostgres = ["postgres", "postgresql"].contains { result.lowercased().hasSuffix($0) }
            result += "://"
            rest = rest[scheme.upperBound...]
            guard isPostgres else { continue }
            // The URL runs to the next space or the next URL; its user part to its last "@".
            let end = rest.firstIndex(where: \.isWhitespace) ?? rest.endIndex
            var url = String(rest[..<end])
            if let next = url.range(of: "://") { url = String(url[..<next.lowerBound]) }
            let length = url.count
            if let at = url.lastIndex(of: "@"), let colon = url[..<at].firstIndex(of: ":") {
                url = String(url[..<colon]) + url[at...]
            }
            url = url.replacing(/([?&]password=)[^&]*/) { "\($0.1)***" }
            result += url
            rest = rest[rest.index(rest.startIndex, offsetBy: length)...]
        }
        return result + rest
    }

    /// The server's socket file in `folder`, as libpq names it.
    static func socket(in folder: String, port: Int) -> String { (folder as NSString).appendingPathComponent(".s.PGSQL.\(port)") }

    /// The TLS client settings for the mode: the system's roots, and the
    /// server's name too unless `verify-ca`.
    private var tlsConfiguration: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if sslMode == "verify-ca" { configuration.certificateVerification = .noHostnameVerification }
        return configuration
    }

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
                case "require", "verify-ca", "verify-full": tls = .require(try NIOSSLContext(configuration: tlsConfiguration))
                default: tls = .prefer(try NIOSSLContext(configuration: tlsConfiguration))
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
            case "require", "verify-ca", "verify-full": tls = .require(tlsConfiguration)
            default: tls = .prefer(tlsConfiguration)
            }
            configuration = PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }
}

/// libpq's password file (`PGPASSFILE`, else `~/.pgpass`), read as libpq
/// reads it: one `hostname:port:database:username:password` a line, `*`
/// matching anything in the first four fields, `\` escaping `:` and `\`,
/// lines starting with `#` ignored, the first match winning. A file that
/// group or others may read (or that is no regular file) is ignored, with
/// the warning libpq gives.
struct PasswordFile {
    /// The file's path.
    let path: String

    /// The file `environment` names.
    init(environment: [String: String]) {
        if let named = environment["PGPASSFILE"], !named.isEmpty {
            path = named
        } else {
            path = ((environment["HOME"] ?? NSHomeDirectory()) as NSString).appendingPathComponent(".pgpass")
        }
    }

    /// The host name a socket connection matches in the file: `localhost`
    /// for the default socket folder, as libpq has it, else the folder.
    static func hostName(socketFolder: String) -> String {
        ["/var/run/postgresql", "/run/postgresql", "/tmp"].contains(socketFolder) ? "localhost" : socketFolder
    }

    /// The password for the connection, and a warning when the file was
    /// there and ignored; (nil, nil) when there is no file or no line matches.
    func password(host: String, port: Int, database: String, user: String) -> (String?, String?) {
        guard let status = Platform.status(path) else { return (nil, nil) }
        guard status.kind == .regular else { return (nil, "password file \"\(DisplayPath.escape(path))\" is not a plain file; ignored") }
        guard status.mode & 0o077 == 0 else {
            return (
                nil,
                "password file \"\(DisplayPath.escape(path))\" has group or world access; permissions should be u=rw (0600) or less; ignored"
            )
        }
        guard let data = try? FileContents.read(path, maxBytes: 1 << 20), let text = String(data: data, encoding: .utf8) else {
            return (nil, "password file \"\(DisplayPath.escape(path))\" cannot be read; ignored")
        }
        let wanted = [host, String(port), database, user]
        for raw in text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline) {
            let line = String(raw)
            if line.hasPrefix("#") { continue }
            let fields = Self.fields(line)
            guard fields.count >= 5 else { continue }
            if zip(fields.prefix(4), wanted).allSatisfy({ $0.text == $1 || $0.isWildcard }) { return (fields[4].text, nil) }
        }
        return (nil, nil)
    }

    /// A line's fields, split at `:` not escaped, escapes removed; a field
    /// that is exactly an unescaped `*` is a wildcard.
    private static func fields(_ line: String) -> [(text: String, isWildcard: Bool)] {
        var fields: [(text: String, isWildcard: Bool)] = []
        var current = ""
        var escaped = false
        var anyEscape = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
                anyEscape = true
            } else if character == ":" {
                fields.append((current, current == "*" && !anyEscape))
                current = ""
                anyEscape = false
            } else {
                current.append(character)
            }
        }
        fields.append((current, current == "*" && !anyEscape))
        return fields
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
            if error.code == .authMechanismRequiresPassword {
                return .unavailable(
                    location: "\(url)",
                    reason: "the server asks for a password and none was given; put it in the password file (~/.pgpass, or the file PGPASSFILE names, readable by you only), in PGPASSWORD, or in the URL")
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
