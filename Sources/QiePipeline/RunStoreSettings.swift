import Foundation
import QieCore
import QieStore

/// Where an edit run keeps its jobs, and how workers sharing them hold theirs.
///
/// By default a run keeps a SQLite ledger in its output folder (one machine).
/// With `url` set to a PostgreSQL URL (`postgres://USER:PASSWORD@HOST/DB`, or
/// `QIE_LEDGER_URL`), workers on several machines share one run: the same
/// inputs and the same output folder at the same paths on each, one
/// database. Each claims a job before working on it, for `lease` seconds,
/// renewed every third of that while it runs; a worker that dies loses its
/// jobs when the lease runs out, and another picks them up where they stand.
public struct RunStoreSettings: Sendable {
    /// The shared store's URL; nil for the SQLite ledger in the output folder.
    public var url: String?
    /// Seconds a claim on a job lasts without being renewed (60): how long a
    /// dead worker's jobs wait before another takes them.
    public var lease: Double
    /// Where `PGPASSWORD` (else `PGPASSFILE` or `HOME`, for the password
    /// file) is read when the URL has no password (see `PostgresURL`).
    public var environment: [String: String]
    /// Times leases, their renewals and the waits for other workers' jobs
    /// (the machine's clock; a test gives a `ManualClock`).
    public var clock: any QieClock = SystemClock()

    /// The variable naming the shared store.
    public static let urlVariable = "QIE_LEDGER_URL"

    /// A store at `url` (nil: the ledger in the output folder).
    public init(url: String? = nil, lease: Double = 60, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.url = url
        self.lease = lease
        self.environment = environment
    }

    /// The shortest and longest lease accepted, seconds.
    public static let leaseRange: ClosedRange<Double> = 1...3600

    /// Refuses a lease outside `leaseRange` and a `url` that is not a
    /// PostgreSQL URL (the SQLite ledger needs none), before anything is opened.
    public func validate() throws(SettingError) {
        guard Self.leaseRange.contains(lease) else {
            throw SettingError(
                .lease, value: "\(lease)",
                .invalid(expected: "between \(Int(Self.leaseRange.lowerBound)) and \(Int(Self.leaseRange.upperBound)) seconds"))
        }
        if let url, !PostgresURL.isPostgres(url) {
            throw SettingError(
                .ledger, value: PostgresURL.redacting(url),
                .invalid(expected: "a postgres:// URL (the SQLite ledger in the output folder is the default and needs none)"))
        }
    }

    /// The store `QIE_LEDGER_URL` names in `environment`, else the ledger in the output folder.
    public init(environment: [String: String]) {
        let named = environment[Self.urlVariable].flatMap { $0.isEmpty ? nil : $0 }
        self.init(url: named, environment: environment)
    }
}
