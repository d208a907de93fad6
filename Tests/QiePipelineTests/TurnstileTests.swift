import Synchronization
import Testing

@testable import QiePipeline

@Suite("Turnstile: bounded, first come first served")
struct TurnstileTests {
    /// The order in which tasks queued one after another behind a full
    /// turnstile of one place go through; `urgent[i]` says whether task i is.
    func passOrder(_ urgent: [Bool]) async throws -> [Int] {
        let turnstile = Turnstile(capacity: 1)
        let log = Log()
        // The place taken first, so every task queues.
        await turnstile.enter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, isUrgent) in urgent.enumerated() {
                group.addTask { try await turnstile.through(urgent: isUrgent) { log.enter(index) } }
                // Each task is queued before the next is added.
                while turnstile.waitingCount < index + 1 { await Task.yield() }
            }
            turnstile.leave()
            try await group.waitForAll()
        }
        #expect(turnstile.waitingCount == 0)
        return log.order.withLock { $0 }
    }

    @Test("Waiting tasks go through in the order they arrived")
    func firstComeFirstServed() async throws {
        #expect(try await passOrder(Array(repeating: false, count: 6)) == [0, 1, 2, 3, 4, 5])
    }

    @Test("Urgent tasks go through before the others, each kind in the order it arrived")
    func urgentFirst() async throws {
        // Even numbers ordinary, odd ones urgent.
        #expect(try await passOrder((0..<6).map { $0 % 2 == 1 }) == [1, 3, 5, 0, 2, 4])
    }

    @Test("With a queue limit, a task beyond it is refused at once and the waiting one still goes through")
    func queueLimit() async throws {
        let turnstile = Turnstile(capacity: 1)
        #expect(await turnstile.enter(queueLimit: 1))
        let waiting = Task { await turnstile.enter(queueLimit: 1) }
        while turnstile.waitingCount < 1 { await Task.yield() }
        #expect(await turnstile.enter(queueLimit: 1) == false)
        turnstile.leave()
        #expect(await waiting.value)
        turnstile.leave()
        #expect(await turnstile.enter(queueLimit: 0))
    }

    @Test("Never more than its capacity inside at once", arguments: [2, 3])
    func bounded(capacity: Int) async throws {
        let turnstile = Turnstile(capacity: capacity)
        let log = Log()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    try await turnstile.through {
                        log.enter(index)
                        // Stay inside until the turnstile is full (or every task is in):
                        // capacity is reached by what happens, not by how long each stays.
                        while log.inside.withLock({ $0.now }) < capacity && log.order.withLock({ $0.count }) < 40 {
                            await Task.yield()
                        }
                        log.leave()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(log.inside.withLock { $0.most } == capacity)
        #expect(log.order.withLock { $0.count } == 40)
    }

    @Test("Numbered: tasks go through in number order whatever order they arrive in; a passed number holds nobody up")
    func numbered() async throws {
        let turnstile = OrderedTurnstile(capacity: 1)
        let log = Log()
        let arrivals = [5, 3, 0, 4, 2, 6, 7]  // 1 ends without going through
        try await withThrowingTaskGroup(of: Void.self) { group in
            for number in arrivals {
                group.addTask {
                    await turnstile.enter(number)
                    log.enter(number)
                    await Task.yield()
                    log.leave()
                    turnstile.leave()
                }
            }
            turnstile.pass(1)
            try await group.waitForAll()
        }
        #expect(log.order.withLock { $0 } == [0, 2, 3, 4, 5, 6, 7])
        #expect(log.inside.withLock { $0.most } == 1)
    }
}

/// What the tasks inside saw.
private final class Log: Sendable {
    let inside = Mutex((now: 0, most: 0))
    let order = Mutex<[Int]>([])

    func enter(_ index: Int) {
        inside.withLock {
            $0.now += 1
            $0.most = max($0.most, $0.now)
        }
        order.withLock { $0.append(index) }
    }

    func leave() { inside.withLock { $0.now -= 1 } }
}
