import Foundation
import Synchronization

/// Where qie reads the time and waits. Leases, expiry, UTC days, polls,
/// retries and deadlines all ask a clock they were given, never `Date()`
/// directly: `SystemClock` is the machine's, and `ManualClock` moves only
/// when told to, so a test advances time instead of sleeping through it.
public protocol QieClock: Sendable {
    /// The calendar time: leases and expiry written down, UTC days.
    func now() -> Date
    /// Suspends until `now()` reaches `deadline` (at once when it has);
    /// throws `CancellationError` when the task is cancelled meanwhile.
    func sleep(until deadline: Date) async throws
}

extension QieClock {
    /// Suspends for `seconds` of this clock's time.
    public func sleep(for seconds: Double) async throws {
        try await sleep(until: now().addingTimeInterval(max(0, seconds)))
    }

    /// Seconds from now until `date` (negative once it has passed).
    public func seconds(until date: Date) -> Double { date.timeIntervalSince(now()) }
}

/// The machine's clock: `Date()` and `Task.sleep`.
public struct SystemClock: QieClock {
    /// The machine's clock.
    public init() {}

    /// The machine's calendar time.
    public func now() -> Date { Date() }

    /// Sleeps on the continuous clock until `deadline` by the calendar.
    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(for: .seconds(seconds)) } else { try Task.checkCancellation() }
    }
}

/// A clock that moves only when `advance(by:)` is called: a sleeper wakes
/// exactly when time passes its deadline, in deadline order, whatever the
/// machine is doing. `waitForSleepers(_:)` lets a test wait, by an event
/// rather than a pause, until the code under test is asleep before moving
/// time on.
public final class ManualClock: QieClock {
    private struct Sleeper {
        var id: UInt64
        var deadline: Date
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
        /// Tasks waiting for the number of sleepers to reach their count.
        var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

        /// The watchers whose count is reached, removed.
        mutating func satisfiedWatchers() -> [CheckedContinuation<Void, Never>] {
            var ready: [CheckedContinuation<Void, Never>] = []
            watchers.removeAll { watcher in
                guard sleepers.count >= watcher.count else { return false }
                ready.append(watcher.continuation)
                return true
            }
            return ready
        }
    }

    private let state: Mutex<State>

    /// A clock that reads `start` until it is advanced.
    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        state = Mutex(State(now: start))
    }

    /// The clock's time.
    public func now() -> Date { state.withLock { $0.now } }

    /// How many tasks are asleep on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Suspends until the clock is advanced to `deadline` or past it.
    public func sleep(until deadline: Date) async throws {
        try Task.checkCancellation()
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resumeNow, watchers) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if deadline <= state.now || Task.isCancelled { return (true, []) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return (false, state.satisfiedWatchers())
                }
                for watcher in watchers { watcher.resume() }
                if resumeNow {
                    if Task.isCancelled { continuation.resume(throwing: CancellationError()) } else { continuation.resume() }
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock on by `seconds` and wakes, in deadline order, every
    /// sleeper whose deadline is now reached.
    public func advance(by seconds: Double) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.addingTimeInterval(max(0, seconds))
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Moves the clock on to the earliest sleeper's deadline (when one is
    /// asleep) and wakes it, and any other due then.
    public func advanceToNextDeadline() {
        let next = state.withLock { state in state.sleepers.map(\.deadline).min().map { $0.timeIntervalSince(state.now) } }
        if let next { advance(by: max(0, next)) }
    }

    /// Returns once at least `count` tasks are asleep on this clock: a test
    /// waits here for the code it drives to reach its pause, then advances.
    public func waitForSleepers(_ count: Int = 1) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.sleepers.count >= count { return true }
                state.watchers.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
