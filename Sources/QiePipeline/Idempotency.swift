import Foundation

/// What a claim on an idempotency key found.
public enum IdempotencyClaim: Sendable {
    /// The key is new (or its earlier edit failed before reaching the
    /// endpoint): the caller runs the edit and finishes the key.
    case claimed
    /// An edit with this key finished: its result, without calling the endpoint again.
    case finished(EditResult)
    /// An edit with this key failed after reaching the endpoint (it may have
    /// been billed): its failure, without sending again.
    case failed(EditError)
}

/// How an edit under a key ended.
public enum IdempotencyOutcome: Sendable {
    /// It produced this result.
    case finished(EditResult)
    /// It failed after the endpoint may have charged for it.
    case failed(EditError)
}

/// Remembers edits by a caller's key (Stripe-style idempotency keys): a retry
/// with the same key returns the first answer and never pays twice; a
/// concurrent duplicate waits for the first to end.
public protocol IdempotencyStore: Sendable {
    /// Claims `key`: `.claimed` when the caller should run the edit, or the
    /// outcome of an edit that already ran. Waits while another caller holds it.
    func claim(_ key: String) async throws -> IdempotencyClaim
    /// Records how the edit under `key` ended; waiters receive it.
    func finish(_ key: String, _ outcome: IdempotencyOutcome) async
    /// Gives `key` up: the edit failed before anything was sent, so the next
    /// claim runs it again.
    func release(_ key: String) async
    /// Claims `key` as `claim(_:)` does, calling `waiting` once before the
    /// first wait (another caller holds the key), so a caller that limits
    /// the edits running at once can give its place back while it waits.
    func claim(_ key: String, waiting: @escaping @Sendable () async -> Void) async throws -> IdempotencyClaim
}

extension IdempotencyStore {
    /// Claims `key` without saying when it waits.
    public func claim(_ key: String, waiting: @escaping @Sendable () async -> Void) async throws -> IdempotencyClaim {
        try await claim(key)
    }
}

/// An idempotency store in memory, for one process (a shared store can
/// implement `IdempotencyStore` on a database).
public actor InMemoryIdempotencyStore: IdempotencyStore {
    private enum Entry {
        case running([CheckedContinuation<IdempotencyClaim, any Error>])
        case done(IdempotencyOutcome)
    }

    private var entries: [String: Entry] = [:]

    /// An empty store.
    public init() {}

    /// Claims `key`, waiting while another caller runs it.
    public func claim(_ key: String) async throws -> IdempotencyClaim {
        try await claim(key, waiting: {})
    }

    /// Claims `key`, waiting while another caller runs it (`waiting` is
    /// called before the wait).
    public func claim(_ key: String, waiting: @escaping @Sendable () async -> Void) async throws -> IdempotencyClaim {
        if case .running? = entries[key] { await waiting() }
        switch entries[key] {
        case nil:
            entries[key] = .running([])
            return .claimed
        case .done(.finished(let result))?:
            return .finished(result)
        case .done(.failed(let error))?:
            return .failed(error)
        case .running(var waiters)?:
            return try await withCheckedThrowingContinuation { continuation in
                waiters.append(continuation)
                entries[key] = .running(waiters)
            }
        }
    }

    /// Records the outcome and hands it to every waiter.
    public func finish(_ key: String, _ outcome: IdempotencyOutcome) {
        guard case .running(let waiters)? = entries[key] else { return }
        entries[key] = .done(outcome)
        let claim: IdempotencyClaim =
            switch outcome {
            case .finished(let result): .finished(result)
            case .failed(let error): .failed(error)
            }
        for waiter in waiters { waiter.resume(returning: claim) }
    }

    /// Frees `key`; the first waiter (if any) runs the edit next.
    public func release(_ key: String) {
        guard case .running(var waiters)? = entries[key] else { return }
        if waiters.isEmpty {
            entries[key] = nil
        } else {
            let next = waiters.removeFirst()
            entries[key] = .running(waiters)
            next.resume(returning: .claimed)
        }
    }
}
