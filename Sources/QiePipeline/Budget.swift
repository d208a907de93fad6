import Foundation
import Synchronization

/// `--max-cost`: money spent plus money in flight never goes past the limit.
/// A job reserves its estimate before it is sent; the reservation becomes
/// spending when it completes (the reported cost replacing the estimate) and
/// is released when the job fails before being accepted.
public final class Budget: Sendable {
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

    /// Reserves `estimate`; false (and no reservation) when it would pass the limit.
    public func reserve(_ estimate: Decimal) -> Bool {
        state.withLock { state in
            guard state.spent + state.inFlight + estimate <= limit else {
                state.refused = true
                return false
            }
            state.inFlight += estimate
            return true
        }
    }

    /// A reserved job ended: it cost `actual` (nil: nothing, it was never accepted).
    public func settle(_ estimate: Decimal, actual: Decimal?) {
        state.withLock { state in
            state.inFlight -= estimate
            if let actual { state.spent += actual }
        }
    }

    public var spent: Decimal { state.withLock { $0.spent } }
    public var inFlight: Decimal { state.withLock { $0.inFlight } }
    /// Whether a job was held back by the limit.
    public var wasReached: Bool { state.withLock { $0.refused } }
}

/// `--rate`: at most `perSecond` submissions a second to one endpoint,
/// spaced evenly.
public final class RateLimiter: Sendable {
    private let interval: Duration
    private let next = Mutex(ContinuousClock.now)

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
