import Foundation
import NIOCore
import QieTestSupport
import Synchronization
import Testing

@testable import QieGateway
@testable import QiePipeline

/// A gateway store of `kind` for one test (SQLite in a new folder, or a new
/// PostgreSQL database), timed by `clock`, closed when `body` ends.
func withGatewayStore<T>(
    _ kind: StateKind, clock: any QieClock = SystemClock(), database: String? = nil,
    _ body: (any GatewayStore) async throws -> T
) async throws -> T {
    let folder = stateFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let store: any GatewayStore
    switch kind {
    case .sqlite:
        store = try SQLiteGatewayStore(folder: folder, clock: clock)
    case .postgres:
        let url = try PostgresURL(try database ?? PostgresServer.newDatabase())
        store = try await PostgresGatewayStore.open(url: url, lease: 30, connections: 8, clock: clock)
    }
    do {
        let result = try await body(store)
        await store.close()
        return result
    } catch {
        await store.close()
        throw error
    }
}

/// A small edit result, as an idempotency key keeps it.
func sampleResult(_ label: String) throws -> EditResult {
    let options = EditOptions(endpoint: "runpod")
    let profile = try options.profile()
    let plan = try options.plan(PixelSize(width: 64, height: 48), on: profile)
    let info = ImageInfo(
        format: .jpeg, width: 64, height: 48, orientation: 1, channels: 3, bitDepth: 8, hasAlpha: false, isAnimated: false,
        frameCount: 1, colourModel: "srgb", hasICCProfile: false, byteCount: 100)
    return EditResult(
        images: [EditedImage(data: Data(label.utf8), format: .png, size: PixelSize(width: 64, height: 48))], endpoint: profile.id,
        model: profile.model, prompt: label, seed: nil, source: info, plan: plan, restored: .exact, flow: .synchronous,
        requestIDs: [label], submissions: 1, polls: 0, estimatedCost: Decimal(string: "0.02"), reportedCost: nil,
        timings: EditTimings())
}

/// The store protocol's rules, the same on SQLite and PostgreSQL: idempotency
/// keys, result files, and the daily budget.
@Suite("The gateway's store: one set of rules on SQLite and on PostgreSQL")
struct GatewayStoreTests {
    @Test("A key: claimed once, duplicates wait and get its answer, a released key is claimed again", arguments: StateKind.allCases)
    func keys(kind: StateKind) async throws {
        try await withGatewayStore(kind) { store in
            let keys = store.idempotency
            #expect(try await keys.claim("k1").isClaimed)
            // A duplicate waits while the first runs.
            let duplicate = Task { try await keys.claim("k1") }
            let result = try sampleResult("first")
            await keys.finish("k1", .finished(result))
            guard case .finished(let answer) = try await duplicate.value else { Issue.record("no answer"); return }
            #expect(answer.prompt == "first")
            guard case .finished = try await keys.claim("k1") else { Issue.record("a finished key ran again"); return }
            // Released (nothing sent): the next claim runs it.
            #expect(try await keys.claim("k2").isClaimed)
            await keys.release("k2")
            #expect(try await keys.claim("k2").isClaimed)
            await keys.finish("k2", .failed(.endpoint(ClientError(kind: .uncertain, message: "HTTP 500", endpoint: "e"))))
            guard case .failed(let error) = try await keys.claim("k2") else { Issue.record("a failed key ran again"); return }
            #expect(error.reason(naming: \.name).contains("HTTP 500"))
        }
    }

    @Test("32 clients sending one key 100 times, cheap failures mixed in, never strand a request (the seed is printed)", .timeLimit(.minutes(3)), arguments: StateKind.allCases)
    func stress(kind: StateKind) async throws {
        let seed = SeededGenerator.seed(printedAs: "GatewayStoreTests.stress(\(kind))")
        try await withGatewayStore(kind) { store in
            let keys = try #require(store.idempotency as? KeyedEdits)
            for round in 0..<100 {
                let key = "round-\(round)"
                let result = try sampleResult(key)
                // Whoever claims it fails cheaply (nothing sent: released) for the first `failures` claims.
                var generator = SeededGenerator(seed: seed &+ UInt64(round))
                let failures = Int(generator.next() % 4)
                let claims = Counter()
                let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<32 {
                        group.addTask {
                            while true {
                                switch try await keys.claim(key) {
                                case .claimed:
                                    let order = claims.next()
                                    await Task.yield()
                                    if order <= failures {
                                        await keys.release(key)
                                        continue
                                    }
                                    await keys.finish(key, .finished(result))
                                    return "ran"
                                case .finished(let answer):
                                    return answer.prompt
                                case .failed(let error):
                                    return "failed: \(error)"
                                }
                            }
                        }
                    }
                    return try await group.reduce(into: [String]()) { $0.append($1) }
                }
                #expect(outcomes.count == 32)
                #expect(outcomes.filter { $0 == "ran" }.count == 1, "round \(round): \(outcomes.filter { $0 != key })")
                #expect(outcomes.filter { $0 == key }.count == 31, "round \(round) (seed \(seed))")
                #expect(claims.count == failures + 1)
            }
            #expect(await keys.waiting == 0)
            #expect(await keys.held == 0)
        }
    }

    @Test("A duplicate whose client goes away while it waits leaves at once; the others still get the answer", arguments: StateKind.allCases)
    func waiterLeaves(kind: StateKind) async throws {
        try await withGatewayStore(kind) { store in
            let keys = try #require(store.idempotency as? KeyedEdits)
            #expect(try await keys.claim("k").isClaimed)
            let leaving = Task { try await keys.claim("k") }
            let staying = Task { try await keys.claim("k") }
            while await keys.waiting < 2 { await Task.yield() }
            leaving.cancel()
            await #expect(throws: CancellationError.self) { try await leaving.value }
            #expect(await keys.waiting == 1)
            await keys.finish("k", .finished(try sampleResult("k")))
            guard case .finished = try await staying.value else { Issue.record("the staying duplicate got no answer"); return }
            #expect(await keys.waiting == 0)
            #expect(await keys.held == 0)
        }
    }

    @Test("A key run on another replica is waited for there; one whose replica stopped answers that it may have been charged")
    func keysAcrossReplicas() async throws {
        let database = try PostgresServer.newDatabase()
        try await withGatewayStore(.postgres, database: database) { first in
            let second = try await PostgresGatewayStore.open(url: try PostgresURL(database), lease: 30, connections: 4)
            #expect(try await first.idempotency.claim("shared").isClaimed)
            let waiting = Task { try await second.idempotency.claim("shared") }
            await first.idempotency.finish("shared", .finished(try sampleResult("shared")))
            guard case .finished(let answer) = try await waiting.value else { Issue.record("no answer"); return }
            #expect(answer.prompt == "shared")
            // A replica that stops while editing leaves its keys answered as possibly charged.
            #expect(try await second.idempotency.claim("orphan").isClaimed)
            await second.close()
            guard case .failed(let error) = try await first.idempotency.claim("orphan") else { Issue.record("ran again"); return }
            #expect(error.reason(naming: \.name).contains("may have charged"))
        }
    }

    @Test("Result files: kept with their type until they expire by the store's clock, then swept", arguments: StateKind.allCases)
    func files(kind: StateKind) async throws {
        let clock = ManualClock(start: Date())
        try await withGatewayStore(kind, clock: clock) { store in
            let image = EditedImage(data: Data([1, 2, 3]), format: .webp, size: PixelSize(width: 1, height: 1))
            let id = try await store.addFile(image, lifetime: 60)
            let found = try #require(try await store.file(id))
            #expect(Data(buffer: found.body) == Data([1, 2, 3]) && found.contentType == "image/webp")
            #expect(try await store.file(String(repeating: "0", count: 48)) == nil)
            #expect(try await store.file("../x") == nil)
            clock.advance(by: 61)
            try await store.sweep(keyLifetime: 3600)
            #expect(try await store.file(id) == nil)
        }
    }

    @Test("Keys and their requests are forgotten after their lifetime, by the store's clock; a running key never", arguments: StateKind.allCases)
    func keyLifetime(kind: StateKind) async throws {
        let clock = ManualClock(start: Date())
        try await withGatewayStore(kind, clock: clock) { store in
            #expect(try await store.bind("old", to: "request-a"))
            #expect(try await store.idempotency.claim("old").isClaimed)
            await store.idempotency.finish("old", .finished(try sampleResult("old")))
            #expect(try await store.bind("running", to: "request-b"))
            #expect(try await store.idempotency.claim("running").isClaimed)
            #expect(try await !store.bind("old", to: "request-c"))
            clock.advance(by: 120)
            try await store.sweep(keyLifetime: 60)
            #expect(try await store.bind("old", to: "request-c"), "an expired key is new")
            #expect(try await store.idempotency.claim("old").isClaimed)
            #expect(try await !store.bind("running", to: "request-d"), "a running key is kept")
        }
    }

    @Test("The daily budget: reservations together or none, settled once, kept across a restart, by UTC day", arguments: StateKind.allCases)
    func budget(kind: StateKind) async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))  // 2027-01-15, mid-day UTC
        let folder = stateFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let database = kind == .postgres ? try PostgresServer.newDatabase() : nil
        func open() async throws -> any GatewayStore {
            switch kind {
            case .sqlite: try SQLiteGatewayStore(folder: folder, clock: clock)
            case .postgres: try await PostgresGatewayStore.open(url: try PostgresURL(database!), lease: 30, connections: 4, clock: clock)
            }
        }
        let cents = { (text: String) in Decimal(string: text)! }
        var store: (any GatewayStore)? = try await open()
        var budget = try await store!.dailyBudget(limit: cents("0.10"), clock: clock)
        guard case .reserved(let three) = try await budget.reserve([cents("0.02"), cents("0.02"), cents("0.02")]) else {
            Issue.record("refused"); return
        }
        // Three held: two more would pass 0.10 together, so neither is reserved.
        guard case .refused(let refusal) = try await budget.reserve([cents("0.02"), cents("0.03")]) else { Issue.record("passed"); return }
        #expect(refusal == BudgetRefusal(limit: cents("0.10"), spent: 0, inFlight: cents("0.06"), estimate: cents("0.05")))
        await budget.settle(three[0], spent: cents("0.02"))  // billed
        await budget.settle(three[1], spent: 0)  // nothing billed: released
        await budget.settle(three[1], spent: cents("0.02"))  // settled once only
        // three[2] is left in flight, as by a gateway that stops: it stays counted.
        await store?.close()
        store = nil  // its folder's lock goes with it
        store = try await open()
        budget = try await store!.dailyBudget(limit: cents("0.10"), clock: clock)
        guard case .refused(let after) = try await budget.reserve([cents("0.07")]) else { Issue.record("passed"); return }
        #expect(after.spent == cents("0.02") && after.inFlight == cents("0.02"))
        guard case .reserved = try await budget.reserve([cents("0.06")]) else { Issue.record("refused"); return }
        // The next UTC day starts empty.
        clock.advance(by: 86_400)
        guard case .reserved = try await budget.reserve([cents("0.10")]) else { Issue.record("refused on a new day"); return }
        await store?.close()
    }
}


extension IdempotencyClaim {
    /// Whether the caller is to run the edit.
    var isClaimed: Bool { if case .claimed = self { true } else { false } }
}

/// A count shared by tasks.
final class Counter: Sendable {
    private let value = Mutex(0)
    /// Adds one; returns the new count.
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
    var count: Int { value.withLock { $0 } }
}
