import Foundation
import QieProviders

extension QieClock {
    /// What `work` returns, or nil when this clock reaches `deadline` first;
    /// the loser is cancelled and awaited, so nothing outlives the call.
    /// Throws what `work` throws, and `CancellationError` when the calling
    /// task is cancelled.
    func value<T: Sendable>(of work: @escaping @Sendable () async throws -> T, before deadline: Date) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await self.sleep(until: deadline)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}

/// A client's clock read as `ContinuousClock` instants, the type its
/// submissions and waits are timed in (`EditClient.Submission`,
/// `EditClient.wait`). An instant stands for the clock's time by its
/// distance from one reference taken when the client was made, so a time
/// and its instant convert both ways without reading either clock again:
/// with `SystemClock` an instant is the continuous clock's own, with a
/// `ManualClock` it moves only when that clock does.
struct ClockInstants: Sendable {
    private let origin: ContinuousClock.Instant
    private let originTime: Date

    /// Instants for `clock`, from its time now.
    init(_ clock: any QieClock) {
        origin = .now
        originTime = clock.now()
    }

    /// The instant that stands for `time`.
    func instant(_ time: Date) -> ContinuousClock.Instant { origin + .seconds(time.timeIntervalSince(originTime)) }

    /// The time `instant` stands for.
    func time(_ instant: ContinuousClock.Instant) -> Date { originTime.addingTimeInterval((instant - origin) / .seconds(1)) }
}
