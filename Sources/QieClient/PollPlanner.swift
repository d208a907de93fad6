import Foundation
import QieProviders
import Synchronization

/// When to ask about an accepted job, learned from the jobs before it.
///
/// Every job that ends while polled tells how long it took: between the last
/// poll that found it running and the poll that found it done (or exactly,
/// where the endpoint reports its queue and run times, as RunPod's
/// `delayTime` and `executionTime`). From the recent ones the planner keeps
/// the spread of durations on each endpoint. Where the jobs take about the
/// same time, a job is asked about once, just after it; where they vary, it
/// is first asked about just before the earliest of them, then at short
/// intervals through the spread. A job running later than the others is
/// asked again soon, then less and less often; every pause carries a little
/// jitter so jobs submitted together do not poll in lockstep. Until an
/// endpoint has a finished job, its jobs are asked about after
/// `WaitPolicy.firstInterval` (give or take a third), growing by half.
/// Polls to one endpoint are kept to at most
/// `WaitPolicy.maxPollsPerSecond` in any second. One planner serves every
/// job of a client, and reads that client's clock: durations are learned
/// and polls admitted in its time.
public final class PollPlanner: Sendable {
    /// A job's duration: somewhere between `low` and `high` seconds after submission.
    struct Bracket: Sendable {
        var low: Double
        var high: Double
        var middle: Double { (low + high) / 2 }
        var width: Double { high - low }
    }

    private struct Endpoint {
        var durations: [Bracket] = []
        /// When the latest polls to this endpoint left (or will), oldest
        /// first: as many as the cap allows in one window.
        var recentPolls: [Date] = []
    }

    private struct State {
        var endpoints: [String: Endpoint] = [:]
        /// Durations recorded so far, over all endpoints: a waiting job that
        /// sees it change plans again with what was learned.
        var learned = 0
        /// Waits for the next duration recorded, by token.
        var listeners: [UInt64: CheckedContinuation<Int, Never>] = [:]
        var lastToken: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Where polls are admitted and durations measured.
    private let clock: any QieClock

    /// How many durations have been recorded (changes whenever one is).
    public var version: Int { state.withLock { $0.learned } }
    /// Durations remembered per endpoint (the most recent ones).
    static let memory = 64

    /// A planner that has learned nothing yet, admitting polls in `clock`'s time.
    public init(clock: any QieClock = SystemClock()) { self.clock = clock }

    /// Records a job on `endpoint` found done between `low` and `high`
    /// seconds after submission.
    public func record(endpoint: String, low: Double, high: Double) {
        guard low.isFinite, high.isFinite, high >= 0 else { return }
        let bracket = Bracket(low: max(0, min(low, high)), high: max(low, high))
        let (learned, listeners) = state.withLock { state in
            var entry = state.endpoints[endpoint] ?? Endpoint()
            entry.durations.append(bracket)
            if entry.durations.count > Self.memory { entry.durations.removeFirst() }
            state.endpoints[endpoint] = entry
            state.learned += 1
            defer { state.listeners = [:] }
            return (state.learned, Array(state.listeners.values))
        }
        for listener in listeners { listener.resume(returning: learned) }
    }

    /// Returns `version` once it has passed `known` (at once if it has): a
    /// job waiting to poll plans again when another job's end teaches the
    /// planner something. Returns at once when the task is cancelled.
    func lesson(after known: Int) async -> Int {
        let token = state.withLock { state in
            state.lastToken += 1
            return state.lastToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
                let ready = state.withLock { state -> Int? in
                    if state.learned > known || Task.isCancelled { return state.learned }
                    state.listeners[token] = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let (listener, learned) = state.withLock { ($0.listeners.removeValue(forKey: token), $0.learned) }
            listener?.resume(returning: learned)
        }
    }

    /// The spread of recent durations on `endpoint` (seconds): the early and
    /// late ends, or nil before any job ended. Where the jobs take about the
    /// same time (nine in ten were last seen running before nine in ten were
    /// found done), the ends are those two moments; otherwise the 10th and
    /// 90th percentiles of the brackets' middles, the tightest counting most.
    public func expected(endpoint: String) -> (early: Double, late: Double)? {
        plan(endpoint: endpoint).map { ($0.early, $0.late) }
    }

    /// What the planner knows of an endpoint's durations.
    struct Plan {
        /// The early and late ends of the durations.
        var early: Double
        var late: Double
        /// When to ask first (seconds after submission).
        var first: Double
        /// The pause between polls through the spread.
        var every: Double
        /// When nine in ten recent jobs had been found done: a job still
        /// running after it is overdue, and asked about often for a while.
        var latest: Double
    }

    /// The plan for `endpoint`'s next waits, from its recent brackets.
    func plan(endpoint: String) -> Plan? {
        let brackets = state.withLock { $0.endpoints[endpoint]?.durations ?? [] }
        guard !brackets.isEmpty else { return nil }
        func at(_ sorted: [Double], _ q: Double) -> Double { sorted[Int((Double(sorted.count - 1) * q).rounded())] }
        let lows = brackets.map(\.low).sorted(), highs = brackets.map(\.high).sorted()
        // Jobs that take about the same time: nine in ten were last seen
        // running before nine in ten others were found done. Then the
        // duration lies between those two moments, however loose each
        // bracket: ask once just after the later one.
        let running = at(lows, 0.9), done = at(highs, 0.1), latest = at(highs, 0.9)
        if brackets.count >= 3, running <= done {
            let step = Self.step(done)
            return Plan(early: running, late: done, first: done + step / 4, every: step, latest: latest)
        }
        // Otherwise weighted quantiles of the middles (a bracket of 0.1 s
        // says more than one of 2 s). Where they vary by more than a step,
        // the first poll comes just before the earliest expected end (at it
        // when the durations are reported exactly).
        let width = at(brackets.map(\.width).sorted(), 0.5)
        let weighted = brackets.map { ($0.middle, 1 / max(0.05, $0.width)) }.sorted { $0.0 < $1.0 }
        let total = weighted.reduce(0) { $0 + $1.1 }
        func quantile(_ q: Double) -> Double {
            var seen = 0.0
            for (value, weight) in weighted {
                seen += weight
                if seen >= q * total { return value }
            }
            return weighted.last!.0
        }
        let early = quantile(0.1), late = quantile(0.9)
        let step = Self.step((early + late) / 2)
        // Durations within a step of each other: once, just after the late end.
        if late - early <= step {
            return Plan(early: early, late: late, first: late + step / 4, every: step, latest: max(late, latest))
        }
        // Through the spread, often; less often while only loose
        // measurements are known (the first jobs', from the cold schedule).
        return Plan(
            early: early, late: late, first: early - min(step, width) / 2, every: max(step, (late - early) / 12, width / 3),
            latest: max(late, latest))
    }

    /// The shortest pause near an expected end: 3% of the duration, at least 50 ms.
    static func step(_ duration: Double) -> Double { max(0.05, 0.03 * duration) }

    /// The pause before the next poll of a job `elapsed` seconds after its
    /// submission (nil when unknown, for a job picked up from an earlier run),
    /// where the cold schedule's pause is `cold`.
    public func pause(endpoint: String, elapsed: Double?, cold: Double, policy: WaitPolicy) -> Double {
        if let fixed = policy.fixedInterval { return fixed }
        guard let elapsed, let plan = plan(endpoint: endpoint) else {
            // Nothing learned yet: jobs sent together spread their polls
            // (a third either way), so the first to end is found early and
            // what it teaches brings the others' polls forward.
            return cold * Double.random(in: 0.67...1.33)
        }
        let step = Self.step((plan.early + plan.late) / 2)
        let pause: Double
        if elapsed < plan.first - step / 4 {
            pause = plan.first - elapsed
        } else if elapsed < plan.latest {
            pause = plan.every  // through the spread
        } else if elapsed < plan.latest + 4 * step {
            pause = step  // past when jobs like it were found done: soon
        } else {
            pause = min(policy.maxInterval, max(step, (elapsed - plan.latest) / 2))  // later than ever seen: less and less often
        }
        return max(0.05, pause + Double.random(in: -0.25...0.25) * step)
    }

    /// Waits for this endpoint's next poll slot: at most `perSecond` polls
    /// in any one second (a sliding window, as endpoints count their rate
    /// limits), so jobs that end together are asked about together rather
    /// than one after another.
    public func admit(endpoint: String, perSecond: Double) async throws {
        guard perSecond > 0, perSecond.isFinite else { return }
        // Below one a second: one poll per 1/perSecond seconds.
        let allowed = max(1, Int(perSecond))
        let window = Double(allowed) / perSecond
        let now = clock.now()
        let slot = state.withLock { state -> Date in
            var entry = state.endpoints[endpoint] ?? Endpoint()
            var slot = now
            if entry.recentPolls.count >= allowed {
                slot = max(slot, entry.recentPolls[entry.recentPolls.count - allowed].addingTimeInterval(window))
            }
            entry.recentPolls.append(slot)
            if entry.recentPolls.count > allowed { entry.recentPolls.removeFirst(entry.recentPolls.count - allowed) }
            state.endpoints[endpoint] = entry
            return slot
        }
        if slot > now { try await clock.sleep(until: slot) }
    }
}
