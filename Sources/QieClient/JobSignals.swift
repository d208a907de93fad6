import Foundation
import Synchronization

/// Word that an asynchronous job has ended, from a callback or an event
/// stream, delivered to whoever waits for that job.
public struct JobSignal: Sendable, Equatable {
    /// The job's final answer when it came from a verified source (a signed
    /// callback); nil when the signal only says "look now" and the job must be
    /// polled for its result.
    public var payload: Data?

    /// A signal, with the job's final answer when a verified source sent it.
    public init(payload: Data?) { self.payload = payload }
}

/// Routes job signals to waiters by job id. A signal that arrives before
/// anyone waits for its job is kept (the most recent `capacity` of them), so a
/// job that ends while its submission's answer is still on the wire is not
/// missed.
public final class JobSignals: Sendable {
    private struct State {
        var arrived: [String: JobSignal] = [:]
        var arrivalOrder: [String] = []
        var waiting: [String: [UUID: CheckedContinuation<JobSignal?, Never>]] = [:]
        var abandoned: Set<UUID> = []

        mutating func take(_ id: String) -> JobSignal? {
            guard let signal = arrived.removeValue(forKey: id) else { return nil }
            arrivalOrder.removeAll { $0 == id }
            return signal
        }
    }

    private let state = Mutex(State())
    private let capacity: Int

    /// Signal routing that keeps up to `capacity` signals nobody waits for yet.
    public init(capacity: Int = 4096) { self.capacity = max(1, capacity) }

    /// Delivers a signal for job `id`: to its waiters, or kept for later.
    public func post(_ id: String, _ signal: JobSignal) {
        let waiters = state.withLock { state -> [CheckedContinuation<JobSignal?, Never>] in
            if let waiters = state.waiting.removeValue(forKey: id), !waiters.isEmpty { return Array(waiters.values) }
            if state.arrived.updateValue(signal, forKey: id) == nil { state.arrivalOrder.append(id) }
            while state.arrivalOrder.count > capacity { state.arrived[state.arrivalOrder.removeFirst()] = nil }
            return []
        }
        for waiter in waiters { waiter.resume(returning: signal) }
    }

    /// Waits at most `seconds` for a signal for job `id`; nil when none came
    /// (or the task was cancelled).
    public func wait(for id: String, upTo seconds: Double) async -> JobSignal? {
        if let signal = state.withLock({ $0.take(id) }) { return signal }
        let token = UUID()
        return await withTaskGroup(of: JobSignal?.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let ready = self.state.withLock { state -> JobSignal?? in
                            if state.abandoned.remove(token) != nil { return .some(nil) }
                            if let signal = state.take(id) { return .some(signal) }
                            state.waiting[id, default: [:]][token] = continuation
                            return .none
                        }
                        if case .some(let signal) = ready { continuation.resume(returning: signal) }
                    }
                } onCancel: {
                    self.abandon(id, token)
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(max(0, seconds)))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private func abandon(_ id: String, _ token: UUID) {
        let waiter = state.withLock { state -> CheckedContinuation<JobSignal?, Never>? in
            if let waiter = state.waiting[id]?.removeValue(forKey: token) {
                if state.waiting[id]?.isEmpty == true { state.waiting[id] = nil }
                return waiter
            }
            // Cancelled before the continuation was registered: leave a mark
            // so registration resumes at once.
            state.abandoned.insert(token)
            return nil
        }
        waiter?.resume(returning: nil)
    }
}
