import Foundation
import QieCore
import Synchronization

/// Where an edit reserves its estimated cost before anything is sent, and
/// settles it afterwards. `Budget` is the in-process one; a shared store
/// (the gateway's daily budget, on SQLite or PostgreSQL) implements the same
/// two calls against its database. What is settled is decided by the edit's
/// state machine (`PaidRequest`): money that may have been billed is never
/// released.
public protocol EditBudget: Sendable {
    /// Reserves `amounts` (one per request of an edit) together, all or
    /// none: their reservations, or a refusal when their sum would pass the
    /// limit. A store that cannot be reached throws, and nothing is sent.
    func reserve(_ amounts: [Decimal]) async throws -> BudgetDecision
    /// Ends `reservation`: `spent` of it was (or may have been) billed and
    /// counts as spending; the rest is released. A store that cannot record
    /// it keeps the whole reservation counted (never under the limit's side).
    func settle(_ reservation: BudgetReservation, spent: Decimal) async
}

/// What a budget said to a reservation.
public enum BudgetDecision: Sendable, Equatable {
    /// Reserved: one reservation per amount asked, in order.
    case reserved([BudgetReservation])
    /// Refused: nothing is reserved.
    case refused(BudgetRefusal)
}

/// Money a budget holds for one request until it is settled.
public struct BudgetReservation: Sendable, Hashable, Codable {
    /// The budget's own id for it.
    public var id: String
    /// The amount held, USD.
    public var amount: Decimal

    /// A reservation of `amount` known to its budget as `id`.
    public init(id: String, amount: Decimal) {
        self.id = id
        self.amount = amount
    }

    /// A new unique id for a reservation.
    public static func newID() -> String { UUID().uuidString.lowercased() }
}

/// Why a budget refused an edit: the limit, what is spent and in flight, and
/// what the edit would have added.
public struct BudgetRefusal: Sendable, Equatable, Codable {
    /// The limit, USD.
    public var limit: Decimal
    /// Spent so far, USD.
    public var spent: Decimal
    /// Reserved by edits in flight, USD.
    public var inFlight: Decimal
    /// The refused edit's estimate, USD.
    public var estimate: Decimal

    /// A refusal with these amounts.
    public init(limit: Decimal, spent: Decimal, inFlight: Decimal, estimate: Decimal) {
        self.limit = limit
        self.spent = spent
        self.inFlight = inFlight
        self.estimate = estimate
    }
}

/// A spending limit in memory: money spent plus money in flight never goes
/// past it. An edit reserves its estimate before it is sent; the
/// reservation becomes spending when it settles (the reported cost
/// replacing the estimate, or the estimate when the request may have been
/// billed), and is released only when nothing was billed.
public final class Budget: EditBudget {
    /// The limit, USD.
    public let limit: Decimal
    private struct State {
        var spent: Decimal
        var held: [String: Decimal] = [:]
        var refused = false
        var inFlight: Decimal { held.values.reduce(0, +) }
    }

    private let state: Mutex<State>

    /// `spent`: what earlier work already spent or committed.
    public init(limit: Decimal, spent: Decimal) {
        self.limit = limit
        self.state = Mutex(State(spent: spent))
    }

    /// Reserves `amounts` together; a refusal (and no reservation) when their sum would pass the limit.
    public func reserve(_ amounts: [Decimal]) -> BudgetDecision {
        state.withLock { state in
            let total = amounts.reduce(0, +)
            guard state.spent + state.inFlight + total <= limit else {
                state.refused = true
                return .refused(BudgetRefusal(limit: limit, spent: state.spent, inFlight: state.inFlight, estimate: total))
            }
            let reservations = amounts.map { BudgetReservation(id: BudgetReservation.newID(), amount: $0) }
            for reservation in reservations { state.held[reservation.id] = reservation.amount }
            return .reserved(reservations)
        }
    }

    /// Ends `reservation`, counting `spent` of it (once: a second settle changes nothing).
    public func settle(_ reservation: BudgetReservation, spent: Decimal) {
        state.withLock { state in
            guard state.held.removeValue(forKey: reservation.id) != nil else { return }
            state.spent += spent
        }
    }

    /// Spent so far (billed, or may have been), USD.
    public var spent: Decimal { state.withLock { $0.spent } }
    /// Reserved by edits in flight, USD.
    public var inFlight: Decimal { state.withLock { $0.inFlight } }
    /// Whether a job was held back by the limit.
    public var wasReached: Bool { state.withLock { $0.refused } }
}

/// At most `perSecond` submissions a second to one endpoint, spaced evenly
/// by `clock`.
public final class RateLimiter: Sendable {
    private let interval: Double
    private let clock: any QieClock
    private let next: Mutex<Date?> = Mutex(nil)

    /// A limiter letting `perSecond` submissions through each second.
    public init(perSecond: Double, clock: any QieClock = SystemClock()) {
        interval = 1 / max(0.001, perSecond)
        self.clock = clock
    }

    /// Waits for this caller's turn.
    public func wait() async throws {
        let now = clock.now()
        let slot = next.withLock { next -> Date in
            let slot = max(next ?? now, now)
            next = slot.addingTimeInterval(interval)
            return slot
        }
        try await clock.sleep(until: slot)
    }
}
