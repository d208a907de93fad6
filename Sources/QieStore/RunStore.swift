import Foundation

/// Where an edit run keeps its jobs: the same states, the same job identity
/// and the same "never pay twice" rules whatever holds them. Two stores
/// implement it: `Ledger`, a SQLite file in the output folder (the default,
/// one machine), and `PostgresStore`, a PostgreSQL database shared by workers
/// on several machines (`qie edit --ledger postgres://...`).
///
/// Workers share a run by leases: a worker `claim`s a job before it works on
/// it, `renew`s its leases while it runs, and a job whose lease ran out (its
/// worker died) can be claimed by another, which picks it up from its
/// recorded state: it polls a recorded id or fetches recorded results, and
/// never sends again what was accepted. Recording `.sending` succeeds only while the
/// worker holds the job's lease, so two workers never both send one job.
public protocol RunStore: AnyObject, Sendable {
    /// Where the store is, for messages (never a password).
    var location: String { get }

    /// Records a run: its configuration (JSON, format `version`), the
    /// directory its paths are relative to, and the command line it came from.
    @discardableResult
    func recordRun(configuration: String?, version: Int?, arguments: [String], directory: String) async throws -> LedgerRun
    /// The newest run, to resume.
    func lastRun() async throws -> LedgerRun?

    /// The job with the key of `job`, registering it as pending if it is new.
    func register(_ job: LedgerJob) async throws -> LedgerJob
    /// The content hash recorded for a file unchanged since (same path, size
    /// and modification time), so unchanged inputs are not read twice.
    func knownHash(path: String, size: Int64, modified: Double) async throws -> String?
    /// The job with row id `id`, if there is one.
    func job(id: Int64) async throws -> LedgerJob?
    /// Up to `limit` jobs with row ids above `id`, in order: the store read a page at a time.
    func jobs(after id: Int64, limit: Int) async throws -> [LedgerJob]
    /// Removes job `id` (an input that turned out not to be an image).
    func forget(_ id: Int64) async throws

    /// Takes job `id` for `worker` for `lease` seconds, unless another
    /// worker holds a lease on it that has not run out, or it is completed:
    /// the job as it stands now, or nil when it was not taken.
    func claim(_ id: Int64, worker: String, lease: Double) async throws -> LedgerJob?
    /// Extends every lease `worker` still holds by `lease` seconds from now.
    func renew(worker: String, lease: Double) async throws
    /// Gives up `worker`'s lease on job `id`, so another worker may take it at once.
    func release(_ id: Int64, worker: String) async throws
    /// Who holds job `id` and whether the lease is still running; nil when there is no such job.
    func lease(of id: Int64) async throws -> JobLease?

    /// Records `move` of job `id`, as the edit's state machine decided it.
    /// `.sending` is committed only while `worker` holds the job's lease
    /// (else `StoreError.leaseLost`) and, with a `limit`, only while the
    /// run's committed money (`RunMoney.committed`, this move included)
    /// stays within it, checked in the same transaction (else
    /// `StoreError.costLimit`), so workers sharing the store never pass it
    /// together. Other moves are recorded as given and end the lease, but
    /// for `accepted` and `answered`.
    func record(_ move: JobMove, job id: Int64, worker: String, limit: Decimal?) async throws
    /// Points job `id` at `endpoint` (a profile id routing picked), under
    /// `worker`'s lease, before it is sent there.
    func route(_ id: Int64, to endpoint: String, worker: String) async throws

    /// The run's money, by the one definition (`RunMoney.query`).
    func money() async throws -> RunMoney
    /// Job counts by state, submissions, polls, and the run's money.
    func summary() async throws -> LedgerSummary
    /// Ends every lease on the run's jobs: for a run that holds the output
    /// folder alone (the SQLite ledger, under the folder's lock), leases left
    /// by a killed process are stale.
    func releaseAll() async throws
    /// Closes the store's connections; it is not used afterwards.
    func close() async
}

extension RunStore {
    /// Calls `body` with each job in order, a page of `pageSize` in memory at a time.
    public func forEachJob(pageSize: Int = 500, _ body: (LedgerJob) async throws -> Void) async throws {
        var last: Int64 = 0
        while true {
            let page = try await jobs(after: last, limit: pageSize)
            for job in page { try await body(job) }
            guard let next = page.last?.id, page.count == pageSize else { return }
            last = next
        }
    }

    /// The jobs in `states` (all jobs when nil), in the order they were registered.
    public func allJobs(in states: [JobState]? = nil) async throws -> [LedgerJob] {
        var all: [LedgerJob] = []
        try await forEachJob { job in if states?.contains(job.state) ?? true { all.append(job) } }
        return all
    }
}

/// Who holds a job, as `RunStore.lease(of:)` reads it.
public struct JobLease: Sendable, Equatable {
    /// Where the job stands.
    public var state: JobState
    /// The worker that last claimed it (nil: never claimed).
    public var worker: String?
    /// Whether a lease is set at all: false once the job ended or was given up.
    public var isSet: Bool
    /// Whether the lease is set and still running (by the store's clock).
    public var isLive: Bool

    /// A lease with these facts.
    public init(state: JobState, worker: String?, isSet: Bool, isLive: Bool) {
        self.state = state
        self.worker = worker
        self.isSet = isSet
        self.isLive = isLive
    }
}

/// Why a store refused a move.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The worker's lease on the job ran out and the job may be another
    /// worker's now: nothing was recorded and nothing may be sent.
    case leaseLost(job: Int64)
    /// Money committed to the run plus this job's estimate would pass the
    /// limit: `spent` (billed, and earlier attempts), `inFlight` (on the
    /// wire or uncertain: it may have been billed), and the refused
    /// `estimate` (USD).
    case costLimit(limit: Decimal, spent: Decimal, inFlight: Decimal, estimate: Decimal)
    /// A job the move names is not in the store.
    case noJob(Int64)
    /// The store was written by a newer qie, with a layout this one does not know.
    case newer(location: String)
    /// The store's address cannot be used.
    case badURL(String)
    /// The store could not be reached or answered with an error.
    case unavailable(location: String, reason: String)

    /// What is wrong and what to do.
    public var description: String {
        switch self {
        case .leaseLost(let job):
            "job \(job)'s lease ran out (this worker was too slow to renew it) and another worker may have it; it was not sent"
        case .costLimit(let limit, let spent, let inFlight, let estimate):
            "the run's cost limit $\(limit) would be passed: $\(spent) spent, $\(inFlight) in flight, $\(estimate) more"
        case .noJob(let id): "no job \(id) in the store"
        case .newer(let location): "\(location) was written by a newer qie; use that version (or another database)"
        case .badURL(let reason): reason
        case .unavailable(let location, let reason): "\(location): \(reason)"
        }
    }
}

/// Who a worker is in a shared store: host, process and a random part, so
/// two runs on one machine (or a restarted process with a reused id) differ.
public enum WorkerIdentity {
    /// This process's worker name, the same for its whole life.
    public static let current: String = {
        let host = ProcessInfo.processInfo.hostName
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(host):\(ProcessInfo.processInfo.processIdentifier):\(random)"
    }()
}
