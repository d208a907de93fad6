import Foundation
import QieProviders
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
/// missed. Signals whose source has stopped for good are closed
/// (`close(reason:)`): waits end at once, and waiting jobs are polled instead.
public final class JobSignals: Sendable {
    /// One wait for a job's signal. It is registered before the waiting task
    /// suspends (and before its deadline is set on the clock), so a signal
    /// posted in between is handed to it rather than kept for someone else.
    private enum Waiter {
        /// Waiting, not (or no longer) suspended.
        case registered
        /// Suspended until a signal comes.
        case suspended(CheckedContinuation<JobSignal?, Never>)
        /// A signal came while it was not suspended.
        case delivered(JobSignal)
    }

    private struct State {
        var arrived: [String: JobSignal] = [:]
        var arrivalOrder: [String] = []
        var waiting: [String: [UInt64: Waiter]] = [:]
        var lastToken: UInt64 = 0
        var closed: String? = nil

        mutating func take(_ id: String) -> JobSignal? {
            guard let signal = arrived.removeValue(forKey: id) else { return nil }
            arrivalOrder.removeAll { $0 == id }
            return signal
        }

        /// Ends the wait `token` for job `id`: what it had come to.
        mutating func remove(_ id: String, _ token: UInt64) -> Waiter? {
            let waiter = waiting[id]?.removeValue(forKey: token)
            if waiting[id]?.isEmpty == true { waiting[id] = nil }
            return waiter
        }
    }

    private let state = Mutex(State())
    private let capacity: Int

    /// Signal routing that keeps up to `capacity` signals nobody waits for yet.
    public init(capacity: Int = 4096) { self.capacity = max(1, capacity) }

    /// Delivers a signal for job `id`: to its waiters, or kept for later.
    public func post(_ id: String, _ signal: JobSignal) {
        let woken = state.withLock { state -> [CheckedContinuation<JobSignal?, Never>] in
            var taken = false
            var woken: [CheckedContinuation<JobSignal?, Never>] = []
            for (token, waiter) in state.waiting[id] ?? [:] {
                switch waiter {
                case .suspended(let continuation):
                    woken.append(continuation)
                    _ = state.remove(id, token)
                    taken = true
                case .registered:
                    state.waiting[id]?[token] = .delivered(signal)
                    taken = true
                case .delivered:
                    break
                }
            }
            if !taken {
                if state.arrived.updateValue(signal, forKey: id) == nil { state.arrivalOrder.append(id) }
                while state.arrivalOrder.count > capacity { state.arrived[state.arrivalOrder.removeFirst()] = nil }
            }
            return woken
        }
        for waiter in woken { waiter.resume(returning: signal) }
    }

    /// Why no more signals will come, once `close(reason:)` was called.
    public var closedReason: String? { state.withLock { $0.closed } }

    /// Says no more signals will come, and why (the source stopped for
    /// good): every wait, now and later, ends at once with what was already
    /// posted for its job, or nil.
    public func close(reason: String) {
        let woken = state.withLock { state -> [CheckedContinuation<JobSignal?, Never>] in
            if state.closed == nil { state.closed = reason }
            var woken: [CheckedContinuation<JobSignal?, Never>] = []
            for (id, waiters) in state.waiting {
                for (token, waiter) in waiters {
                    if case .suspended(let continuation) = waiter {
                        woken.append(continuation)
                        _ = state.remove(id, token)
                    }
                }
            }
            return woken
        }
        for waiter in woken { waiter.resume(returning: nil) }
    }

    /// Waits at most `seconds` of `clock`'s time for a signal for job `id`;
    /// nil when none came (or the task was cancelled, or the signals are closed).
    public func wait(for id: String, upTo seconds: Double, clock: any QieClock = SystemClock()) async -> JobSignal? {
        let deadline = clock.now().addingTimeInterval(max(0, seconds))
        let arrived = state.withLock { state -> (signal: JobSignal?, token: UInt64) in
            if let signal = state.take(id) { return (signal, 0) }
            if state.closed != nil { return (nil, 0) }
            state.lastToken += 1
            state.waiting[id, default: [:]][state.lastToken] = .registered
            return (nil, state.lastToken)
        }
        if let signal = arrived.signal { return signal }
        let token = arrived.token
        if token == 0 { return nil }
        let signal = try? await clock.value(of: { await self.suspend(id, token) }, before: deadline)
        // A signal handed over while the wait was ending counts.
        if case .delivered(let late)? = state.withLock({ $0.remove(id, token) }) { return late }
        return signal ?? nil
    }

    /// Suspends wait `token` for job `id` until a signal comes; nil when the
    /// task is cancelled first (the wait stays registered until it ends).
    private func suspend(_ id: String, _ token: UInt64) async -> JobSignal? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<JobSignal?, Never>) in
                let ready = state.withLock { state -> JobSignal?? in
                    switch state.waiting[id]?[token] {
                    case .registered? where !Task.isCancelled && state.closed == nil:
                        state.waiting[id]?[token] = .suspended(continuation)
                        return .none
                    case .delivered(let signal)?:
                        _ = state.remove(id, token)
                        return .some(signal)
                    case .registered?, .suspended?, nil:
                        return .some(nil)
                    }
                }
                if case .some(let signal) = ready { continuation.resume(returning: signal) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<JobSignal?, Never>? in
                guard case .suspended(let continuation)? = state.waiting[id]?[token] else { return nil }
                state.waiting[id]?[token] = .registered
                return continuation
            }
            waiter?.resume(returning: nil)
        }
    }
}
