import Foundation
import NIOCore
import NIOFoundationCompat
import PostgresNIO
import QiePipeline
import QieStore
import Synchronization

/// The gateway's state in PostgreSQL, shared by replicas behind a load
/// balancer (`qie serve --state postgres://...`): an `Idempotency-Key`
/// retried on another replica gets the first answer, a result link works on
/// every replica, and the day's spending limit holds across all of them.
///
/// Each replica keeps a heartbeat row. An edit under a key records the
/// replica running it; a duplicate on any replica waits by reading the row
/// until it ends, and when the replica running it stopped beating for
/// `lease` seconds the key answers that the endpoint may have charged,
/// without sending again. Times are the server's, so the replicas' clocks
/// need not agree.
final class PostgresGatewayStore: GatewayStore {
    let database: QieStore.PostgresDatabase
    /// This replica's id in the heartbeat table.
    let replica: String
    /// Seconds without a heartbeat after which a replica counts as stopped.
    let lease: TimeInterval
    /// Times waits, retries and days.
    let clock: any QieClock
    /// Seconds the store's clock is ahead of the machine's: 0 for the
    /// system clock, so expiry is the server's own time.
    private var skew: Double { clock is SystemClock ? 0 : clock.now().timeIntervalSinceNow }
    let idempotency: any IdempotencyStore
    /// Renews this replica's row every third of the lease, from open to close.
    private let heartbeat = Mutex<Task<Void, Never>?>(nil)

    /// Connects to `url`, creates or migrates the gateway's tables (a newer
    /// qie's are refused) and registers this replica.
    static func open(
        url: PostgresURL, lease: TimeInterval, connections: Int, keyLifetime: TimeInterval = 86400, clock: any QieClock = SystemClock()
    ) async throws -> PostgresGatewayStore {
        let database = try QieStore.PostgresDatabase(url, maxConnections: max(4, connections))
        do {
            try await database.check()
            try await database.migrate(namespace: "gateway", migrations)
            let store = PostgresGatewayStore(database: database, lease: lease, keyLifetime: keyLifetime, clock: clock)
            try await database.query("INSERT INTO qie_gateway_replicas (id, seen) VALUES (\(store.replica), now())")
            store.startHeartbeat()
            return store
        } catch {
            await database.close()
            throw error
        }
    }

    private init(database: QieStore.PostgresDatabase, lease: TimeInterval, keyLifetime: TimeInterval, clock: any QieClock) {
        self.database = database
        self.lease = lease
        self.clock = clock
        // One process may open the store more than once (tests do): each is its own replica.
        replica = WorkerIdentity.current + "/" + UUID().uuidString.prefix(8).lowercased()
        idempotency = KeyedEdits(
            records: PostgresKeyRecords(database: database, replica: replica, lease: lease, clock: clock),
            files: PostgresResultFiles(database: database, clock: clock), lifetime: keyLifetime, clock: clock)
    }

    static let migrations: [(name: String, sql: [String])] = [
        (
            "v1",
            [
                "CREATE TABLE qie_gateway_replicas (id text PRIMARY KEY, seen timestamptz NOT NULL)",
                """
                CREATE TABLE qie_gateway_fingerprints (
                    key text PRIMARY KEY, fingerprint text NOT NULL, created timestamptz NOT NULL DEFAULT now())
                """,
                """
                CREATE TABLE qie_gateway_idempotency (
                    key text PRIMARY KEY, state text NOT NULL, result bytea, error text, replica text NOT NULL,
                    created timestamptz NOT NULL DEFAULT now())
                """,
                "CREATE INDEX qie_gateway_idempotency_age ON qie_gateway_idempotency (created)",
                """
                CREATE TABLE qie_gateway_files (
                    id text PRIMARY KEY, content_type text NOT NULL, bytes bytea NOT NULL, expires timestamptz NOT NULL)
                """,
                "CREATE INDEX qie_gateway_files_expiry ON qie_gateway_files (expires)",
                """
                CREATE TABLE qie_gateway_spending (
                    day text PRIMARY KEY, spent numeric NOT NULL DEFAULT 0, in_flight numeric NOT NULL DEFAULT 0)
                """,
            ]
        ),
        (
            // Each reservation a row until it settles, as the SQLite state
            // keeps them; money as micro-dollars. In-flight money of the old
            // table may have been billed: it is kept as spent.
            "v2",
            [
                "CREATE TABLE qie_gateway_budget_days (day text PRIMARY KEY, spent_micros bigint NOT NULL DEFAULT 0)",
                """
                CREATE TABLE qie_gateway_budget_reservations (
                    id text PRIMARY KEY, day text NOT NULL, micros bigint NOT NULL, replica text NOT NULL,
                    created timestamptz NOT NULL DEFAULT now())
                """,
                "CREATE INDEX qie_gateway_budget_reservations_day ON qie_gateway_budget_reservations (day)",
                """
                INSERT INTO qie_gateway_budget_days (day, spent_micros)
                SELECT day, ceil((spent + in_flight) * 1000000)::bigint FROM qie_gateway_spending
                """,
                "DROP TABLE qie_gateway_spending",
            ]
        ),
        ("v3", recordsMigration + PostgresBudgetLedger.migration),
    ]

    func bind(_ key: String, to fingerprint: String) async throws -> Bool {
        try await database.query(
            """
            INSERT INTO qie_gateway_fingerprints (key, fingerprint, created)
            VALUES (\(key), \(fingerprint), now() + make_interval(secs => \(skew))) ON CONFLICT (key) DO NOTHING
            """)
        let known = try await database.rows("SELECT fingerprint FROM qie_gateway_fingerprints WHERE key = \(key)") {
            try $0.decode(String.self)
        }
        return known.first == fingerprint
    }

    func addFile(_ image: EditedImage, lifetime: TimeInterval) async throws -> String {
        try await PostgresResultFiles(database: database, clock: clock).addFile(image, lifetime: lifetime)
    }

    func file(_ id: String) async throws -> (body: ByteBuffer, contentType: String)? {
        try await PostgresResultFiles(database: database, clock: clock).file(id)
    }

    var budgetLedger: any BudgetLedger { PostgresBudgetLedger(database: database, replica: replica) }

    // Every replica sweeps: each statement is safe to run twice.
    func sweep(keyLifetime: TimeInterval) async throws {
        let skew = self.skew
        try await database.query("DELETE FROM qie_gateway_files WHERE expires <= now() + make_interval(secs => \(skew))")
        try await database.query(
            """
            DELETE FROM qie_gateway_idempotency
            WHERE created <= now() + make_interval(secs => \(skew - keyLifetime)) AND state <> 'running'
            """)
        try await database.query(
            """
            DELETE FROM qie_gateway_fingerprints f WHERE created <= now() + make_interval(secs => \(skew - keyLifetime))
            AND NOT EXISTS (SELECT 1 FROM qie_gateway_idempotency i WHERE i.key = f.key AND i.state = 'running')
            """)
        // Replicas gone for a day: nothing of theirs can be running.
        try await database.query("DELETE FROM qie_gateway_replicas WHERE seen < now() - interval '1 day'")
    }

    private func startHeartbeat() {
        let (database, replica, beat) = (database, replica, max(0.2, lease / 3))
        heartbeat.withLock {
            $0 = Task {
                while !Task.isCancelled {
                    _ = try? await database.query("UPDATE qie_gateway_replicas SET seen = now() WHERE id = \(replica)")
                    try? await Task.sleep(for: .seconds(beat))
                }
            }
        }
    }

    func close() async {
        heartbeat.withLock { $0?.cancel() }
        // Edits this replica was running when it stopped may have been billed:
        // their keys answer with that at once instead of after the lease.
        let reason = Self.stoppedWhileEditing
        _ = try? await database.query(
            "UPDATE qie_gateway_idempotency SET state = 'failed', error = \(reason) WHERE replica = \(replica) AND state = 'running'")
        _ = try? await database.query("DELETE FROM qie_gateway_replicas WHERE id = \(replica)")
        await database.close()
    }
}

/// Idempotency keys' rows in PostgreSQL. A key is claimed by inserting its
/// row; a key another replica runs is `running` with whether that replica
/// still beats (by the server's clock).
struct PostgresKeyRecords: KeyRecords {
    let database: QieStore.PostgresDatabase
    let replica: String
    let lease: TimeInterval
    let clock: any QieClock

    /// Seconds the clock is ahead of the machine's (0 for the system clock).
    private var skew: Double { clock is SystemClock ? 0 : clock.now().timeIntervalSinceNow }

    func claim(_ key: String) async throws -> KeyRecord {
        while true {
            let inserted = try await database.rows(
                """
                INSERT INTO qie_gateway_idempotency (key, state, replica, created)
                VALUES (\(key), 'running', \(replica), now() + make_interval(secs => \(skew))) ON CONFLICT (key) DO NOTHING
                RETURNING key
                """
            ) { _ in true }
            if !inserted.isEmpty { return .claimed }
            let rows = try await database.rows(
                """
                SELECT i.state, i.result, i.error, i.replica, coalesce(r.seen > now() - make_interval(secs => \(lease)), false)
                FROM qie_gateway_idempotency i LEFT JOIN qie_gateway_replicas r ON r.id = i.replica WHERE i.key = \(key)
                """
            ) { try $0.decode((String, ByteBuffer?, String?, String, Bool).self) }
            // Released meanwhile: claim it again.
            guard let (state, result, error, holder, alive) = rows.first else { continue }
            switch state {
            case "finished":
                if let result { return .finished(Data(buffer: result)) }
                return .failed(reason: "the first answer under this key could not be read back")
            case "failed":
                return .failed(reason: error ?? "no reason recorded")
            default:
                return .running(holder: holder, alive: alive)
            }
        }
    }

    func finish(_ key: String, _ outcome: KeptOutcome) async throws {
        switch outcome {
        case .finished(let answer):
            await persist(
                "UPDATE qie_gateway_idempotency SET state = 'finished', result = \(ByteBuffer(data: answer)) WHERE key = \(key)")
        case .failed(let reason):
            await persist("UPDATE qie_gateway_idempotency SET state = 'failed', error = \(reason) WHERE key = \(key)")
        }
    }

    func release(_ key: String) async {
        await persist("DELETE FROM qie_gateway_idempotency WHERE key = \(key) AND state = 'running' AND replica = \(replica)")
    }

    func markStopped(_ key: String, holder: String) async throws {
        let reason = PostgresGatewayStore.stoppedWhileEditing
        try await database.query(
            """
            UPDATE qie_gateway_idempotency SET state = 'failed', error = \(reason)
            WHERE key = \(key) AND state = 'running' AND replica = \(holder)
            """)
    }

    /// Runs `query`, trying again for a few seconds while the server cannot
    /// be reached: duplicates on every replica wait for this row. Given up,
    /// the row stays running until this replica stops, and then answers that
    /// the endpoint may have charged.
    private func persist(_ query: PostgresQuery) async {
        for pause in [0.2, 0.5, 1, 2, 0] {
            do {
                try await database.query(query)
                return
            } catch {
                if pause == 0 || Task.isCancelled { return }
                try? await clock.sleep(for: pause)
            }
        }
    }
}

/// Result files (asked for as URLs, or kept for idempotency keys) in the
/// shared database, so any replica serves them.
struct PostgresResultFiles: ResultFiles {
    let database: QieStore.PostgresDatabase
    let clock: any QieClock

    /// Seconds the clock is ahead of the machine's (0 for the system clock).
    private var skew: Double { clock is SystemClock ? 0 : clock.now().timeIntervalSinceNow }

    func addFile(_ image: EditedImage, lifetime: TimeInterval) async throws -> String {
        let id = PostgresGatewayStore.newFileID()
        let type = image.format.mimeType
        try await database.query(
            """
            INSERT INTO qie_gateway_files (id, content_type, bytes, expires)
            VALUES (\(id), \(type), \(ByteBuffer(data: image.data)), now() + make_interval(secs => \(skew + lifetime)))
            """)
        return id
    }

    func file(_ id: String) async throws -> (body: ByteBuffer, contentType: String)? {
        guard PostgresGatewayStore.isFileID(id) else { return nil }
        return try await database.rows(
            "SELECT bytes, content_type FROM qie_gateway_files WHERE id = \(id) AND expires > now() + make_interval(secs => \(skew))"
        ) { row in
            let (bytes, type) = try row.decode((ByteBuffer, String).self)
            return (body: bytes, contentType: type)
        }.first
    }
}
