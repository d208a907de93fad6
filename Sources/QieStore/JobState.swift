import Foundation

/// Where a paid job stands, as every store records it and every front end
/// names it (`qie status`, its JSON, the report). Moves are decided by the
/// edit path's state machine (`PaidRequest` in QiePipeline) and recorded as
/// given; each is committed before the next irreversible step.
///
/// ```
/// pending -> sending -> accepted -> answered -> completed
///                 \          \          \
///                  \          \          +-> lost       (billed; its results could not be had)
///                   \          +-> lost                 (the endpoint failed the job it took)
///                    +-> uncertain                      (sent; no usable answer)
///                    +-> failed                         (refused before anything was billed)
///
/// accepted -> cancelled   (given up and cancelled at the endpoint before it ran: not billed)
/// accepted -> uncertain   (given up and cancelled too late to know)
/// ```
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// Known; nothing reserved, nothing sent.
    case pending
    /// Its estimate reserved and its request leaving: committed just before
    /// the request goes. A job found here by a later run may have reached
    /// the endpoint; it is money at risk.
    case sending
    /// The endpoint took it as a job (its id recorded): billed. It is only
    /// ever asked about again, never sent again.
    case accepted
    /// The endpoint answered with results (their URLs and cost recorded):
    /// billed. They are fetched, again if need be, never paid for again.
    case answered
    /// Its results are written.
    case completed
    /// Ended before anything was billed (refused before acceptance, or a
    /// local failure before sending); tried again only with `retryFailed`.
    case failed
    /// Sent, and no usable answer came back (a timeout, a 5xx, a dropped
    /// connection, a run killed while sending): the endpoint may have made
    /// and billed it. Its estimate stays counted; sent again only with
    /// `retryUncertain`.
    case uncertain
    /// Billed, and its results could not be had: the endpoint failed the job
    /// it accepted, or its results could not be fetched, decoded or written.
    /// Recorded result links are fetched again on resume while they last;
    /// sent again (paying again) only with `retryFailed`.
    case lost
    /// Accepted, then given up (its wait timed out, the run was stopped)
    /// and cancelled at the endpoint, which confirmed it had not run:
    /// nothing was billed. The next run sends it again.
    case cancelled

    /// What the job's money is in this state.
    public var charge: Charge {
        switch self {
        case .pending, .failed, .cancelled: .none
        case .sending, .uncertain: .atRisk
        case .accepted, .answered, .completed, .lost: .billed
        }
    }

    /// What a job's money is.
    public enum Charge: String, Sendable, Codable {
        /// Nothing was billed.
        case none
        /// It may have been billed: sent, and no answer says either way.
        case atRisk = "at-risk"
        /// The endpoint accepted or answered it: it is billed.
        case billed
    }

    /// The states whose money counts against a cost limit.
    public static let committing: [JobState] = allCases.filter { $0.charge != .none }

    /// Statements that bring states written by an earlier qie into these
    /// terms, the same for both stores: `prepared` was `sending`;
    /// `submitted` with recorded results is `answered`, without them
    /// `accepted`; a `failed` job the endpoint had accepted or answered (a
    /// job id or results recorded) was billed, so it is `lost`.
    public static func migratingEarlierStates(table: String, resultURLs: String, requestID: String) -> [String] {
        [
            "UPDATE \(table) SET state = 'sending' WHERE state = 'prepared'",
            """
            UPDATE \(table) SET state = CASE WHEN \(resultURLs) IS NOT NULL THEN 'answered' ELSE 'accepted' END
            WHERE state = 'submitted'
            """,
            """
            UPDATE \(table) SET state = 'lost' WHERE state = 'failed' AND (\(resultURLs) IS NOT NULL OR \(requestID) IS NOT NULL)
            """,
        ]
    }
}

/// One move of a job, as the edit's state machine decided it: a store
/// records it as given and decides nothing. Every move but `sending` ends
/// the worker's lease (`accepted` and `answered` keep it).
public enum JobMove: Sendable, Equatable {
    /// About to send: one more attempt, its `estimate` reserved. `carried`
    /// is what an earlier attempt of the job may have been billed (an
    /// uncertain or lost job sent again): it stays counted as `earlierCost`.
    /// Committed only while the worker holds the job's lease and, with a
    /// limit, while the run's committed money stays within it.
    case sending(estimate: Decimal?, carried: Decimal)
    /// The endpoint took the request as job `requestID`; `extraAttempts`
    /// are submissions the client retried.
    case accepted(requestID: String, extraAttempts: Int)
    /// The endpoint answered with `results` (links; inline results are not
    /// recorded) and maybe its cost; `extraAttempts` are submissions the
    /// client retried, `polls` the status polls made.
    case answered(requestID: String?, results: [String], reportedCost: Decimal?, extraAttempts: Int, polls: Int)
    /// The results are written to `outputs`.
    case completed(outputs: [String], reportedCost: Decimal?, polls: Int)
    /// Ended; nothing was billed.
    case failed(reason: String, extraAttempts: Int)
    /// Sent without a usable answer: it may have been billed.
    case uncertain(reason: String, extraAttempts: Int)
    /// Billed, and its results could not be had; `keepResults` keeps the
    /// recorded links for a later fetch (false: they expired or are unusable).
    case lost(reason: String, keepResults: Bool, polls: Int)
    /// Accepted and still to be asked about (the wait timed out or was
    /// stopped): stays `accepted`, with why it is not done yet.
    case waiting(reason: String, polls: Int)
    /// Given up and cancelled at the endpoint before it ran: nothing was
    /// billed (`reason`: why it was given up).
    case cancelled(reason: String, polls: Int)

    /// The state the move leads to.
    public var state: JobState {
        switch self {
        case .sending: .sending
        case .accepted, .waiting: .accepted
        case .answered: .answered
        case .completed: .completed
        case .failed: .failed
        case .uncertain: .uncertain
        case .lost: .lost
        case .cancelled: .cancelled
        }
    }
}

/// A run's money, by the one definition every store computes: what is
/// billed, what may have been, and what earlier attempts of jobs sent again
/// may have been billed. A job's amount is its reported cost, else its
/// estimate.
public struct RunMoney: Sendable, Equatable, Codable {
    /// Jobs the endpoint accepted or answered: completed, in flight, or
    /// whose results were lost, USD.
    public var billed: Decimal = 0
    /// Jobs sent without a usable answer, or on the wire: they may have
    /// been billed, USD.
    public var atRisk: Decimal = 0
    /// Earlier attempts of jobs sent again (uncertain or lost ones, on
    /// request): they may have been billed, USD.
    public var earlier: Decimal = 0
    /// Jobs whose money counts but whose price is unknown.
    public var unpriced = 0

    /// No money.
    public init() {}

    /// These amounts.
    public init(billed: Decimal, atRisk: Decimal, earlier: Decimal, unpriced: Int) {
        self.billed = billed
        self.atRisk = atRisk
        self.earlier = earlier
        self.unpriced = unpriced
    }

    /// Everything that counts against a cost limit.
    public var committed: Decimal { billed + atRisk + earlier }

    /// The one query of a run's money, for a `jobs` table whose amounts are
    /// integer micro-dollars (`estimated`, `reported`, `earlier` name the
    /// columns): four columns, billed, at risk, earlier (micro-dollars) and
    /// unpriced jobs. `filter` restricts the rows (a run's scope). Both
    /// stores run this text, so they cannot disagree.
    public static func query(table: String, estimated: String, reported: String, earlier: String, filter: String? = nil)
        -> String
    {
        func list(_ states: [JobState]) -> String { "(" + states.map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")" }
        let billed = list(JobState.allCases.filter { $0.charge == .billed })
        let atRisk = list(JobState.allCases.filter { $0.charge == .atRisk })
        let committing = list(JobState.committing)
        let amount = "COALESCE(\(reported), \(estimated))"
        return """
            SELECT CAST(COALESCE(SUM(CASE WHEN state IN \(billed) THEN \(amount) END), 0) AS BIGINT),
            CAST(COALESCE(SUM(CASE WHEN state IN \(atRisk) THEN \(amount) END), 0) AS BIGINT),
            CAST(COALESCE(SUM(\(earlier)), 0) AS BIGINT),
            CAST(COUNT(CASE WHEN state IN \(committing) AND \(amount) IS NULL THEN 1 END) AS BIGINT)
            FROM \(table)\(filter.map { " WHERE \($0)" } ?? "")
            """
    }

    /// The money from the query's four numbers.
    public init(micros billed: Int64, atRisk: Int64, earlier: Int64, unpriced: Int64) {
        self.init(
            billed: MicroDollars.decimal(billed), atRisk: MicroDollars.decimal(atRisk),
            earlier: MicroDollars.decimal(earlier), unpriced: Int(unpriced))
    }
}

/// USD as stores keep it: whole micro-dollars in an integer column, so
/// sums are exact and the same on every store.
public enum MicroDollars {
    /// `amount` in micro-dollars, rounded up (a charge is never under-counted).
    public static func from(_ amount: Decimal) -> Int64 {
        var scaled = amount * 1_000_000
        var rounded = Decimal()
        NSDecimalRound(&rounded, &scaled, 0, .up)
        return NSDecimalNumber(decimal: rounded).int64Value
    }

    /// Micro-dollars as USD.
    public static func decimal(_ micros: Int64) -> Decimal { Decimal(micros) / 1_000_000 }

    /// An optional amount in micro-dollars.
    public static func from(_ amount: Decimal?) -> Int64? { amount.map { from($0) } }

    /// Optional micro-dollars as USD.
    public static func decimal(_ micros: Int64?) -> Decimal? { micros.map { decimal($0) } }

    /// Decimal text from an earlier store (`"0.02"`) in micro-dollars; nil
    /// unless it is digits with at most one point (what the stores' own
    /// migrations accept: `^[0-9]+(\.[0-9]+)?$`).
    public static func parse(_ text: String?) -> Int64? {
        guard let text else { return nil }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
            let amount = Decimal(string: text)
        else { return nil }
        return from(amount)
    }

    /// What `parse` accepts, as a PostgreSQL regular expression.
    public static let pattern = "^[0-9]+(\\.[0-9]+)?$"
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
