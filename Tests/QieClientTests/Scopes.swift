import AsyncHTTPClient
import Foundation
import NIOCore
import QieClient
import QieEmulator
import QieProviders
import Testing

// Everything a test starts (clients, servers, listeners, drivers) is scoped:
// it ends with the test's closure on every path, thrown errors included, so
// nothing outlives its test.

/// `body`'s value, once `cleanup` has run, whether the body returned or
/// threw (the body's error is the one thrown).
func ending<T>(with cleanup: () async throws -> Void, _ body: () async throws -> T) async throws -> T {
    let value: T
    do {
        value = try await body()
    } catch {
        try? await cleanup()
        throw error
    }
    try await cleanup()
    return value
}

/// A client for one test (on `clock`), shut down afterwards whatever happens.
@discardableResult
func withTestClient<T>(
    connectTimeout: TimeAmount = .seconds(10), clock: any QieClock = SystemClock(), _ body: (EditClient) async throws -> T
) async throws -> T {
    let client = EditClient(
        retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.05, maxDelay: 1), connectTimeout: connectTimeout, clock: clock)
    return try await ending(with: { try await client.shutdown() }) { try await body(client) }
}

/// A bare HTTP client for one test, shut down afterwards whatever happens.
func withHTTPClient<T>(_ configuration: HTTPClient.Configuration, _ body: (HTTPClient) async throws -> T) async throws -> T {
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    return try await ending(with: { try await http.shutdown() }) { try await body(http) }
}

/// A service that stopped before it said it was ready.
struct ServiceDidNotStart: Error {}

/// Runs `service` beside `body`, which starts once the service calls
/// `ready` (with what it is ready on, such as its port); when the body
/// ends, however it ends, the service is cancelled and awaited.
func whileRunning<Ready: Sendable, T>(
    _ service: @escaping @Sendable (_ ready: @escaping @Sendable (Ready) -> Void) async throws -> Void,
    _ body: (Ready) async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        let (readiness, announce) = AsyncStream<Ready>.makeStream()
        group.addTask {
            defer { announce.finish() }
            try await service { announce.yield($0) }
        }
        defer { group.cancelAll() }
        var iterator = readiness.makeAsyncIterator()
        guard let ready = await iterator.next() else {
            try await group.waitForAll()
            throw ServiceDidNotStart()
        }
        return try await body(ready)
    }
}

/// Runs an emulator on 127.0.0.1 for the body of a test. Answers the test
/// held are let go when the body ends, so the server stops with nothing
/// waiting in it.
func withEmulator(signingSecret: String? = nil, _ body: (EditEmulator, String) async throws -> Void) async throws {
    let emulator = EditEmulator(apiKey: "test-key", signingSecret: signingSecret)
    try await whileRunning({ ready in try await emulator.run(port: 0) { ready($0) } }) { port in
        defer { emulator.release() }
        try await body(emulator, "http://127.0.0.1:\(port)")
    }
}

/// `work`'s value, with `clock` moved on by `step` each time something
/// sleeps on it (by default to the earliest deadline): the work's pauses
/// pass as soon as it takes them, and time never moves while it is busy.
/// A `step` that waits for an event first (the emulator's job ending)
/// keeps time from running ahead of that event. Only for work whose every
/// pause should pass: a wait for a signal would time out at once.
func advancingClock<T>(
    _ clock: ManualClock, by step: @escaping @Sendable (ManualClock) async -> Void = { $0.advanceToNextDeadline() },
    _ work: () async throws -> T
) async throws -> T {
    let driver = Task {
        while !Task.isCancelled {
            await clock.waitForSleepers(1)
            if Task.isCancelled { return }
            await step(clock)
        }
    }
    let outcome: Result<T, any Error>
    do {
        outcome = .success(try await work())
    } catch {
        outcome = .failure(error)
    }
    // The driver may be waiting for a sleeper: one that sleeps until it is
    // cancelled lets it see that it is cancelled.
    driver.cancel()
    let wake = Task { try await clock.sleep(until: .distantFuture) }
    await driver.value
    wake.cancel()
    _ = await wake.result
    return try outcome.get()
}

extension Trait where Self == TimeLimitTrait {
    /// A time limit that only a hang reaches: tests wait on events and on
    /// clocks they move, however long a loaded machine takes to get there
    /// (in a full test run a test can wait most of a minute for a thread).
    static var hangGuard: Self { .timeLimit(.minutes(10)) }
}
