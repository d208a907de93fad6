import Foundation
import GRDB
import QieCore
import QieFiles

/// One row of the ledger: one paid request (one input, one copy).
public struct LedgerJob: Sendable, Codable, Equatable, FetchableRecord, MutablePersistableRecord {
    /// The table's name.
    public static let databaseTableName = "jobs"

    /// The row id; nil until the job is registered.
    public var id: Int64?
    /// The job's identity: the input's content, the endpoint and every option
    /// that changes the result (see `JobKey`).
    public var key: String
    /// The input file's path, as the run named it.
    public var inputPath: String
    /// The input's SHA-256, in hex.
    public var inputSHA256: String
    /// The input's size in bytes when it was hashed.
    public var inputSize: Int64
    /// The input's modification time when it was hashed, in seconds since 1970.
    public var inputModified: Double
    /// 0 for a single request, 1... for repeated requests (several images asked of an endpoint without a count field).
    public var copy: Int
    /// The id of the endpoint the job goes to.
    public var endpoint: String
    /// The prompt sent.
    public var prompt: String
    /// The options that change the result, as canonical JSON.
    public var options: String
    /// Where the job stands.
    public var state: JobState
    /// The endpoint's id for the job, once it accepted it.
    public var requestID: String?
    /// Result URLs (JSON array) a synchronous answer gave, fetched on resume.
    public var resultURLs: String?
    /// Submissions sent for this job, over all runs.
    public var attempts: Int
    /// Status polls sent for it, over all runs.
    public var polls: Int
    /// Output files (JSON array).
    public var outputs: String?
    /// The current attempt's estimate, USD (stored as micro-dollars, rounded up).
    public var estimatedCost: Decimal?
    /// What the endpoint reported for the current attempt, USD.
    public var reportedCost: Decimal?
    /// What earlier attempts may have been billed, USD: an uncertain or lost
    /// job sent again keeps its first attempt's money counted here.
    public var earlierCost: Decimal = 0
    /// The last error, for failed jobs and jobs that will be asked about again.
    public var error: String?
    /// When the job was registered, in seconds since 1970.
    public var createdAt: Double
    /// When the job last changed, in seconds since 1970.
    public var updatedAt: Double
    /// The worker that last claimed the job (see `RunStore.claim`).
    public var worker: String?

    /// A new job, pending, as `Ledger.register` takes it.
    public init(
        key: String, inputPath: String, inputSHA256: String, inputSize: Int64, inputModified: Double, copy: Int,
        endpoint: String, prompt: String, options: String
    ) {
        self.key = key
        self.inputPath = inputPath
        self.inputSHA256 = inputSHA256
        self.inputSize = inputSize
        self.inputModified = inputModified
        self.copy = copy
        self.endpoint = endpoint
        self.prompt = prompt
        self.options = options
        state = .pending
        attempts = 0
        polls = 0
        createdAt = 0
        updatedAt = 0
        worker = nil
    }

    /// The output files, decoded from `outputs`.
    public var outputPaths: [String] { outputs.flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? [] }
    /// The result URLs, decoded from `resultURLs`.
    public var resultURLList: [String] {
        resultURLs.flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? []
    }

    /// The current attempt's amount: reported where the endpoint reported, else estimated.
    public var cost: Decimal? { reportedCost ?? estimatedCost }

    /// Keeps the row id after an insert.
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    // Amounts are stored as integer micro-dollars (`estimatedMicros`,
    // `reportedMicros`, `earlierMicros`), so sums are exact in SQL.
    private enum StoredColumn: String, ColumnExpression {
        case id, key, inputPath, inputSHA256, inputSize, inputModified, copy, endpoint, prompt, options, state, requestID
        case resultURLs, attempts, polls, outputs, estimatedMicros, reportedMicros, earlierMicros, error, createdAt
        case updatedAt, worker
    }

    /// A job read from its row.
    public init(row: Row) throws {
        id = row[StoredColumn.id]
        key = row[StoredColumn.key]
        inputPath = row[StoredColumn.inputPath]
        inputSHA256 = row[StoredColumn.inputSHA256]
        inputSize = row[StoredColumn.inputSize]
        inputModified = row[StoredColumn.inputModified]
        copy = row[StoredColumn.copy]
        endpoint = row[StoredColumn.endpoint]
        prompt = row[StoredColumn.prompt]
        options = row[StoredColumn.options]
        let stateText: String = row[StoredColumn.state]
        state = JobState(rawValue: stateText) ?? .pending
        requestID = row[StoredColumn.requestID]
        resultURLs = row[StoredColumn.resultURLs]
        attempts = row[StoredColumn.attempts]
        polls = row[StoredColumn.polls]
        outputs = row[StoredColumn.outputs]
        estimatedCost = MicroDollars.decimal(row[StoredColumn.estimatedMicros] as Int64?)
        reportedCost = MicroDollars.decimal(row[StoredColumn.reportedMicros] as Int64?)
        earlierCost = MicroDollars.decimal((row[StoredColumn.earlierMicros] as Int64?) ?? 0)
        error = row[StoredColumn.error]
        createdAt = row[StoredColumn.createdAt]
        updatedAt = row[StoredColumn.updatedAt]
        worker = row[StoredColumn.worker]
    }

    /// The job's row.
    public func encode(to container: inout PersistenceContainer) throws {
        container[StoredColumn.id] = id
        container[StoredColumn.key] = key
        container[StoredColumn.inputPath] = inputPath
        container[StoredColumn.inputSHA256] = inputSHA256
        container[StoredColumn.inputSize] = inputSize
        container[StoredColumn.inputModified] = inputModified
        container[StoredColumn.copy] = copy
        container[StoredColumn.endpoint] = endpoint
        container[StoredColumn.prompt] = prompt
        container[StoredColumn.options] = options
        container[StoredColumn.state] = state.rawValue
        container[StoredColumn.requestID] = requestID
        container[StoredColumn.resultURLs] = resultURLs
        container[StoredColumn.attempts] = attempts
        container[StoredColumn.polls] = polls
        container[StoredColumn.outputs] = outputs
        container[StoredColumn.estimatedMicros] = MicroDollars.from(estimatedCost)
        container[StoredColumn.reportedMicros] = MicroDollars.from(reportedCost)
        container[StoredColumn.earlierMicros] = MicroDollars.from(earlierCost)
        container[StoredColumn.error] = error
        container[StoredColumn.createdAt] = createdAt
        container[StoredColumn.updatedAt] = updatedAt
        container[StoredColumn.worker] = worker
    }
}

/// A run into the folder: its stored configuration (to resume it), and the
/// command line it was started with, for people.
public struct LedgerRun: Sendable, Codable, Equatable, FetchableRecord, MutablePersistableRecord {
    /// The table's name.
    public static let databaseTableName = "runs"
    /// The row id.
    public var id: Int64?
    /// The command line's arguments as a JSON array (never a key: keys come
    /// from the environment); `[]` when the run was not started from one.
    public var arguments: String
    /// The working directory the run's relative paths are resolved against.
    public var directory: String
    /// When it started, seconds since 1970.
    public var startedAt: Double
    /// The run's configuration as JSON; nil in ledgers written before
    /// configurations were stored (those record only the arguments).
    public var configuration: String?
    /// The configuration's format version.
    public var configurationVersion: Int?

    /// The command line's arguments, without the password of any
    /// PostgreSQL URL among them (an earlier qie may have recorded one).
    public var argumentList: [String] {
        ((try? JSONDecoder().decode([String].self, from: Data(arguments.utf8))) ?? []).map(PostgresURL.redacting)
    }
    /// Keeps the row id after an insert.
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A ledger that cannot be used.
public enum LedgerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Written by a newer qie, with a layout this one does not know.
    case newer(path: String)

    /// What is wrong and what to do.
    public var description: String {
        switch self {
        case .newer(let path): "\(path) was written by a newer qie; use that version (or a new output folder)"
        }
    }
}

/// Counts and money over the ledger.
public struct LedgerSummary: Sendable, Codable, Equatable {
    /// Jobs in the ledger.
    public var jobs = 0
    /// Jobs per state, keyed by the state's raw value.
    public var byState: [String: Int] = [:]
    /// The run's money: billed, at risk, earlier attempts, unpriced jobs.
    public var money = RunMoney()
    /// Submissions sent, over all jobs and runs.
    public var submissions = 0
    /// Status polls sent, over all jobs and runs.
    public var polls = 0
}

/// The run ledger: a SQLite file in the output folder (WAL journal), one row
/// per job. It survives a killed process: each state change is its own
/// committed transaction, and SQLite's journal makes a half-written change
/// vanish rather than corrupt the file. One machine's store: the output
/// folder's lock keeps a second run out (`PostgresStore` is the shared one).
public final class Ledger: RunStore {
    /// The file's name inside the output folder (hidden, so folder walks skip it).
    public static let fileName = ".qie-ledger.sqlite"

    /// The ledger file's path.
    public let path: String
    /// Where the store is, for messages.
    public var location: String { path }
    /// Times leases and records.
    public let clock: any QieClock
    private let database: DatabaseQueue

    /// Opens (creating if needed) the ledger of `folder`; leases are timed by `clock`.
    public init(folder: String, clock: any QieClock = SystemClock()) throws {
        path = (folder as NSString).appendingPathComponent(Self.fileName)
        self.clock = clock
        // Readable by the user only (it holds prompts, job ids and result
        // URLs), and never a link: SQLite opens it, and its journals, by
        // name, so they are checked before and after it does.
        let identity = try PrivateFile.prepare(path)
        guard !Self.isNewer(path) else { throw LedgerError.newer(path: path) }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // WAL: a commit is one append; NORMAL sync is durable against a
            // killed process (not against power loss, like the outputs).
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        database = try DatabaseQueue(path: path, configuration: configuration)
        try PrivateFile.confirm(path, is: identity)
        try Self.migrator.migrate(database)
    }

    /// Whether the ledger at `path` was written by a newer qie (it has
    /// migrations this one does not know).
    private static func isNewer(_ path: String) -> Bool {
        guard FileManager.default.fileExists(atPath: path), let queue = try? DatabaseQueue(path: path) else { return false }
        return (try? queue.read { db in try migrator.hasBeenSuperseded(db) }) ?? false
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "runs") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("arguments", .text).notNull()
                t.column("directory", .text).notNull()
                t.column("startedAt", .double).notNull()
            }
            try db.create(table: "jobs") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("key", .text).notNull().unique()
                t.column("inputPath", .text).notNull()
                t.column("inputSHA256", .text).notNull()
                t.column("inputSize", .integer).notNull()
                t.column("inputModified", .double).notNull()
                t.column("copy", .integer).notNull()
                t.column("endpoint", .text).notNull()
                t.column("prompt", .text).notNull()
                t.column("options", .text).notNull()
                t.column("state", .text).notNull().indexed()
                t.column("requestID", .text)
                t.column("resultURLs", .text)
                t.column("attempts", .integer).notNull()
                t.column("outputs", .text)
                t.column("estimatedCost", .text)
                t.column("reportedCost", .text)
                t.column("error", .text)
                t.column("createdAt", .double).notNull()
                t.column("updatedAt", .double).notNull()
            }
            try db.create(index: "jobs_by_input", on: "jobs", columns: ["inputPath", "inputSize", "inputModified"])
        }
        // Runs store their configuration, so a run resumes from data rather
        // than by parsing a command line again.
        migrator.registerMigration("v2") { db in
            try db.alter(table: "runs") { t in
                t.add(column: "configuration", .text)
                t.add(column: "configurationVersion", .integer)
            }
        }
        // Polls per job, to see how quickly finished jobs are noticed.
        migrator.registerMigration("v3") { db in
            try db.alter(table: "jobs") { t in t.add(column: "polls", .integer).notNull().defaults(to: 0) }
        }
        // Leases, so the same rules hold as in a store shared by workers.
        migrator.registerMigration("v4") { db in
            try db.alter(table: "jobs") { t in
                t.add(column: "worker", .text)
                t.add(column: "leaseUntil", .double)
            }
        }
        // Money as integer micro-dollars, and the states every store shares
        // (sending, accepted, answered, lost). Amounts that were not decimal
        // text are dropped, as the PostgreSQL store's migration drops them.
        migrator.registerMigration("v5: money as micro-dollars, states of the money model") { db in
            try db.alter(table: "jobs") { t in
                t.add(column: "estimatedMicros", .integer)
                t.add(column: "reportedMicros", .integer)
                t.add(column: "earlierMicros", .integer).notNull().defaults(to: 0)
            }
            let rows = try Row.fetchAll(db, sql: "SELECT id, estimatedCost, reportedCost FROM jobs")
            for row in rows {
                let estimated = MicroDollars.parse(row["estimatedCost"])
                let reported = MicroDollars.parse(row["reportedCost"])
                guard estimated != nil || reported != nil else { continue }
                try db.execute(
                    sql: "UPDATE jobs SET estimatedMicros = ?, reportedMicros = ? WHERE id = ?",
                    arguments: [estimated, reported, row["id"] as Int64])
            }
            for statement in JobState.migratingEarlierStates(table: "jobs", resultURLs: "resultURLs", requestID: "requestID") {
                try db.execute(sql: statement)
            }
            try db.alter(table: "jobs") { t in
                t.drop(column: "estimatedCost")
                t.drop(column: "reportedCost")
            }
        }
        return migrator
    }

    // MARK: Runs

    /// Records a run: its configuration (JSON, format `version`), the
    /// directory its paths are relative to, and the command line it came from.
    @discardableResult
    public func recordRun(configuration: String?, version: Int?, arguments: [String], directory: String) throws -> LedgerRun {
        let text = String(decoding: try JSONEncoder().encode(arguments), as: UTF8.self)
        var run = LedgerRun(
            id: nil, arguments: text, directory: directory, startedAt: clock.now().timeIntervalSince1970,
            configuration: configuration, configurationVersion: version)
        try database.write { db in try run.insert(db) }
        return run
    }

    /// The newest run, to resume.
    public func lastRun() throws -> LedgerRun? {
        try database.read { db in try LedgerRun.order(Column("id").desc).fetchOne(db) }
    }

    // MARK: Jobs

    /// The job with `key`, registering it as pending if it is new.
    public func register(_ job: LedgerJob) throws -> LedgerJob {
        let now = clock.now().timeIntervalSince1970
        return try database.write { db in
            if let existing = try LedgerJob.filter(Column("key") == job.key).fetchOne(db) { return existing }
            var inserted = job
            inserted.state = .pending
            inserted.createdAt = now
            inserted.updatedAt = now
            try inserted.insert(db)
            return inserted
        }
    }

    /// The content hash recorded for a file unchanged since (same path, size
    /// and modification time), so unchanged inputs are not read twice.
    public func knownHash(path: String, size: Int64, modified: Double) throws -> String? {
        try database.read { db in
            try String.fetchOne(
                db, sql: "SELECT inputSHA256 FROM jobs WHERE inputPath = ? AND inputSize = ? AND inputModified = ? LIMIT 1",
                arguments: [path, size, modified])
        }
    }

    /// The job with row id `id`, if there is one.
    public func job(id: Int64) throws -> LedgerJob? { try database.read { db in try LedgerJob.fetchOne(db, key: id) } }

    /// The jobs in `states` (all jobs when nil), in the order they were registered.
    public func jobs(in states: [JobState]? = nil) throws -> [LedgerJob] {
        try database.read { db in
            var request = LedgerJob.order(Column("id"))
            if let states { request = request.filter(states.map(\.rawValue).contains(Column("state"))) }
            return try request.fetchAll(db)
        }
    }

    /// Applies `change` to job `id` and commits it (for tools and tests
    /// that set up a ledger as an earlier run would have left it).
    @discardableResult
    public func update(_ id: Int64, _ change: (inout LedgerJob) -> Void) throws -> LedgerJob {
        let now = clock.now().timeIntervalSince1970
        return try database.write { db in
            guard var job = try LedgerJob.fetchOne(db, key: id) else {
                throw DatabaseError(message: "no job \(id) in the ledger")
            }
            change(&job)
            job.updatedAt = now
            try job.update(db)
            return job
        }
    }

    /// Removes job `id` (an input that turned out not to be an image).
    public func forget(_ id: Int64) throws {
        _ = try database.write { db in try LedgerJob.deleteOne(db, key: id) }
    }

    /// Up to `limit` jobs with row ids above `id`, in order.
    public func jobs(after id: Int64, limit: Int) throws -> [LedgerJob] {
        try database.read { db in
            try LedgerJob.filter(Column("id") > id).order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    // MARK: Moves

    /// Records `move` of job `id` (see `RunStore.record`).
    public func record(_ move: JobMove, job id: Int64, worker: String, limit: Decimal?) throws {
        let now = clock.now().timeIntervalSince1970
        try database.write { db in
            guard case .sending(let estimate, let carried) = move else {
                try db.execute(literal: Self.change(move, now: now, id: id))
                guard db.changesCount > 0 else { throw StoreError.noJob(id) }
                return
            }
            guard let row = try Row.fetchOne(db, sql: "SELECT worker, leaseUntil FROM jobs WHERE id = ?", arguments: [id]) else {
                throw StoreError.noJob(id)
            }
            guard (row["worker"] as String?) == worker, let until = row["leaseUntil"] as Double?, until > now else {
                throw StoreError.leaseLost(job: id)
            }
            try db.execute(
                sql: """
                    UPDATE jobs SET state = 'sending', estimatedMicros = ?, reportedMicros = NULL,
                    earlierMicros = earlierMicros + ?, requestID = NULL, resultURLs = NULL, error = NULL,
                    attempts = attempts + 1, updatedAt = ? WHERE id = ?
                    """, arguments: [MicroDollars.from(estimate), MicroDollars.from(carried), now, id])
            // Checked with the move in place: a throw rolls it back.
            if let limit {
                let money = try Self.money(db)
                if money.committed > limit {
                    let amount = estimate ?? 0
                    throw StoreError.costLimit(
                        limit: limit, spent: money.billed + money.earlier, inFlight: money.atRisk - amount, estimate: amount)
                }
            }
        }
    }

    /// The statement recording `move` (all but `sending`).
    private static func change(_ move: JobMove, now: Double, id: Int64) -> SQL {
        let state = move.state.rawValue
        switch move {
        case .sending:
            preconditionFailure("sending is recorded under its lease")
        case .accepted(let requestID, let extra):
            return """
                UPDATE jobs SET state = \(state), requestID = \(requestID), attempts = attempts + \(extra), updatedAt = \(now)
                WHERE id = \(id)
                """
        case .answered(let requestID, let results, let cost, let extra, let polls):
            let urls = results.isEmpty ? nil : Self.json(results)
            return """
                UPDATE jobs SET state = \(state), requestID = COALESCE(\(requestID), requestID), resultURLs = \(urls),
                reportedMicros = \(MicroDollars.from(cost)), attempts = attempts + \(extra), polls = polls + \(polls),
                updatedAt = \(now) WHERE id = \(id)
                """
        case .completed(let outputs, let cost, let polls):
            return """
                UPDATE jobs SET state = \(state), outputs = \(Self.json(outputs)),
                reportedMicros = COALESCE(\(MicroDollars.from(cost)), reportedMicros), error = NULL, polls = polls + \(polls),
                leaseUntil = NULL, updatedAt = \(now) WHERE id = \(id)
                """
        case .failed(let reason, let extra), .uncertain(let reason, let extra):
            return """
                UPDATE jobs SET state = \(state), error = \(reason), attempts = attempts + \(extra), leaseUntil = NULL,
                updatedAt = \(now) WHERE id = \(id)
                """
        case .lost(let reason, let keep, let polls):
            return """
                UPDATE jobs SET state = \(state), error = \(reason), resultURLs = CASE WHEN \(keep) THEN resultURLs END,
                polls = polls + \(polls), leaseUntil = NULL, updatedAt = \(now) WHERE id = \(id)
                """
        case .waiting(let reason, let polls), .cancelled(let reason, let polls):
            return """
                UPDATE jobs SET state = \(state), error = \(reason), polls = polls + \(polls), leaseUntil = NULL,
                updatedAt = \(now) WHERE id = \(id)
                """
        }
    }

    private static func json(_ list: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(list)) ?? Data("[]".utf8), as: UTF8.self)
    }

    // MARK: Leases

    /// Takes job `id` for `worker` (see `RunStore.claim`).
    public func claim(_ id: Int64, worker: String, lease: Double) throws -> LedgerJob? {
        let now = clock.now().timeIntervalSince1970
        return try database.write { db in
            try db.cachedStatement(
                sql: """
                    UPDATE jobs SET worker = ?, leaseUntil = ? WHERE id = ? AND state <> 'completed'
                    AND (leaseUntil IS NULL OR leaseUntil <= ? OR worker = ?)
                    """
            ).execute(arguments: [worker, now + lease, id, now, worker])
            guard db.changesCount > 0 else { return nil }
            return try LedgerJob.fetchOne(db, key: id)
        }
    }

    /// Extends `worker`'s leases by `lease` seconds from now.
    public func renew(worker: String, lease: Double) throws {
        let until = clock.now().timeIntervalSince1970 + lease
        try database.write { db in
            try db.execute(sql: "UPDATE jobs SET leaseUntil = ? WHERE worker = ? AND leaseUntil IS NOT NULL", arguments: [until, worker])
        }
    }

    /// Gives up `worker`'s lease on job `id`.
    public func release(_ id: Int64, worker: String) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE jobs SET leaseUntil = NULL WHERE id = ? AND worker = ?", arguments: [id, worker])
        }
    }

    /// Points job `id` at `endpoint` under `worker`'s lease (see `RunStore.route`).
    public func route(_ id: Int64, to endpoint: String, worker: String) throws {
        let now = clock.now().timeIntervalSince1970
        try database.write { db in
            try db.execute(
                sql: "UPDATE jobs SET endpoint = ?, updatedAt = ? WHERE id = ? AND worker = ? AND leaseUntil > ?",
                arguments: [endpoint, now, id, worker, now])
            guard db.changesCount > 0 else { throw StoreError.leaseLost(job: id) }
        }
    }

    /// Who holds job `id`.
    public func lease(of id: Int64) throws -> JobLease? {
        let now = clock.now().timeIntervalSince1970
        return try database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT state, worker, leaseUntil FROM jobs WHERE id = ?", arguments: [id])
            else { return nil }
            let until: Double? = row["leaseUntil"]
            return JobLease(
                state: JobState(rawValue: row["state"]) ?? .pending, worker: row["worker"], isSet: until != nil,
                isLive: until.map { $0 > now } ?? false)
        }
    }

    /// Ends every lease: under the folder's lock, leases are a killed run's.
    public func releaseAll() throws {
        try database.write { db in try db.execute(sql: "UPDATE jobs SET leaseUntil = NULL WHERE leaseUntil IS NOT NULL") }
    }

    /// Closes the database file (checkpointing its journal); the ledger is
    /// not used afterwards.
    public func close() async { try? database.close() }

    // MARK: Money and counts

    /// The run's money, by the one definition (`RunMoney.query`).
    public func money() throws -> RunMoney { try database.read { db in try Self.money(db) } }

    private static let moneyQuery = RunMoney.query(
        table: "jobs", estimated: "estimatedMicros", reported: "reportedMicros", earlier: "earlierMicros")

    private static func money(_ db: Database) throws -> RunMoney {
        guard let row = try Row.fetchOne(db, sql: moneyQuery) else { return RunMoney() }
        return RunMoney(micros: row[0], atRisk: row[1], earlier: row[2], unpriced: row[3])
    }

    /// Job counts by state, submissions, polls, and the run's money.
    public func summary() throws -> LedgerSummary {
        try database.read { db in
            var summary = LedgerSummary()
            let rows = try Row.fetchAll(db, sql: "SELECT state, COUNT(*), SUM(attempts), SUM(polls) FROM jobs GROUP BY state")
            for row in rows {
                let state: String = row[0]
                let count: Int = row[1]
                summary.byState[state] = count
                summary.jobs += count
                summary.submissions += (row[2] as Int?) ?? 0
                summary.polls += (row[3] as Int?) ?? 0
            }
            summary.money = try Self.money(db)
            return summary
        }
    }
}
