import Foundation
import Logging
import PostgresNIO
import QieCore

/// The run store on PostgreSQL, shared by workers on several machines
/// (`qie edit --ledger postgres://...`). One database holds any number of
/// runs, each under its `scope` (the output folder's absolute path, the same
/// on every machine: the folder is shared). Leases are timed by the server's
/// clock, so the workers' clocks need not agree. Every move is one statement
/// or one transaction; a killed worker leaves nothing half-written.
public final class PostgresStore: RunStore {
    /// The run's scope: the output folder's absolute path.
    public let scope: String
    /// The connection pool.
    public let database: PostgresDatabase
    /// Where leases are timed from: the server's clock, moved on by how far
    /// this clock is from the machine's (nothing, for `SystemClock`), so a
    /// test's `ManualClock` moves leases on both stores alike.
    public let clock: any QieClock
    private let ownsDatabase: Bool

    /// Where the store is, for messages (no password).
    public var location: String { "\(database.url) (run \(scope))" }

    /// Opens the store at `url` for the run whose output folder is `scope`,
    /// creating or migrating its tables; `StoreError.newer` when a newer qie
    /// wrote them. At most `maxConnections` connections are opened.
    public static func open(
        url: PostgresURL, scope: String, maxConnections: Int = 10, clock: any QieClock = SystemClock()
    ) async throws -> PostgresStore {
        // Each move is one short statement or transaction: ten connections keep
        // a worker's jobs moving, and leave room on a server's default 100
        // for several workers and gateway replicas.
        let database = try PostgresDatabase(url, maxConnections: maxConnections)
        do {
            try await database.check()
            try await database.migrate(namespace: "runs", migrations)
        } catch {
            await database.close()
            throw error
        }
        return PostgresStore(database: database, scope: scope, clock: clock, ownsDatabase: true)
    }

    private init(database: PostgresDatabase, scope: String, clock: any QieClock, ownsDatabase: Bool) {
        self.database = database
        self.scope = scope
        self.clock = clock
        self.ownsDatabase = ownsDatabase
    }

    /// Seconds the store's clock is ahead of the machine's: 0 for the
    /// system clock, so leases are the server's own time.
    private var skew: Double { clock is SystemClock ? 0 : clock.now().timeIntervalSinceNow }

    /// Closes the pool.
    public func close() async { if ownsDatabase { await database.close() } }

    static let migrations: [(name: String, sql: [String])] = [
        (
            "v1",
            [
                """
                CREATE TABLE qie_runs (
                    id bigserial PRIMARY KEY, scope text NOT NULL, arguments text NOT NULL, directory text NOT NULL,
                    started_at double precision NOT NULL, configuration text, configuration_version integer)
                """,
                "CREATE INDEX qie_runs_scope ON qie_runs (scope, id)",
                """
                CREATE TABLE qie_jobs (
                    id bigserial PRIMARY KEY, scope text NOT NULL, key text NOT NULL, input_path text NOT NULL,
                    input_sha256 text NOT NULL, input_size bigint NOT NULL, input_modified double precision NOT NULL,
                    copy integer NOT NULL, endpoint text NOT NULL, prompt text NOT NULL, options text NOT NULL,
                    state text NOT NULL, request_id text, result_urls text, attempts integer NOT NULL DEFAULT 0,
                    polls integer NOT NULL DEFAULT 0, outputs text, estimated_cost text, reported_cost text, error text,
                    created_at double precision NOT NULL, updated_at double precision NOT NULL,
                    worker text, lease_until timestamptz, UNIQUE (scope, key))
                """,
                "CREATE INDEX qie_jobs_by_input ON qie_jobs (scope, input_path, input_size, input_modified)",
                "CREATE INDEX qie_jobs_by_state ON qie_jobs (scope, state)",
                "CREATE INDEX qie_jobs_by_worker ON qie_jobs (worker) WHERE lease_until IS NOT NULL",
            ]
        ),
        (
            // Money as integer micro-dollars (amounts that were not decimal
            // text are dropped, as the SQLite ledger's migration drops them),
            // and the states of the money model.
            "v2",
            [
                """
                ALTER TABLE qie_jobs ADD COLUMN estimated_micros bigint, ADD COLUMN reported_micros bigint,
                ADD COLUMN earlier_micros bigint NOT NULL DEFAULT 0
                """,
                """
                UPDATE qie_jobs SET estimated_micros = CASE WHEN estimated_cost ~ '\(MicroDollars.pattern)'
                    THEN ceil(estimated_cost::numeric * 1000000)::bigint END,
                reported_micros = CASE WHEN reported_cost ~ '\(MicroDollars.pattern)'
                    THEN ceil(reported_cost::numeric * 1000000)::bigint END
                """,
            ] + JobState.migratingEarlierStates(table: "qie_jobs", resultURLs: "result_urls", requestID: "request_id") + [
                "ALTER TABLE qie_jobs DROP COLUMN estimated_cost, DROP COLUMN reported_cost"
            ]
        ),
    ]

    private static let columns = """
        id, key, input_path, input_sha256, input_size, input_modified, copy, endpoint, prompt, options, state, request_id,
        result_urls, attempts, polls, outputs, estimated_micros, reported_micros, earlier_micros, error, created_at,
        updated_at, worker
        """

    private static func job(_ row: PostgresRow) throws -> LedgerJob {
        let cells = row.makeRandomAccess()
        func value<T: PostgresDecodable>(_ name: String, _ type: T.Type) throws -> T { try cells[name].decode(T.self) }
        var job = LedgerJob(
            key: try value("key", String.self), inputPath: try value("input_path", String.self),
            inputSHA256: try value("input_sha256", String.self), inputSize: try value("input_size", Int64.self),
            inputModified: try value("input_modified", Double.self), copy: Int(try value("copy", Int32.self)),
            endpoint: try value("endpoint", String.self), prompt: try value("prompt", String.self),
            options: try value("options", String.self))
        job.id = try value("id", Int64.self)
        job.state = JobState(rawValue: try value("state", String.self)) ?? .pending
        job.requestID = try value("request_id", String?.self)
        job.resultURLs = try value("result_urls", String?.self)
        job.attempts = Int(try value("attempts", Int32.self))
        job.polls = Int(try value("polls", Int32.self))
        job.outputs = try value("outputs", String?.self)
        job.estimatedCost = MicroDollars.decimal(try value("estimated_micros", Int64?.self))
        job.reportedCost = MicroDollars.decimal(try value("reported_micros", Int64?.self))
        job.earlierCost = MicroDollars.decimal(try value("earlier_micros", Int64.self))
        job.error = try value("error", String?.self)
        job.createdAt = try value("created_at", Double.self)
        job.updatedAt = try value("updated_at", Double.self)
        job.worker = try value("worker", String?.self)
        return job
    }

    private func jobs(_ query: PostgresQuery) async throws -> [LedgerJob] { try await database.rows(query, Self.job) }

    private var now: Double { clock.now().timeIntervalSince1970 }

    // MARK: Runs

    /// Records a run under the scope.
    @discardableResult
    public func recordRun(configuration: String?, version: Int?, arguments: [String], directory: String) async throws -> LedgerRun {
        let text = String(decoding: try JSONEncoder().encode(arguments), as: UTF8.self)
        let started = now
        let versionNumber = version.map(Int32.init)
        let ids = try await database.rows(
            """
            INSERT INTO qie_runs (scope, arguments, directory, started_at, configuration, configuration_version)
            VALUES (\(scope), \(text), \(directory), \(started), \(configuration), \(versionNumber)) RETURNING id
            """
        ) { try $0.decode(Int64.self) }
        return LedgerRun(
            id: ids.first, arguments: text, directory: directory, startedAt: started, configuration: configuration,
            configurationVersion: version)
    }

    /// The newest run under the scope.
    public func lastRun() async throws -> LedgerRun? {
        try await database.rows(
            """
            SELECT id, arguments, directory, started_at, configuration, configuration_version FROM qie_runs
            WHERE scope = \(scope) ORDER BY id DESC LIMIT 1
            """
        ) { row in
            let (id, arguments, directory, started, configuration, version) = try row.decode(
                (Int64, String, String, Double, String?, Int32?).self)
            return LedgerRun(
                id: id, arguments: arguments, directory: directory, startedAt: started, configuration: configuration,
                configurationVersion: version.map(Int.init))
        }.first
    }

    // MARK: Jobs

    /// The job with `job`'s key under the scope, registering it as pending if new.
    public func register(_ job: LedgerJob) async throws -> LedgerJob {
        let now = self.now
        let copy = Int32(job.copy)
        // Insert, or touch nothing and read the row already there: one round trip either way.
        let found = try await jobs(
            """
            WITH inserted AS (
                INSERT INTO qie_jobs (scope, key, input_path, input_sha256, input_size, input_modified, copy, endpoint, prompt,
                    options, state, created_at, updated_at)
                VALUES (\(scope), \(job.key), \(job.inputPath), \(job.inputSHA256), \(job.inputSize), \(job.inputModified),
                    \(copy), \(job.endpoint), \(job.prompt), \(job.options), 'pending', \(now), \(now))
                ON CONFLICT (scope, key) DO NOTHING RETURNING \(unescaped: Self.columns))
            SELECT \(unescaped: Self.columns) FROM inserted
            UNION ALL SELECT \(unescaped: Self.columns) FROM qie_jobs WHERE scope = \(scope) AND key = \(job.key)
            LIMIT 1
            """)
        if let row = found.first { return row }
        // Another worker inserted the key after this statement's snapshot was
        // taken (its insert won the conflict): a new statement sees its row.
        guard
            let row = try await jobs(
                "SELECT \(unescaped: Self.columns) FROM qie_jobs WHERE scope = \(scope) AND key = \(job.key)"
            ).first
        else {
            throw StoreError.unavailable(location: location, reason: "job \(job.key) was not recorded")
        }
        return row
    }

    /// The hash recorded for an unchanged file.
    public func knownHash(path: String, size: Int64, modified: Double) async throws -> String? {
        try await database.rows(
            """
            SELECT input_sha256 FROM qie_jobs WHERE scope = \(scope) AND input_path = \(path) AND input_size = \(size)
            AND input_modified = \(modified) LIMIT 1
            """
        ) { try $0.decode(String.self) }.first
    }

    /// The job with row id `id`.
    public func job(id: Int64) async throws -> LedgerJob? {
        try await jobs("SELECT \(unescaped: Self.columns) FROM qie_jobs WHERE id = \(id) AND scope = \(scope)").first
    }

    /// A page of jobs after row id `id`.
    public func jobs(after id: Int64, limit: Int) async throws -> [LedgerJob] {
        try await jobs(
            "SELECT \(unescaped: Self.columns) FROM qie_jobs WHERE scope = \(scope) AND id > \(id) ORDER BY id LIMIT \(limit)")
    }

    /// Removes job `id`.
    public func forget(_ id: Int64) async throws {
        try await database.query("DELETE FROM qie_jobs WHERE id = \(id) AND scope = \(scope)")
    }

    // MARK: Leases

    /// Takes job `id` for `worker`, by the server's clock.
    public func claim(_ id: Int64, worker: String, lease: Double) async throws -> LedgerJob? {
        try await jobs(
            """
            UPDATE qie_jobs SET worker = \(worker), lease_until = now() + make_interval(secs => \(skew + lease))
            WHERE id = \(id) AND scope = \(scope) AND state <> 'completed'
            AND (lease_until IS NULL OR lease_until <= now() + make_interval(secs => \(skew)) OR worker = \(worker))
            RETURNING \(unescaped: Self.columns)
            """
        ).first
    }

    /// Extends `worker`'s leases.
    public func renew(worker: String, lease: Double) async throws {
        try await database.query(
            """
            UPDATE qie_jobs SET lease_until = now() + make_interval(secs => \(skew + lease))
            WHERE worker = \(worker) AND scope = \(scope) AND lease_until IS NOT NULL
            """)
    }

    /// Points job `id` at `endpoint` under `worker`'s lease (see `RunStore.route`).
    public func route(_ id: Int64, to endpoint: String, worker: String) async throws {
        let moved = try await database.rows(
            """
            UPDATE qie_jobs SET endpoint = \(endpoint), updated_at = \(now)
            WHERE id = \(id) AND scope = \(scope) AND worker = \(worker)
            AND lease_until > now() + make_interval(secs => \(skew)) RETURNING id
            """
        ) { _ in () }
        if moved.isEmpty { throw StoreError.leaseLost(job: id) }
    }

    /// Gives up `worker`'s lease on job `id`.
    public func release(_ id: Int64, worker: String) async throws {
        try await database.query("UPDATE qie_jobs SET lease_until = NULL WHERE id = \(id) AND scope = \(scope) AND worker = \(worker)")
    }

    /// Who holds job `id`.
    public func lease(of id: Int64) async throws -> JobLease? {
        try await database.rows(
            """
            SELECT state, worker, lease_until IS NOT NULL, COALESCE(lease_until > now() + make_interval(secs => \(skew)), false)
            FROM qie_jobs
            WHERE id = \(id) AND scope = \(scope)
            """
        ) { row in
            let (state, worker, isSet, isLive) = try row.decode((String, String?, Bool, Bool).self)
            return JobLease(state: JobState(rawValue: state) ?? .pending, worker: worker, isSet: isSet, isLive: isLive)
        }.first
    }

    /// Ends every lease of the run.
    public func releaseAll() async throws {
        try await database.query("UPDATE qie_jobs SET lease_until = NULL WHERE scope = \(scope) AND lease_until IS NOT NULL")
    }

    // MARK: Moves

    /// Records `move` of job `id` (see `RunStore.record`).
    public func record(_ move: JobMove, job id: Int64, worker: String, limit: Decimal?) async throws {
        let now = self.now
        guard case .sending(let estimate, let carried) = move else {
            let moved = try await database.rows(Self.change(move, now: now, id: id, scope: scope)) { _ in () }
            if moved.isEmpty { throw StoreError.noJob(id) }
            return
        }
        let (scope, skew, logger) = (scope, skew, database.logger)
        let (estimated, earlier) = (MicroDollars.from(estimate), MicroDollars.from(carried))
        let sending: PostgresQuery = """
            UPDATE qie_jobs SET state = 'sending', estimated_micros = \(estimated), reported_micros = NULL,
            earlier_micros = earlier_micros + \(earlier), request_id = NULL, result_urls = NULL, error = NULL,
            attempts = attempts + 1, updated_at = \(now)
            WHERE id = \(id) AND scope = \(scope) AND worker = \(worker)
            AND lease_until > now() + make_interval(secs => \(skew)) RETURNING id
            """
        guard let limit else {
            // No limit to check: one statement, under the lease.
            let moved = try await database.rows(sending) { _ in () }
            if moved.isEmpty { throw try await lease(of: id) == nil ? StoreError.noJob(id) : StoreError.leaseLost(job: id) }
            return
        }
        try await database.transaction { connection in
            // One sender at a time per run checks the money: workers never pass the limit together.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(scope), 7151))", logger: logger)
            var moved = false
            for try await _ in try await connection.query(sending, logger: logger) { moved = true }
            guard moved else {
                var exists = false
                for try await _ in try await connection.query(
                    "SELECT 1 FROM qie_jobs WHERE id = \(id) AND scope = \(scope)", logger: logger
                ) {
                    exists = true
                }
                throw exists ? StoreError.leaseLost(job: id) : StoreError.noJob(id)
            }
            // Checked with the move in place: a throw rolls it back.
            var money = RunMoney()
            for try await (billed, atRisk, earlier, unpriced) in try await connection.query(
                PostgresQuery(unsafeSQL: Self.moneyQuery, binds: Self.scopeBinds(scope)), logger: logger
            ).decode((Int64, Int64, Int64, Int64).self) {
                money = RunMoney(micros: billed, atRisk: atRisk, earlier: earlier, unpriced: unpriced)
            }
            if money.committed > limit {
                let amount = estimate ?? 0
                throw StoreError.costLimit(
                    limit: limit, spent: money.billed + money.earlier, inFlight: money.atRisk - amount, estimate: amount)
            }
        }
    }

    /// The statement recording `move` (all but `sending`), returning the row's id.
    private static func change(_ move: JobMove, now: Double, id: Int64, scope: String) -> PostgresQuery {
        let state = move.state.rawValue
        switch move {
        case .sending:
            preconditionFailure("sending is recorded under its lease")
        case .accepted(let requestID, let extra):
            let extraAttempts = Int32(extra)
            return """
                UPDATE qie_jobs SET state = \(state), request_id = \(requestID), attempts = attempts + \(extraAttempts),
                updated_at = \(now) WHERE id = \(id) AND scope = \(scope) RETURNING id
                """
        case .answered(let requestID, let results, let cost, let extra, let polls):
            let urls = results.isEmpty ? nil : Self.json(results)
            let (reported, extraAttempts, polled) = (MicroDollars.from(cost), Int32(extra), Int32(polls))
            return """
                UPDATE qie_jobs SET state = \(state), request_id = COALESCE(\(requestID), request_id), result_urls = \(urls),
                reported_micros = \(reported), attempts = attempts + \(extraAttempts), polls = polls + \(polled),
                updated_at = \(now) WHERE id = \(id) AND scope = \(scope) RETURNING id
                """
        case .completed(let outputs, let cost, let polls):
            let (list, reported, polled) = (Self.json(outputs), MicroDollars.from(cost), Int32(polls))
            return """
                UPDATE qie_jobs SET state = \(state), outputs = \(list), reported_micros = COALESCE(\(reported), reported_micros),
                error = NULL, polls = polls + \(polled), lease_until = NULL, updated_at = \(now)
                WHERE id = \(id) AND scope = \(scope) RETURNING id
                """
        case .failed(let reason, let extra), .uncertain(let reason, let extra):
            let extraAttempts = Int32(extra)
            return """
                UPDATE qie_jobs SET state = \(state), error = \(reason), attempts = attempts + \(extraAttempts),
                lease_until = NULL, updated_at = \(now) WHERE id = \(id) AND scope = \(scope) RETURNING id
                """
        case .lost(let reason, let keep, let polls):
            let polled = Int32(polls)
            return """
                UPDATE qie_jobs SET state = \(state), error = \(reason), result_urls = CASE WHEN \(keep) THEN result_urls END,
                polls = polls + \(polled), lease_until = NULL, updated_at = \(now) WHERE id = \(id) AND scope = \(scope) RETURNING id
                """
        case .waiting(let reason, let polls), .cancelled(let reason, let polls):
            let polled = Int32(polls)
            return """
                UPDATE qie_jobs SET state = \(state), error = \(reason), polls = polls + \(polled), lease_until = NULL,
                updated_at = \(now) WHERE id = \(id) AND scope = \(scope) RETURNING id
                """
        }
    }

    private static func json(_ list: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(list)) ?? Data("[]".utf8), as: UTF8.self)
    }

    /// Deletes the run's jobs and runs from the database (the other runs'
    /// are untouched): for a benchmark's or a test's scratch run.
    public func removeRun() async throws {
        try await database.query("DELETE FROM qie_jobs WHERE scope = \(scope)")
        try await database.query("DELETE FROM qie_runs WHERE scope = \(scope)")
    }

    // MARK: Money and counts

    /// The one money query (`RunMoney.query`), for the scope bound as $1.
    private static let moneyQuery = RunMoney.query(
        table: "qie_jobs", estimated: "estimated_micros", reported: "reported_micros", earlier: "earlier_micros",
        filter: "scope = $1")

    private static func scopeBinds(_ scope: String) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(scope)
        return binds
    }

    /// The run's money, by the one definition (`RunMoney.query`).
    public func money() async throws -> RunMoney {
        try await database.rows(PostgresQuery(unsafeSQL: Self.moneyQuery, binds: Self.scopeBinds(scope))) { row in
            let (billed, atRisk, earlier, unpriced) = try row.decode((Int64, Int64, Int64, Int64).self)
            return RunMoney(micros: billed, atRisk: atRisk, earlier: earlier, unpriced: unpriced)
        }.first ?? RunMoney()
    }

    /// Counts by state, submissions, polls and the run's money.
    public func summary() async throws -> LedgerSummary {
        var summary = LedgerSummary()
        let states = try await database.rows(
            """
            SELECT state, COUNT(*), COALESCE(SUM(attempts), 0), COALESCE(SUM(polls), 0) FROM qie_jobs
            WHERE scope = \(scope) GROUP BY state
            """
        ) { try $0.decode((String, Int64, Int64, Int64).self) }
        for (state, count, attempts, polls) in states {
            summary.byState[state] = Int(count)
            summary.jobs += Int(count)
            summary.submissions += Int(attempts)
            summary.polls += Int(polls)
        }
        summary.money = try await money()
        return summary
    }
}
