import Crypto
import Foundation
import GRDB
import NIOCore
import NIOFoundationCompat
import QieFiles
import QiePipeline
import QieStore
import Synchronization

/// What the gateway keeps beyond one request: idempotency keys with the
/// requests they were first used with and their outcomes, result files
/// served by URL, the day's spending (and each user's), and each request's
/// record. `SQLiteGatewayStore` keeps them in the state folder for one
/// gateway; `PostgresGatewayStore` in a database shared by replicas behind
/// a load balancer.
protocol GatewayStore: ResultFiles, RequestRecords {
    /// Idempotency keys and their outcomes.
    var idempotency: any IdempotencyStore { get }
    /// Binds an idempotency key to the request it was first sent with: true
    /// when `fingerprint` is that request's (or the key is new), false when
    /// the key was used with another request.
    func bind(_ key: String, to fingerprint: String) async throws -> Bool
    /// Where the daily budgets keep their money, across every client (and
    /// replica). Both stores mean the same by it: a day's spending plus its
    /// open reservations never pass a limit (the day's, or a user's), and
    /// reservations a stopped gateway left open stay counted (they may have
    /// been billed).
    var budgetLedger: any BudgetLedger { get }
    /// Deletes expired result files, and idempotency keys (with their
    /// answers) older than `keyLifetime` seconds whose edit has ended.
    func sweep(keyLifetime: TimeInterval) async throws
    /// Ends this gateway's use of the store.
    func close() async
}

extension GatewayStore {
    /// A new unguessable file id: 48 hex digits.
    static func newFileID() -> String {
        var random = SystemRandomNumberGenerator()
        return (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &random)) }.joined()
    }

    /// Whether `id` can be a file id at all (checked before any lookup).
    static func isFileID(_ id: String) -> Bool { id.count == 48 && id.allSatisfy(\.isHexDigit) }

    /// Why an edit under a key that was running when its gateway stopped is not run again.
    static var stoppedWhileEditing: String {
        "the gateway stopped while this request was being edited; the endpoint may have charged for it, so it is not sent again under the same Idempotency-Key (use a new key to edit again)"
    }
}

/// The gateway's state on disk, in one SQLite file in the state folder:
/// idempotency keys and their outcomes, result files served by URL, and
/// what each UTC day spent. It survives restarts; one gateway uses a state
/// folder at a time (a lock in the folder says so).
final class SQLiteGatewayStore: GatewayStore {
    let folder: String
    /// Times keys, files and days.
    let clock: any QieClock
    let database: DatabaseQueue
    let idempotency: any IdempotencyStore
    private let lock: RunLock

    static let fileName = "gateway.sqlite"

    /// Result files, in `files/` under the folder.
    private let files: SQLiteResultFiles

    /// The state in `folder`; finished answers under idempotency keys are
    /// kept `keyLifetime` seconds.
    init(folder: String, keyLifetime: TimeInterval = 86400, clock: any QieClock = SystemClock()) throws(GatewayConfigurationError) {
        self.folder = folder
        self.clock = clock
        try Self.makeFolder(folder)
        do {
            lock = try RunLock(folder: folder)
        } catch {
            throw .state("\(error) (another qie serve uses this state folder; give each its own)")
        }
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
            }
            // SQLite opens the file and its journals by name: never through a link, 0600.
            let path = folder + "/" + Self.fileName
            let identity = try PrivateFile.prepare(path)
            database = try DatabaseQueue(path: path, configuration: configuration)
            try PrivateFile.confirm(path, is: identity)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.create(table: "idempotency") { table in
                    table.primaryKey("key", .text)
                    table.column("state", .text).notNull()  // running | finished | failed
                    table.column("result", .blob)  // EditResult as JSON
                    table.column("error", .text)
                    table.column("created", .double).notNull()
                }
                try db.create(table: "files") { table in
                    table.primaryKey("id", .text)
                    table.column("name", .text).notNull()
                    table.column("contentType", .text).notNull()
                    table.column("expires", .double).notNull()
                }
                try db.create(table: "spending") { table in
                    table.primaryKey("day", .text)
                    table.column("spent", .text).notNull()
                }
            }
            migrator.registerMigration("v2: request fingerprints") { db in
                try db.create(table: "fingerprint") { table in
                    table.primaryKey("key", .text)
                    table.column("fingerprint", .text).notNull()
                }
            }
            migrator.registerMigration("v3: fingerprints expire with their keys") { db in
                try db.alter(table: "fingerprint") { table in
                    table.add(column: "created", .double).notNull().defaults(to: 0)
                }
                try db.execute(sql: "UPDATE fingerprint SET created = ?", arguments: [Date().timeIntervalSince1970])
            }
            migrator.registerMigration("v4: budget reservations kept, money as micro-dollars") { db in
                try db.create(table: "budget_days") { table in
                    table.primaryKey("day", .text)
                    table.column("spentMicros", .integer).notNull()
                }
                try db.create(table: "budget_reservations") { table in
                    table.primaryKey("id", .text)
                    table.column("day", .text).notNull().indexed()
                    table.column("micros", .integer).notNull()
                }
                for row in try Row.fetchAll(db, sql: "SELECT day, spent FROM spending") {
                    guard let micros = MicroDollars.parse(row["spent"]) else { continue }
                    try db.execute(
                        sql: "INSERT INTO budget_days (day, spentMicros) VALUES (?, ?)", arguments: [row["day"] as String, micros])
                }
                try db.drop(table: "spending")
            }
            migrator.registerMigration("v5: requests' records, each user's spending", migrate: Self.migrateRecords)
            migrator.registerMigration("v6: budget reservations name their user", migrate: SQLiteBudgetLedger.migrate)
            try migrator.migrate(database)
            files = SQLiteResultFiles(folder: folder, database: database, clock: clock)
            idempotency = KeyedEdits(
                records: SQLiteKeyRecords(database: database, clock: clock), files: files, lifetime: keyLifetime, clock: clock)
            // Edits that were running when an earlier gateway stopped may have
            // been billed: their keys answer with that, never run again.
            try database.write { db in
                try db.execute(
                    sql: """
                        UPDATE idempotency SET state = 'failed', error = ?
                        WHERE state = 'running'
                        """,
                    arguments: [Self.stoppedWhileEditing])
            }
        } catch let error as OutputError {
            throw .state("\(error)")
        } catch {
            throw .state("\(folder)/\(Self.fileName): \(error)")
        }
    }

    /// Makes the state folder (and its `files`) readable by this user only:
    /// prompts, uploads and results are the users'. A link where `files`
    /// belongs is refused (the folder itself is the one the user named).
    static func makeFolder(_ folder: String) throws(GatewayConfigurationError) {
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: folder)
        } catch {
            throw .state("cannot create \(folder): \(error.localizedDescription)")
        }
        do {
            _ = try OutputFolder(path: folder).folder(Self.filesFolder)
        } catch {
            throw .state("\(error)")
        }
    }

    /// The folder, inside the state folder, of result files served by URL.
    static let filesFolder = "files"

    func bind(_ key: String, to fingerprint: String) async throws -> Bool {
        let now = clock.now().timeIntervalSince1970
        return try await database.write { db in
            if let known = try String.fetchOne(db, sql: "SELECT fingerprint FROM fingerprint WHERE key = ?", arguments: [key]) {
                return known == fingerprint
            }
            try db.execute(
                sql: "INSERT INTO fingerprint (key, fingerprint, created) VALUES (?, ?, ?)", arguments: [key, fingerprint, now])
            return true
        }
    }

    deinit { withExtendedLifetime(lock) {} }
}

/// Idempotency keys' rows in the gateway's SQLite file: outcomes survive a
/// restart. One gateway uses the file at a time, so a running row this
/// process does not hold is an earlier gateway's that stopped.
struct SQLiteKeyRecords: KeyRecords {
    let database: DatabaseQueue
    let clock: any QieClock

    func claim(_ key: String) async throws -> KeyRecord {
        let now = clock.now().timeIntervalSince1970
        let found: (state: String, result: Data?, error: String?)? = try await database.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT state, result, error FROM idempotency WHERE key = ?", arguments: [key]) {
                return (row["state"], row["result"], row["error"])
            }
            try db.execute(sql: "INSERT INTO idempotency (key, state, created) VALUES (?, 'running', ?)", arguments: [key, now])
            return nil
        }
        guard let found else { return .claimed }
        switch found.state {
        case "finished":
            if let data = found.result { return .finished(data) }
            return .failed(reason: "the first answer under this key could not be read back")
        case "failed":
            return .failed(reason: found.error ?? "no reason recorded")
        default:
            return .running(holder: "an earlier gateway", alive: false)
        }
    }

    func finish(_ key: String, _ outcome: KeptOutcome) async throws {
        try await database.write { db in
            switch outcome {
            case .finished(let answer):
                try db.execute(sql: "UPDATE idempotency SET state = 'finished', result = ? WHERE key = ?", arguments: [answer, key])
            case .failed(let reason):
                try db.execute(sql: "UPDATE idempotency SET state = 'failed', error = ? WHERE key = ?", arguments: [reason, key])
            }
        }
    }

    func release(_ key: String) async {
        _ = try? await database.write { db in
            try db.execute(sql: "DELETE FROM idempotency WHERE key = ? AND state = 'running'", arguments: [key])
        }
    }

    func markStopped(_ key: String, holder: String) async throws {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE idempotency SET state = 'failed', error = ? WHERE key = ? AND state = 'running'",
                arguments: [SQLiteGatewayStore.stoppedWhileEditing, key])
        }
    }
}

extension SQLiteGatewayStore {
    func addFile(_ image: EditedImage, lifetime: TimeInterval) async throws -> String {
        try await files.addFile(image, lifetime: lifetime)
    }

    func file(_ id: String) async throws -> (body: ByteBuffer, contentType: String)? {
        try await files.file(id)
    }
}

/// Result files (asked for as URLs, or kept for idempotency keys): files in
/// the state folder under unguessable ids, each with its content type and
/// expiry in the database.
struct SQLiteResultFiles: ResultFiles {
    let folder: String
    let database: DatabaseQueue
    let clock: any QieClock

    func addFile(_ image: EditedImage, lifetime: TimeInterval) async throws -> String {
        let id = SQLiteGatewayStore.newFileID()
        let name = "\(id).\(image.format.fileExtension)"
        // Written inside the state folder only, through no link, 0600.
        try OutputFolder(path: folder).write(image.data, to: SQLiteGatewayStore.filesFolder + "/" + name, isPrivate: true)
        let expires = clock.now().addingTimeInterval(lifetime).timeIntervalSince1970
        try await database.write { db in
            try db.execute(
                sql: "INSERT INTO files (id, name, contentType, expires) VALUES (?, ?, ?, ?)",
                arguments: [id, name, image.format.mimeType, expires])
        }
        return id
    }

    func file(_ id: String) async throws -> (body: ByteBuffer, contentType: String)? {
        guard SQLiteGatewayStore.isFileID(id) else { return nil }
        let row = try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT name, contentType, expires FROM files WHERE id = ?", arguments: [id])
        }
        guard let row, (row["expires"] as Double) > clock.now().timeIntervalSince1970,
            let data = try? OutputFolder(path: folder).read(SQLiteGatewayStore.filesFolder + "/" + (row["name"] as String))
        else { return nil }
        return (ByteBuffer(data: data), row["contentType"])
    }
}

extension SQLiteGatewayStore {

    func sweep(keyLifetime: TimeInterval) async throws {
        let now = clock.now().timeIntervalSince1970
        let expired = try await database.write { db in
            let names = try String.fetchAll(db, sql: "SELECT name FROM files WHERE expires <= ?", arguments: [now])
            try db.execute(sql: "DELETE FROM files WHERE expires <= ?", arguments: [now])
            let cutoff = now - keyLifetime
            try db.execute(sql: "DELETE FROM idempotency WHERE created <= ? AND state != 'running'", arguments: [cutoff])
            try db.execute(
                sql: """
                    DELETE FROM fingerprint WHERE created <= ?
                    AND key NOT IN (SELECT key FROM idempotency WHERE state = 'running')
                    """,
                arguments: [cutoff])
            return names
        }
        for name in expired { try? FileManager.default.removeItem(atPath: folder + "/files/" + name) }
    }

    var budgetLedger: any BudgetLedger { SQLiteBudgetLedger(database: database) }

    func close() async {}
}
