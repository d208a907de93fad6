import Foundation
import GRDB

/// Where a job stands. Every move is committed before the next step starts.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// Known, nothing done yet (or prepared and interrupted before sending).
    case pending
    /// Being sent: committed just before the request leaves. A job found
    /// here by a later run may have reached the endpoint (the run was killed
    /// before hearing back), so it counts as `uncertain`.
    case prepared
    /// Accepted by the endpoint: its request id (and for synchronous endpoints
    /// its result URLs) are recorded, so it is only ever polled or fetched again.
    case submitted
    /// Results written.
    case completed
    /// Ended with an error (retried only when a run sets `retryFailed`).
    case failed
    /// Sent, and no usable answer came back (a timeout, a 5xx, a dropped
    /// connection): the endpoint may have processed and billed it. Its
    /// estimate stays counted as spent; it is sent again only when a run sets
    /// `retryUncertain`.
    case uncertain
}

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
    /// USD, as decimal text.
    public var estimatedCost: String?
    /// USD the endpoint reported, as decimal text.
    public var reportedCost: String?
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

    /// Keeps the row id after an insert.
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
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

    /// The command line's arguments.
    public var argumentList: [String] { (try? JSONDecoder().decode([String].self, from: Data(arguments.utf8))) ?? [] }
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
    /// Reported where the endpoint reported, estimated otherwise; completed jobs only.
    public var spentUSD: Decimal = 0
    /// Jobs whose cost is unknown (no price for the endpoint).
    public var unpriced = 0
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
    private let database: DatabaseQueue

    /// Opens (creating if needed) the ledger of `folder`.
    public init(folder: String) throws {
        path = (folder as NSString).appendingPathComponent(Self.fileName)
        guard !Self.isNewer(path) else { throw LedgerError.newer(path: path) }
        // Readable by the user only: it holds prompts, job ids and result
        // URLs. SQLite gives its journal files the database file's mode.
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // WAL: a commit is one append; NORMAL sync is durable against a
            // killed process (not against power loss, like the outputs).
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        database = try DatabaseQueue(path: path, configuration: configuration)
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
        return migrator
    }

    // MARK: Runs

    /// Records a run: its configuration (JSON, format `version`), the
    /// directory its paths are relative to, and the command line it came from.
    @discardableResult
    public func recordRun(configuration: String?, version: Int?, arguments: [String], directory: String) throws -> LedgerRun {
        let text = String(decoding: try JSONEncoder().encode(arguments), as: UTF8.self)
        var run = LedgerRun(
            id: nil, arguments: text, directory: directory, startedAt: Date().timeIntervalSince1970,
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
        try database.write { db in
            if let existing = try LedgerJob.filter(Column("key") == job.key).fetchOne(db) { return existing }
            var inserted = job
            inserted.state = .pending
            inserted.createdAt = Date().timeIntervalSince1970
            inserted.updatedAt = inserted.createdAt
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

    /// Applies `change` to job `id` and commits it.
    @discardableResult
    public func update(_ id: Int64, _ change: (inout LedgerJob) -> Void) throws -> LedgerJob {
        try database.write { db in
            guard var job = try LedgerJob.fetchOne(db, key: id) else {
                throw DatabaseError(message: "no job \(id) in the ledger")
            }
            change(&job)
            job.updatedAt = Date().timeIntervalSince1970
            try job.update(db)
            return job
        }
    }

    /// Removes job `id` (an input that turned out not to be an image).
    public func forget(_ id: Int64) throws {
        _ = try database.write { db in try LedgerJob.deleteOne(db, key: id) }
    }

    // MARK: Moves (one UPDATE each, no read)

    /// About to send: prepared, with its estimate, one more attempt counted;
    /// only while `worker` holds the lease, and within `limit` (see `RunStore`).
    public func markSending(_ id: Int64, worker: String, estimatedCost: String?, limit: Decimal?) throws {
        let now = Date().timeIntervalSince1970
        try database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT worker, leaseUntil FROM jobs WHERE id = ?", arguments: [id]) else {
                throw StoreError.noJob(id)
            }
            guard (row["worker"] as String?) == worker, let until = row["leaseUntil"] as Double?, until > now else {
                throw StoreError.leaseLost(job: id)
            }
            if let limit {
                let (spent, inFlight) = try Self.committed(db, excluding: id)
                let estimate = estimatedCost.flatMap { Decimal(string: $0) } ?? 0
                if spent + inFlight + estimate > limit {
                    throw StoreError.costLimit(limit: limit, spent: spent, inFlight: inFlight, estimate: estimate)
                }
            }
            try db.cachedStatement(
                sql: """
                    UPDATE jobs SET state = 'prepared', estimatedCost = ?, error = NULL, attempts = attempts + 1, updatedAt = ?
                    WHERE id = ?
                    """
            ).execute(arguments: [estimatedCost, now, id])
        }
    }

    /// Money of completed jobs, and estimates of jobs in flight or that may
    /// have been billed, leaving out job `id`.
    private static func committed(_ db: Database, excluding id: Int64) throws -> (spent: Decimal, inFlight: Decimal) {
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT state, COALESCE(reportedCost, estimatedCost) FROM jobs
                WHERE state IN ('completed', 'submitted', 'uncertain', 'prepared') AND id <> ?
                """, arguments: [id])
        var spent = Decimal(0)
        var inFlight = Decimal(0)
        while let row = try rows.next() {
            guard let text: String = row[1], let cost = Decimal(string: text) else { continue }
            if (row[0] as String) == "completed" { spent += cost } else { inFlight += cost }
        }
        return (spent, inFlight)
    }

    /// Accepted: the endpoint's id, and for a synchronous answer its result
    /// URLs and cost; `extraAttempts` counts submissions retried by the client.
    public func markSubmitted(
        _ id: Int64, requestID: String?, resultURLs: [String] = [], reportedCost: String? = nil, extraAttempts: Int = 0
    ) throws {
        let urls = resultURLs.isEmpty ? nil : String(decoding: try JSONEncoder().encode(resultURLs), as: UTF8.self)
        try execute(
            """
            UPDATE jobs SET state = 'submitted', requestID = COALESCE(?, requestID), resultURLs = COALESCE(?, resultURLs),
            reportedCost = COALESCE(?, reportedCost), attempts = attempts + ?, updatedAt = ? WHERE id = ?
            """, [requestID, urls, reportedCost, extraAttempts, Date().timeIntervalSince1970, id])
    }

    /// Done: its outputs, and the endpoint's cost when it reported one.
    public func markCompleted(_ id: Int64, outputs: [String], reportedCost: String?, polls: Int = 0) throws {
        let list = String(decoding: try JSONEncoder().encode(outputs), as: UTF8.self)
        try execute(
            """
            UPDATE jobs SET state = 'completed', outputs = ?, reportedCost = COALESCE(?, reportedCost), error = NULL,
            polls = polls + ?, leaseUntil = NULL, updatedAt = ? WHERE id = ?
            """, [list, reportedCost, polls, Date().timeIntervalSince1970, id])
    }

    /// Ended with `error`; an accepted job that may still finish keeps its
    /// state (`failed: false`) so the next run asks about it again.
    /// `extraAttempts` counts submissions retried by the client.
    public func markError(_ id: Int64, _ error: String, failed: Bool, extraAttempts: Int = 0) throws {
        try execute(
            """
            UPDATE jobs SET state = CASE WHEN ? THEN 'failed' ELSE state END, error = ?, attempts = attempts + ?,
            leaseUntil = NULL, updatedAt = ? WHERE id = ?
            """, [failed, error, extraAttempts, Date().timeIntervalSince1970, id])
    }

    /// Sent without a usable answer: the endpoint may have billed it.
    public func markUncertain(_ id: Int64, _ error: String, extraAttempts: Int = 0) throws {
        try execute(
            "UPDATE jobs SET state = 'uncertain', error = ?, attempts = attempts + ?, leaseUntil = NULL, updatedAt = ? WHERE id = ?",
            [error, extraAttempts, Date().timeIntervalSince1970, id])
    }

    /// Forgets the result URLs recorded for job `id` (they expired), so
    /// a run that retries failed jobs sends it again.
    public func forgetResults(_ id: Int64) throws {
        try execute("UPDATE jobs SET resultURLs = NULL, updatedAt = ? WHERE id = ?", [Date().timeIntervalSince1970, id])
    }

    private func execute(_ sql: String, _ arguments: StatementArguments) throws {
        try database.write { db in
            try db.cachedStatement(sql: sql).execute(arguments: arguments)
        }
    }

    /// Up to `limit` jobs with row ids above `id`, in order.
    public func jobs(after id: Int64, limit: Int) throws -> [LedgerJob] {
        try database.read { db in
            try LedgerJob.filter(Column("id") > id).order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    // MARK: Leases

    /// Takes job `id` for `worker` (see `RunStore.claim`).
    public func claim(_ id: Int64, worker: String, lease: Double) throws -> LedgerJob? {
        let now = Date().timeIntervalSince1970
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
        try execute(
            "UPDATE jobs SET leaseUntil = ? WHERE worker = ? AND leaseUntil IS NOT NULL",
            [Date().timeIntervalSince1970 + lease, worker])
    }

    /// Gives up `worker`'s lease on job `id`.
    public func release(_ id: Int64, worker: String) throws {
        try execute("UPDATE jobs SET leaseUntil = NULL WHERE id = ? AND worker = ?", [id, worker])
    }

    /// Who holds job `id`.
    public func lease(of id: Int64) throws -> JobLease? {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT state, worker, leaseUntil FROM jobs WHERE id = ?", arguments: [id])
            else { return nil }
            let until: Double? = row["leaseUntil"]
            return JobLease(
                state: JobState(rawValue: row["state"]) ?? .pending, worker: row["worker"], isSet: until != nil,
                isLive: until.map { $0 > Date().timeIntervalSince1970 } ?? false)
        }
    }

    /// Ends every lease: under the folder's lock, leases are a killed run's.
    public func releaseAll() throws { try execute("UPDATE jobs SET leaseUntil = NULL WHERE leaseUntil IS NOT NULL", []) }

    /// Nothing to close: the file is closed when the ledger goes.
    public func close() async {}

    /// Money of completed jobs (reported, else estimated) plus, with
    /// `includingSubmitted`, the estimates of jobs accepted and not yet done
    /// and of jobs that may have been billed (uncertain, or caught sending).
    public func committedCost(includingSubmitted: Bool) throws -> (total: Decimal, unpriced: Int) {
        try database.read { db in
            let states = includingSubmitted ? "('completed', 'submitted', 'uncertain', 'prepared')" : "('completed')"
            let rows = try Row.fetchCursor(
                db, sql: "SELECT COALESCE(reportedCost, estimatedCost) FROM jobs WHERE state IN \(states)")
            var total = Decimal(0)
            var unpriced = 0
            while let row = try rows.next() {
                if let text: String = row[0], let cost = Decimal(string: text) { total += cost } else { unpriced += 1 }
            }
            return (total, unpriced)
        }
    }

    /// Job counts by state, submissions, and the money spent on completed jobs.
    public func summary() throws -> LedgerSummary {
        var summary = LedgerSummary()
        try database.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT state, COUNT(*), SUM(attempts), SUM(polls) FROM jobs GROUP BY state")
            for row in rows {
                let state: String = row[0]
                let count: Int = row[1]
                summary.byState[state] = count
                summary.jobs += count
                summary.submissions += (row[2] as Int?) ?? 0
                summary.polls += (row[3] as Int?) ?? 0
            }
        }
        (summary.spentUSD, summary.unpriced) = try committedCost(includingSubmitted: false)
        return summary
    }
}
