import Foundation
import Synchronization

/// When to ask about an accepted job, learned from the jobs before it.
///
/// Every job that ends while polled tells how long it took: between the last
/// poll that found it running and the poll that found it done (or exactly,
/// where the endpoint reports its queue and run times, as RunPod's
/// `delayTime` and `executionTime`). From the recent ones the planner keeps
/// the spread of durations on each endpoint: a job is first asked about just
/// before the earliest of them, then at short intervals through the spread,
/// then less and less often; every pause carries a little jitter so jobs
/// submitted together do not poll in lockstep. Until an endpoint has a
/// finished job, its jobs are asked about after `WaitPolicy.firstInterval`,
/// growing by half. Polls to one endpoint are spaced to at most
/// `WaitPolicy.maxPollsPerSecond`. One planner serves every job of a client.
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
        /// The earliest moment the next poll to this endpoint may leave.
        var nextPoll: ContinuousClock.Instant = .now
    }

    private let state = Mutex<[String: Endpoint]>([:])
    /// Durations recorded so far, over all endpoints: a waiting job that sees
    /// it change plans again with what was learned.
    private let learned = Atomic<Int>(0)

    /// How many durations have been recorded (changes whenever one is).
    public var version: Int { learned.load(ordering: .relaxed) }
    /// Durations remembered per endpoint (the most recent ones).
    static let memory = 64

    /// A planner that has learned nothing yet.
    public init() {}

    /// Records a job on `endpoint` found done between `low` and `high`
    /// seconds after submission.
    public func record(endpoint: String, low: Double, high: Double) {
        guard low.isFinite, high.isFinite, high >= 0 else { return }
        let bracket = Bracket(low: max(0, min(low, high)), high: max(low, high))
        state.withLock { endpoints in
            var entry = endpoints[endpoint] ?? Endpoint()
            entry.durations.append(bracket)
            if entry.durations.count > Self.memory { entry.durations.removeFirst() }
            endpoints[endpoint] = entry
        }
        learned.add(1, ordering: .relaxed)
    }

    /// The spread of recent durations on `endpoint` (seconds): the early and
    /// late ends (10th and 90th percentiles of the brackets' middles, the
    /// tightest brackets counting most), or nil before any job ended.
    public func expected(endpoint: String) -> (early: Double, late: Double)? {
        spread(endpoint: endpoint).map { ($0.early, $0.late) }
    }

    /// `expected`, and how wide the median bracket is (how sure the planner is).
    private func spread(endpoint: String) -> (early: Double, late: Double, width: Double)? {
        let brackets = state.withLock { $0[endpoint]?.durations ?? [] }
        guard !brackets.isEmpty else { return nil }
        let widths = brackets.map(\.width).sorted()
        // Weighted quantiles: a bracket of 0.1 s says more than one of 2 s.
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
        return (quantile(0.1), quantile(0.9), widths[widths.count / 2])
    }

    /// The pause before the next poll of a job `elapsed` seconds after its
    /// submission (nil when unknown, for a job picked up from an earlier run),
    /// after `polls` polls, where the cold schedule's pause is `cold`.
    public func pause(endpoint: String, elapsed: Double?, cold: Double, policy: WaitPolicy) -> Double {
        if let fixed = policy.fixedInterval { return fixed }
        guard let elapsed, let (early, late, width) = spread(endpoint: endpoint) else { return cold }
        let step = max(0.05, 0.03 * (early + late) / 2)
        let pause: Double
        if elapsed < early - step / 2 {
            pause = early - step / 2 - elapsed  // just before the earliest expected end
        } else if elapsed < late + step {
            // Through the spread, often; less often while only loose
            // measurements are known (the first jobs', from the cold schedule).
            pause = max(step, (late - early) / 12, width / 3)
        } else {
            pause = min(policy.maxInterval, max(step, (elapsed - late) / 2))  // later than ever seen: less and less often
        }
        return max(0.05, pause + Double.random(in: -0.25...0.25) * step)
    }

    /// Waits for this endpoint's next poll slot, spacing polls to `perSecond`.
    public func admit(endpoint: String, perSecond: Double) async throws {
        guard perSecond > 0, perSecond.isFinite else { return }
        let slot = state.withLock { endpoints -> ContinuousClock.Instant in
            var entry = endpoints[endpoint] ?? Endpoint()
            let slot = max(ContinuousClock.now, entry.nextPoll)
            entry.nextPoll = slot + .seconds(1 / perSecond)
            endpoints[endpoint] = entry
            return slot
        }
        if slot > .now { try await Task.sleep(until: slot) }
    }
}
