import Foundation
import Synchronization

/// Where an edit reserves its estimated cost before anything is sent, and
/// settles it afterwards. `Budget` is the in-process one; a shared store
/// (the gateway's daily budget on PostgreSQL, say) implements the same two
/// calls against its database.
public protocol EditBudget: Sendable {
    /// Reserves `estimate` USD; a refusal (and no reservation) when it would
    /// pass the limit. A store that cannot be reached throws, and nothing is sent.
    func reserve(_ estimate: Decimal) async throws -> BudgetRefusal?
    /// A reserved edit ended: it cost `actual` (nil: nothing, it was never
    /// accepted). A store that cannot record it keeps the reservation counted.
    func settle(_ estimate: Decimal, actual: Decimal?) async
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

/// A spending limit: money spent plus money in flight never goes past it.
/// An edit reserves its estimate before it is sent; the reservation becomes
/// spending when it completes (the reported cost replacing the estimate) and
/// is released when it fails before being accepted.
public final class Budget: EditBudget {
    /// The limit, USD.
    public let limit: Decimal
    private struct State {
        var spent: Decimal
        var inFlight: Decimal = 0
        var refused = false
    }

    private let state: Mutex<State>

    /// `spent`: what the ledger says earlier runs already spent or committed.
    public init(limit: Decimal, spent: Decimal) {
        self.limit = limit
        self.state = Mutex(State(spent: spent))
    }

    /// Reserves `estimate`; a refusal (and no reservation) when it would pass the limit.
    public func reserve(_ estimate: Decimal) -> BudgetRefusal? {
        state.withLock { state in
            guard state.spent + state.inFlight + estimate <= limit else {
                state.refused = true
                return BudgetRefusal(limit: limit, spent: state.spent, inFlight: state.inFlight, estimate: estimate)
            }
            state.inFlight += estimate
            return nil
        }
    }

    /// A reserved job ended: it cost `actual` (nil: nothing, it was never accepted).
    public func settle(_ estimate: Decimal, actual: Decimal?) {
        state.withLock { state in
            state.inFlight -= estimate
            if let actual { state.spent += actual }
        }
    }

    /// Spent so far, USD.
    public var spent: Decimal { state.withLock { $0.spent } }
    /// Reserved by edits in flight, USD.
    public var inFlight: Decimal { state.withLock { $0.inFlight } }
    /// Whether a job was held back by the limit.
    public var wasReached: Bool { state.withLock { $0.refused } }
}

/// At most `perSecond` submissions a second to one endpoint, spaced evenly.
public final class RateLimiter: Sendable {
    private let interval: Duration
    private let next = Mutex(ContinuousClock.now)

    /// A limiter letting `perSecond` submissions through each second.
    public init(perSecond: Double) {
        interval = .nanoseconds(Int64(1_000_000_000 / max(0.001, perSecond)))
    }

    /// Waits for this caller's turn.
    public func wait() async throws {
        let slot = next.withLock { next -> ContinuousClock.Instant in
            let slot = max(next, ContinuousClock.now)
            next = slot + interval
            return slot
        }
        try await Task.sleep(until: slot)
    }
}
