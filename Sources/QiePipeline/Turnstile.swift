import Synchronization

/// Lets at most `capacity` tasks through at once; the others wait, and go
/// through in the order they arrived, urgent ones first. An editor lets one
/// image per core be decoded, resized or encoded this way, so that many
/// edits at once neither thrash the cores nor hold every image in memory
/// together, and the edit that asked first is prepared first; work an
/// endpoint waits on (preparing a request) goes before work on results
/// already back. The gateway admits its requests this way, with a bounded
/// queue.
package final class Turnstile: Sendable {
    private struct State {
        var free: Int
        var urgent: [CheckedContinuation<Bool, Never>] = []
        var waiting: [CheckedContinuation<Bool, Never>] = []
    }

    private let state: Mutex<State>

    /// A turnstile for `capacity` tasks at once (at least one).
    package init(capacity: Int) { state = Mutex(State(free: max(1, capacity))) }

    /// Waits for a place. Every `enter` must be matched by one `leave`.
    package func enter(urgent: Bool = false) async { _ = await enter(queueLimit: .max, urgent: urgent) }

    /// Waits for a place, unless `queueLimit` tasks are waiting already:
    /// then false at once, and nothing to leave. An `urgent` task goes
    /// before every task that is not.
    package func enter(queueLimit: Int, urgent: Bool = false) async -> Bool {
        await withCheckedContinuation { (place: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { state -> Bool? in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                guard state.urgent.count + state.waiting.count < queueLimit else { return false }
                if urgent { state.urgent.append(place) } else { state.waiting.append(place) }
                return nil
            }
            if let now { place.resume(returning: now) }
        }
    }

    /// Gives a place back: to the urgent task that has waited longest, else
    /// to the task that has, if any.
    package func leave() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if !state.urgent.isEmpty { return state.urgent.removeFirst() }
            guard !state.waiting.isEmpty else {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume(returning: true)
    }

    /// Tasks waiting for a place.
    package var waitingCount: Int { state.withLock { $0.urgent.count + $0.waiting.count } }

    /// Runs `work` once through (before the tasks that are not `urgent`, if
    /// it is), and gives the place back after.
    package func through<T: Sendable>(urgent: Bool = false, _ work: () async throws -> T) async throws -> T {
        await enter(urgent: urgent)
        defer { leave() }
        return try await work()
    }
}

/// Lets at most `capacity` numbered tasks through at once, in the order of
/// their numbers: task `n` goes through only after every task before it went
/// through or passed (ended without needing to). A folder run numbers its
/// jobs in the order it starts them, so they reach the endpoint in that order
/// however long each took to prepare.
final class OrderedTurnstile: Sendable {
    private struct State {
        var free: Int
        var next = 0
        var passed: Set<Int> = []
        var waiting: [Int: CheckedContinuation<Void, Never>] = [:]

        /// Admits whoever may go now; returns them to resume outside the lock.
        mutating func admit() -> [CheckedContinuation<Void, Never>] {
            var admitted: [CheckedContinuation<Void, Never>] = []
            while true {
                if passed.remove(next) != nil {
                    next += 1
                } else if free > 0, let task = waiting.removeValue(forKey: next) {
                    free -= 1
                    next += 1
                    admitted.append(task)
                } else {
                    return admitted
                }
            }
        }
    }

    private let state: Mutex<State>

    /// A turnstile for `capacity` tasks at once (at least one), numbered from 0.
    init(capacity: Int) { state = Mutex(State(free: max(1, capacity))) }

    /// Waits until task `number`'s turn has come and a place is free. Each
    /// number enters or passes once; every `enter` is matched by one `leave`.
    func enter(_ number: Int) async {
        await withCheckedContinuation { (place: CheckedContinuation<Void, Never>) in
            let admitted = state.withLock { state in
                state.waiting[number] = place
                return state.admit()
            }
            for task in admitted { task.resume() }
        }
    }

    /// Task `number` ends without going through: the ones after it need not wait for it.
    func pass(_ number: Int) {
        let admitted = state.withLock { state in
            state.passed.insert(number)
            return state.admit()
        }
        for task in admitted { task.resume() }
    }

    /// A task that went through gives its place back.
    func leave() {
        let admitted = state.withLock { state in
            state.free += 1
            return state.admit()
        }
        for task in admitted { task.resume() }
    }
}
