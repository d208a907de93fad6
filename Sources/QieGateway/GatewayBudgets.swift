import Foundation
import GRDB
import Logging
import PostgresNIO
import QiePipeline
import QieStore
import Synchronization

/// The spending limits an edit reserves its estimate against, each per UTC
/// day: across every client, and for each end user (`user`). Both must
/// allow an edit; money in flight counts against both.
struct BudgetLimits: Sendable, Equatable {
    /// USD per UTC day across every client; nil: none.
    var perDay: Decimal?
    /// USD per UTC day for each `user`; nil: none.
    var perUserPerDay: Decimal?

    /// The limits of `configuration`.
    init(_ configuration: GatewayConfiguration) {
        perDay = configuration.maxCostPerDay
        perUserPerDay = configuration.maxCostPerUserPerDay
    }

    init(perDay: Decimal? = nil, perUserPerDay: Decimal? = nil) {
        self.perDay = perDay
        self.perUserPerDay = perUserPerDay
    }

    /// Whether any limit is set (without one no edit needs a price).
    var isSet: Bool { perDay != nil || perUserPerDay != nil }
}

/// Which limit refused an edit.
enum BudgetScope: Sendable, Equatable {
    /// The day's, across every client.
    case day
    /// The day's of this end user.
    case user(String)
}

/// Money of one UTC day in micro-dollars: settled spending, and
/// reservations of edits in flight.
struct BudgetAmounts: Sendable, Equatable {
    var spent: Int64 = 0
    var held: Int64 = 0

    /// Spending and reservations together: what the limit is checked against.
    var committed: Int64 { spent + held }
}

/// What a day's budgets stand at: the day's money across every client and
/// each end user's, read together.
struct BudgetStanding: Sendable, Equatable {
    /// The UTC day, `yyyy-MM-dd`.
    var day: String
    /// Across every client.
    var all: BudgetAmounts
    /// Each end user with money spent or in flight that day.
    var users: [String: BudgetAmounts]
}

/// A reservation a ledger refused: the limit that refused it and what that
/// limit's money stood at.
struct LedgerRefusal: Sendable, Equatable {
    var scope: BudgetScope
    var amounts: BudgetAmounts
}

/// Where the budgets' money is kept, day by day: SQLite or PostgreSQL.
/// A reservation is a row (with its end user) until it settles, so a
/// restart forgets neither the day's spending nor money in flight.
protocol BudgetLedger: Sendable {
    /// Checks the limits against `day`'s money (and `user`'s) and, when
    /// both allow `micros` more, records a reservation per amount under
    /// `ids`, all in one transaction; otherwise records nothing and says
    /// which limit refused.
    func reserve(ids: [String], micros: [Int64], day: String, user: String?, limits: MicroLimits) async throws -> LedgerRefusal?
    /// Ends reservation `id`: `micros` of it count as spent on its day (and
    /// its user's); the rest is released. Settled once: a second call finds nothing.
    func settle(_ id: String, micros: Int64) async throws
    /// The day's money and each user's.
    func standing(day: String) async throws -> BudgetStanding
}

/// `BudgetLimits` in micro-dollars, as the ledgers compare them.
struct MicroLimits: Sendable, Equatable {
    var perDay: Int64?
    var perUserPerDay: Int64?

    init(_ limits: BudgetLimits) {
        perDay = limits.perDay.map { MicroDollars.from($0) }
        perUserPerDay = limits.perUserPerDay.map { MicroDollars.from($0) }
    }

    /// Which limit `asked` more would pass, given the day's money and the
    /// user's (the day's is checked first); nil when both allow it.
    func refusal(asked: Int64, all: BudgetAmounts, user: (name: String, amounts: BudgetAmounts)?) -> LedgerRefusal? {
        if let perDay, all.committed + asked > perDay { return LedgerRefusal(scope: .day, amounts: all) }
        if let perUserPerDay, let user, user.amounts.committed + asked > perUserPerDay {
            return LedgerRefusal(scope: .user(user.name), amounts: user.amounts)
        }
        return nil
    }
}

/// The UTC day a date falls on.
enum BudgetDay {
    /// The UTC day `date` falls on, as `yyyy-MM-dd`.
    static func key(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    /// Seconds from `date` to the next UTC midnight, when every daily budget starts again.
    static func secondsToReset(from date: Date) -> Int { GatewayError.secondsToUTCMidnight(now: date) }
}

/// One request's budgets: the day's across every client and its user's,
/// reserved together in one transaction of the ledger, so two edits at once
/// (on any replica) never pass either. Made per request: it remembers which
/// limit refused it, for the answer's message.
final class GatewayBudget: EditBudget {
    let ledger: any BudgetLedger
    let limits: BudgetLimits
    /// The end user the request names; nil without one (only the day's limit then applies).
    let user: String?
    /// Reads the UTC day.
    let clock: any QieClock
    private let refused = Mutex<BudgetScope?>(nil)

    init(ledger: any BudgetLedger, limits: BudgetLimits, user: String?, clock: any QieClock) {
        self.ledger = ledger
        self.limits = limits
        self.user = user
        self.clock = clock
    }

    /// The limit that refused this request's edit, if one did.
    var refusedBy: BudgetScope? { refused.withLock { $0 } }

    func reserve(_ amounts: [Decimal]) async throws -> BudgetDecision {
        let day = BudgetDay.key(clock.now())
        let micros = amounts.map { MicroDollars.from($0) }
        let ids = amounts.map { _ in BudgetReservation.newID() }
        guard let refusal = try await ledger.reserve(ids: ids, micros: micros, day: day, user: user, limits: MicroLimits(limits))
        else {
            return .reserved(zip(ids, amounts).map { BudgetReservation(id: $0, amount: $1) })
        }
        refused.withLock { $0 = refusal.scope }
        let limit: Decimal
        switch refusal.scope {
        case .day: limit = limits.perDay ?? 0
        case .user: limit = limits.perUserPerDay ?? 0
        }
        return .refused(
            BudgetRefusal(
                limit: limit, spent: MicroDollars.decimal(refusal.amounts.spent), inFlight: MicroDollars.decimal(refusal.amounts.held),
                estimate: MicroDollars.decimal(micros.reduce(0, +))))
    }

    func settle(_ reservation: BudgetReservation, spent: Decimal) async {
        // Not recorded: the reservation stays counted, never under the limit's side.
        try? await ledger.settle(reservation.id, micros: MicroDollars.from(spent))
    }
}

/// The gateway's budgets over its store: one `GatewayBudget` per request.
struct GatewayBudgets: Sendable {
    let ledger: any BudgetLedger
    let limits: BudgetLimits
    let clock: any QieClock

    /// The budget an edit for `user` reserves with; nil when no limit is
    /// set. A request without `user` is refused while a per-user limit is
    /// set: its money could be charged to no one's budget.
    func budget(for user: String?) throws(GatewayError) -> GatewayBudget? {
        guard limits.isSet else { return nil }
        if let perUser = limits.perUserPerDay, user == nil {
            throw GatewayError(
                status: 400,
                message: "user is required: this gateway limits each end user's spending to $\(perUser) a UTC day, and an edit without one could be charged to no one's budget; name the end user in safety_identifier (or user)",
                type: "invalid_request_error", param: "user", code: "missing_required_parameter")
        }
        return GatewayBudget(ledger: ledger, limits: limits, user: user, clock: clock)
    }

    /// The day's money and each user's, now.
    func standing() async throws -> BudgetStanding { try await ledger.standing(day: BudgetDay.key(clock.now())) }
}

extension GatewayStore {
    /// A budget of `limit` USD per UTC day across every client, its days read from `clock`.
    func dailyBudget(limit: Decimal, clock: any QieClock) async throws -> any EditBudget {
        GatewayBudget(ledger: budgetLedger, limits: BudgetLimits(perDay: limit), user: nil, clock: clock)
    }
}

extension GatewayError {
    /// The answer to a failed edit whose request reserved with `budget`: a
    /// refusal says which limit refused it (the user's names the user) and
    /// when the UTC day starts again, by the budget's clock; anything else as
    /// `init(_:)` answers it.
    init(_ error: EditError, budget: (any EditBudget)?) {
        guard case .overBudget(let refusal) = error, let budget = budget as? GatewayBudget, let scope = budget.refusedBy else {
            self.init(error)
            return
        }
        let seconds = BudgetDay.secondsToReset(from: budget.clock.now())
        let resets = "the day starts again at 00:00 UTC, in \(Self.duration(seconds))"
        let amounts = "$\(refusal.spent) spent, $\(refusal.inFlight) in flight, this edit ~$\(refusal.estimate)"
        let message: String
        switch scope {
        case .day:
            message = "not sent: it would pass the gateway's budget of $\(refusal.limit) per UTC day (\(amounts)); \(resets)"
        case .user(let user):
            message = "not sent: it would pass the budget of $\(refusal.limit) per UTC day of user \"\(GatewayLogHandler.capped(user))\" (\(amounts)); \(resets)"
        }
        self.init(
            status: 429, message: message, type: "insufficient_quota", code: "gateway_budget_reached", retryAfter: seconds)
    }

    /// `seconds` as hours and minutes (`3 h 05 min`), or minutes and seconds under an hour.
    static func duration(_ seconds: Int) -> String {
        if seconds >= 3600 { return String(format: "%d h %02d min", seconds / 3600, (seconds % 3600) / 60) }
        if seconds >= 60 { return String(format: "%d min %02d s", seconds / 60, seconds % 60) }
        return "\(seconds) s"
    }
}

// MARK: SQLite

/// The budgets' money in the SQLite state file: `budget_days` (each day's
/// spending), `budget_user_days` (each user's) and `budget_reservations`
/// (money in flight, with its user), changed in one write transaction each.
struct SQLiteBudgetLedger: BudgetLedger {
    let database: DatabaseQueue

    func reserve(ids: [String], micros: [Int64], day: String, user: String?, limits: MicroLimits) async throws -> LedgerRefusal? {
        try await database.write { db in
            let all = try Self.amounts(db, day: day, user: nil)
            let own = try user.map { (name: $0, amounts: try Self.amounts(db, day: day, user: $0)) }
            if let refusal = limits.refusal(asked: micros.reduce(0, +), all: all, user: own) { return refusal }
            for (id, micro) in zip(ids, micros) {
                try db.execute(
                    sql: "INSERT INTO budget_reservations (id, day, micros, endUser) VALUES (?, ?, ?, ?)",
                    arguments: [id, day, micro, user])
            }
            return nil
        }
    }

    /// The day's money, or `user`'s that day.
    private static func amounts(_ db: Database, day: String, user: String?) throws -> BudgetAmounts {
        guard let user else {
            return BudgetAmounts(
                spent: try Int64.fetchOne(db, sql: "SELECT spentMicros FROM budget_days WHERE day = ?", arguments: [day]) ?? 0,
                held: try Int64.fetchOne(
                    db, sql: "SELECT COALESCE(SUM(micros), 0) FROM budget_reservations WHERE day = ?", arguments: [day]) ?? 0)
        }
        return BudgetAmounts(
            spent: try Int64.fetchOne(
                db, sql: "SELECT spentMicros FROM budget_user_days WHERE day = ? AND endUser = ?", arguments: [day, user]) ?? 0,
            held: try Int64.fetchOne(
                db, sql: "SELECT COALESCE(SUM(micros), 0) FROM budget_reservations WHERE day = ? AND endUser = ?",
                arguments: [day, user]) ?? 0)
    }

    func settle(_ id: String, micros: Int64) async throws {
        try await database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT day, endUser FROM budget_reservations WHERE id = ?", arguments: [id])
            else { return }
            let day: String = row["day"]
            let user: String? = row["endUser"]
            try db.execute(sql: "DELETE FROM budget_reservations WHERE id = ?", arguments: [id])
            try db.execute(
                sql: """
                    INSERT INTO budget_days (day, spentMicros) VALUES (?, ?)
                    ON CONFLICT(day) DO UPDATE SET spentMicros = spentMicros + excluded.spentMicros
                    """, arguments: [day, micros])
            if let user {
                try db.execute(
                    sql: """
                        INSERT INTO budget_user_days (day, endUser, spentMicros) VALUES (?, ?, ?)
                        ON CONFLICT(day, endUser) DO UPDATE SET spentMicros = spentMicros + excluded.spentMicros
                        """, arguments: [day, user, micros])
            }
        }
    }

    func standing(day: String) async throws -> BudgetStanding {
        try await database.read { db in
            var users: [String: BudgetAmounts] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT endUser, spentMicros FROM budget_user_days WHERE day = ?", arguments: [day]) {
                users[row["endUser"], default: BudgetAmounts()].spent += row["spentMicros"] as Int64
            }
            for row in try Row.fetchAll(
                db, sql: "SELECT endUser, SUM(micros) AS held FROM budget_reservations WHERE day = ? AND endUser IS NOT NULL GROUP BY endUser",
                arguments: [day])
            {
                users[row["endUser"], default: BudgetAmounts()].held += row["held"] as Int64
            }
            return BudgetStanding(day: day, all: try Self.amounts(db, day: day, user: nil), users: users)
        }
    }

    /// Each reservation's end user, and each user's spending per day.
    static func migrate(_ db: Database) throws {
        try db.alter(table: "budget_reservations") { table in table.add(column: "endUser", .text) }
        try db.create(table: "budget_user_days") { table in
            table.column("day", .text).notNull()
            table.column("endUser", .text).notNull()
            table.column("spentMicros", .integer).notNull()
            table.primaryKey(["day", "endUser"])
        }
    }
}

// MARK: PostgreSQL

/// The budgets' money in PostgreSQL, across every replica: each reservation
/// is a row (with its end user) until it settles, taken under a lock on the
/// day's row, so replicas together never pass the day's limit nor a user's.
/// A replica that stops with edits in flight leaves their reservations
/// counted (they may have been billed), as the SQLite state does.
struct PostgresBudgetLedger: BudgetLedger {
    let database: QieStore.PostgresDatabase
    let replica: String

    func reserve(ids: [String], micros: [Int64], day: String, user: String?, limits: MicroLimits) async throws -> LedgerRefusal? {
        let (replica, logger) = (replica, database.logger)
        return try await database.transaction { connection in
            try await connection.query(
                "INSERT INTO qie_gateway_budget_days (day) VALUES (\(day)) ON CONFLICT (day) DO NOTHING", logger: logger)
            // Every reservation of the day waits for this lock: the sums read below stay true until commit.
            var all = BudgetAmounts()
            for try await value in try await connection.query(
                "SELECT spent_micros FROM qie_gateway_budget_days WHERE day = \(day) FOR UPDATE", logger: logger
            ).decode(Int64.self) {
                all.spent = value
            }
            for try await value in try await connection.query(
                "SELECT COALESCE(SUM(micros), 0)::bigint FROM qie_gateway_budget_reservations WHERE day = \(day)", logger: logger
            ).decode(Int64.self) {
                all.held = value
            }
            var own: (name: String, amounts: BudgetAmounts)? = nil
            if let user {
                var amounts = BudgetAmounts()
                for try await value in try await connection.query(
                    "SELECT spent_micros FROM qie_gateway_budget_user_days WHERE day = \(day) AND end_user = \(user)", logger: logger
                ).decode(Int64.self) {
                    amounts.spent = value
                }
                for try await value in try await connection.query(
                    """
                    SELECT COALESCE(SUM(micros), 0)::bigint FROM qie_gateway_budget_reservations
                    WHERE day = \(day) AND end_user = \(user)
                    """, logger: logger
                ).decode(Int64.self) {
                    amounts.held = value
                }
                own = (user, amounts)
            }
            if let refusal = limits.refusal(asked: micros.reduce(0, +), all: all, user: own) { return refusal }
            for (id, micro) in zip(ids, micros) {
                try await connection.query(
                    """
                    INSERT INTO qie_gateway_budget_reservations (id, day, micros, replica, end_user)
                    VALUES (\(id), \(day), \(micro), \(replica), \(user))
                    """, logger: logger)
            }
            return nil
        }
    }

    func settle(_ id: String, micros: Int64) async throws {
        let logger = database.logger
        try await database.transaction { connection in
            var ended: [(String, String?)] = []
            for try await row in try await connection.query(
                "DELETE FROM qie_gateway_budget_reservations WHERE id = \(id) RETURNING day, end_user", logger: logger
            ).decode((String, String?).self) {
                ended.append(row)
            }
            for (day, user) in ended {
                try await connection.query(
                    "UPDATE qie_gateway_budget_days SET spent_micros = spent_micros + \(micros) WHERE day = \(day)", logger: logger)
                if let user {
                    try await connection.query(
                        """
                        INSERT INTO qie_gateway_budget_user_days (day, end_user, spent_micros) VALUES (\(day), \(user), \(micros))
                        ON CONFLICT (day, end_user) DO UPDATE SET spent_micros = qie_gateway_budget_user_days.spent_micros + excluded.spent_micros
                        """, logger: logger)
                }
            }
        }
    }

    func standing(day: String) async throws -> BudgetStanding {
        var all = BudgetAmounts()
        for spent in try await database.rows(
            "SELECT spent_micros FROM qie_gateway_budget_days WHERE day = \(day)", { try $0.decode(Int64.self) })
        {
            all.spent = spent
        }
        var users: [String: BudgetAmounts] = [:]
        for (user, spent) in try await database.rows(
            "SELECT end_user, spent_micros FROM qie_gateway_budget_user_days WHERE day = \(day)", { try $0.decode((String, Int64).self) })
        {
            users[user, default: BudgetAmounts()].spent += spent
        }
        for (user, held) in try await database.rows(
            """
            SELECT COALESCE(end_user, ''), COALESCE(SUM(micros), 0)::bigint, (end_user IS NULL)
            FROM qie_gateway_budget_reservations WHERE day = \(day) GROUP BY end_user
            """, { row -> (String?, Int64) in
                let (user, held, anonymous) = try row.decode((String, Int64, Bool).self)
                return (anonymous ? nil : user, held)
            })
        {
            all.held += held
            if let user { users[user, default: BudgetAmounts()].held += held }
        }
        return BudgetStanding(day: day, all: all, users: users)
    }

    /// Each reservation's end user, and each user's spending per day.
    static let migration: [String] = [
        "ALTER TABLE qie_gateway_budget_reservations ADD COLUMN end_user text",
        """
        CREATE TABLE qie_gateway_budget_user_days (
            day text NOT NULL, end_user text NOT NULL, spent_micros bigint NOT NULL DEFAULT 0, PRIMARY KEY (day, end_user))
        """,
    ]
}
