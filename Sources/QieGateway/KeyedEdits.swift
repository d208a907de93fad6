import Foundation
import QiePipeline

/// What a store found for an idempotency key when asked to claim it.
enum KeyRecord: Sendable {
    /// Inserted as running for this gateway: the claimer runs the edit.
    case claimed
    /// An edit under the key finished with this result.
    case finished(EditResult)
    /// An edit under the key failed after it may have been billed.
    case failed(reason: String)
    /// Another gateway (`holder`) runs it; `alive` says whether it still beats.
    case running(holder: String, alive: Bool)
}

/// Where a gateway store keeps its idempotency keys: the rows only. Who
/// waits for whom is `KeyedEdits`'s, the same over every store.
protocol KeyRecords: Sendable {
    /// Inserts `key` as running here, or reads what is there.
    func claim(_ key: String) async throws -> KeyRecord
    /// Records how the edit under `key` ended; returns what its waiters get.
    func finish(_ key: String, _ outcome: IdempotencyOutcome) async -> IdempotencyClaim
    /// Deletes `key`'s running row: nothing was sent, the next claim runs it.
    func release(_ key: String) async
    /// Marks `key`, run by `holder` that stopped, as failed with what may have been charged.
    func markStopped(_ key: String, holder: String) async throws
}

/// Idempotency keys over a store's records, one per gateway process (SQLite
/// or PostgreSQL alike). A duplicate of a key this process runs waits in
/// memory and is woken the moment the first edit ends or gives the key up;
/// a key another replica runs is asked about again, less often each time,
/// until it ends or its replica stops beating. Every path that ends this
/// process's hold on a key wakes every waiter (with the outcome, or to claim
/// again), and a waiter whose request goes away (its client disconnected)
/// leaves at once.
actor KeyedEdits: IdempotencyStore {
    /// What wakes a waiter.
    private enum Wake: Sendable {
        /// The edit ended: this is the answer.
        case outcome(IdempotencyClaim)
        /// The key was given up: claim it again.
        case again
    }

    private let records: any KeyRecords
    private let clock: any QieClock
    /// Keys this process holds (claiming, or running their edit), each with its waiters.
    private var holds: [String: [UInt64: CheckedContinuation<Wake, any Error>]] = [:]
    private var nextWaiter: UInt64 = 0

    init(records: any KeyRecords, clock: any QieClock) {
        self.records = records
        self.clock = clock
    }

    /// How many requests wait on keys here (for tests: none may be left behind).
    var waiting: Int { holds.values.reduce(0) { $0 + $1.count } }
    /// How many keys this process holds.
    var held: Int { holds.count }

    func claim(_ key: String) async throws -> IdempotencyClaim {
        while true {
            try Task.checkCancellation()
            if holds[key] != nil {
                switch try await wait(for: key) {
                case .outcome(let claim): return claim
                case .again: continue
                }
            }
            holds[key] = [:]
            do {
                let claim = try await decide(key)
                if case .claimed = claim { return .claimed }  // held until it finishes or is released
                end(key, with: .outcome(claim))
                return claim
            } catch {
                end(key, with: .again)
                throw error
            }
        }
    }

    /// Asks the records until the key is this process's, or has an outcome.
    private func decide(_ key: String) async throws -> IdempotencyClaim {
        var pause = 0.05
        while true {
            switch try await records.claim(key) {
            case .claimed:
                return .claimed
            case .finished(let result):
                return .finished(result)
            case .failed(let reason):
                return .failed(.failedEarlier(reason: reason))
            case .running(let holder, let alive):
                if !alive {
                    try await records.markStopped(key, holder: holder)
                    continue
                }
                try await clock.sleep(for: pause)
                pause = min(1, pause * 1.5)
            }
        }
    }

    func finish(_ key: String, _ outcome: IdempotencyOutcome) async {
        // Written even when the request's task is cancelled (its client gone):
        // the outcome is what every retry of the key is answered with.
        let records = self.records
        let claim = await Task { await records.finish(key, outcome) }.value
        end(key, with: .outcome(claim))
    }

    func release(_ key: String) async {
        let records = self.records
        await Task { await records.release(key) }.value
        end(key, with: .again)
    }

    /// Ends this process's hold on `key`, waking every waiter.
    private func end(_ key: String, with wake: Wake) {
        guard let waiters = holds.removeValue(forKey: key) else { return }
        for waiter in waiters.values { waiter.resume(returning: wake) }
    }

    private func wait(for key: String) async throws -> Wake {
        nextWaiter += 1
        let id = nextWaiter
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Wake, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else if holds[key] == nil {
                    continuation.resume(returning: .again)
                } else {
                    holds[key]?[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.leave(key, waiter: id) }
        }
    }

    /// A waiter whose request went away leaves the queue.
    private func leave(_ key: String, waiter id: UInt64) {
        holds[key]?.removeValue(forKey: id)?.resume(throwing: CancellationError())
    }
}
