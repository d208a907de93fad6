import Foundation
import NIOCore
import NIOFoundationCompat
import QiePipeline

/// What a store found for an idempotency key when asked to claim it.
enum KeyRecord: Sendable {
    /// Inserted as running for this gateway: the claimer runs the edit.
    case claimed
    /// An edit under the key finished: its answer as kept (`KeptAnswer`, JSON).
    case finished(Data)
    /// An edit under the key failed after it may have been billed.
    case failed(reason: String)
    /// Another gateway (`holder`) runs it; `alive` says whether it still beats.
    case running(holder: String, alive: Bool)
}

/// How an edit under a key ended, as a store writes it down.
enum KeptOutcome: Sendable {
    /// It finished: its answer as kept (`KeptAnswer`, JSON).
    case finished(Data)
    /// It failed after the endpoint may have charged, for this reason.
    case failed(reason: String)
}

/// Where a gateway store keeps its idempotency keys: the rows only. Who
/// waits for whom is `KeyedEdits`'s, the same over every store.
protocol KeyRecords: Sendable {
    /// Inserts `key` as running here, or reads what is there.
    func claim(_ key: String) async throws -> KeyRecord
    /// Records how the edit under `key` ended.
    func finish(_ key: String, _ outcome: KeptOutcome) async throws
    /// Deletes `key`'s running row: nothing was sent, the next claim runs it.
    func release(_ key: String) async
    /// Marks `key`, run by `holder` that stopped, as failed with what may have been charged.
    func markStopped(_ key: String, holder: String) async throws
}

/// Result files a store serves by id, each until its lifetime ends.
protocol ResultFiles: Sendable {
    /// Keeps `image` for `lifetime` seconds; returns its id.
    func addFile(_ image: EditedImage, lifetime: TimeInterval) async throws -> String
    /// The file `id` with its content type, or nil when unknown or expired.
    func file(_ id: String) async throws -> (body: ByteBuffer, contentType: String)?
}

/// A finished edit's answer as an idempotency key keeps it: the result
/// without its images' bytes, which are result files living as long as the
/// key, so a day of answers is not held in rows (or in memory when read).
struct KeptAnswer: Codable {
    /// The result, each image's bytes left out.
    var result: EditResult
    /// The id of each image's file, in order.
    var files: [String]

    /// Keeps `result`'s images as files for `lifetime` seconds; the answer to write down.
    static func keep(_ result: EditResult, in files: any ResultFiles, lifetime: TimeInterval) async throws -> Data {
        var ids: [String] = []
        for image in result.images { ids.append(try await files.addFile(image, lifetime: lifetime)) }
        var bare = result
        bare.images = result.images.map { EditedImage(data: Data(), format: $0.format, size: $0.size) }
        return try JSONEncoder().encode(KeptAnswer(result: bare, files: ids))
    }

    /// The result written down as `data`, its images read back from their
    /// files; a failure when they are gone. Answers written before images
    /// were kept as files hold them inline.
    static func restore(_ data: Data, from files: any ResultFiles) async throws -> IdempotencyClaim {
        guard let kept = try? JSONDecoder().decode(KeptAnswer.self, from: data) else {
            if let inline = try? JSONDecoder().decode(EditResult.self, from: data) { return .finished(inline) }
            return .failed(.failedEarlier(reason: "the first answer under this key could not be read back"))
        }
        var result = kept.result
        guard kept.files.count == result.images.count else {
            return .failed(.failedEarlier(reason: "the first answer under this key could not be read back"))
        }
        for (index, id) in kept.files.enumerated() {
            guard let file = try await files.file(id) else {
                return .failed(.failedEarlier(reason: "the first answer's images are no longer kept"))
            }
            result.images[index].data = Data(buffer: file.body)
        }
        return .finished(result)
    }
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
    /// Where finished answers' images are kept, for `lifetime` seconds.
    private let files: any ResultFiles
    private let lifetime: TimeInterval
    private let clock: any QieClock
    /// Keys this process holds (claiming, or running their edit), each with its waiters.
    private var holds: [String: [UInt64: CheckedContinuation<Wake, any Error>]] = [:]
    private var nextWaiter: UInt64 = 0

    init(records: any KeyRecords, files: any ResultFiles, lifetime: TimeInterval, clock: any QieClock) {
        self.records = records
        self.files = files
        self.lifetime = lifetime
        self.clock = clock
    }

    /// How many requests wait on keys here (for tests: none may be left behind).
    var waiting: Int { holds.values.reduce(0) { $0 + $1.count } }
    /// How many keys this process holds.
    var held: Int { holds.count }

    func claim(_ key: String) async throws -> IdempotencyClaim {
        try await claim(key, waiting: {})
    }

    func claim(_ key: String, waiting: @escaping @Sendable () async -> Void) async throws -> IdempotencyClaim {
        // Said once, before the first wait of either kind.
        var said = false
        let wait: @Sendable () async -> Void = waiting
        while true {
            try Task.checkCancellation()
            if holds[key] != nil {
                if !said {
                    said = true
                    await wait()
                    continue
                }
                switch try await self.wait(for: key) {
                case .outcome(let claim): return claim
                case .again: continue
                }
            }
            holds[key] = [:]
            do {
                let claim = try await decide(key, waiting: said ? nil : wait)
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
    private func decide(_ key: String, waiting: (@Sendable () async -> Void)?) async throws -> IdempotencyClaim {
        var pause = 0.05
        var waiting = waiting
        while true {
            switch try await records.claim(key) {
            case .claimed:
                return .claimed
            case .finished(let answer):
                return try await KeptAnswer.restore(answer, from: files)
            case .failed(let reason):
                return .failed(.failedEarlier(reason: reason))
            case .running(let holder, let alive):
                if !alive {
                    try await records.markStopped(key, holder: holder)
                    continue
                }
                if let said = waiting {
                    waiting = nil
                    await said()
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
        let files = self.files
        let lifetime = self.lifetime
        let claim = await Task { () -> IdempotencyClaim in
            switch outcome {
            case .finished(let result):
                do {
                    try await records.finish(key, .finished(try await KeptAnswer.keep(result, in: files, lifetime: lifetime)))
                    return .finished(result)
                } catch {
                    let reason = "the first answer under this key could not be kept (\(error))"
                    try? await records.finish(key, .failed(reason: reason))
                    return .failed(.failedEarlier(reason: reason))
                }
            case .failed(let error):
                do {
                    try await records.finish(key, .failed(reason: error.reason(naming: GatewayField.name)))
                } catch {
                    return .failed(.ledger("the idempotency record could not be written: \(error)"))
                }
                return .failed(error)
            }
        }.value
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
