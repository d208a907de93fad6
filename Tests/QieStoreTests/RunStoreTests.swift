import Foundation
import QieCore
import QieStore
import QieTestSupport
import Testing

/// The two stores a run can keep its jobs in.
enum StoreKind: String, CaseIterable, CustomStringConvertible {
    case sqlite, postgres
    var description: String { rawValue }
}

/// A new, empty store of `kind` for one test, and a second handle on the
/// same run (another worker's view: its own connections), both timed by
/// `clock`, closed by `body`'s end.
func withStores<T>(
    _ kind: StoreKind, clock: any QieClock = SystemClock(),
    _ body: (_ first: any RunStore, _ second: any RunStore) async throws -> T
) async throws -> T {
    let folder = NSTemporaryDirectory() + "qie-store-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let first: any RunStore
    let second: any RunStore
    switch kind {
    case .sqlite:
        first = try Ledger(folder: folder, clock: clock)
        second = try Ledger(folder: folder, clock: clock)
    case .postgres:
        let url = try PostgresURL(try PostgresServer.url)
        first = try await PostgresStore.open(url: url, scope: folder, clock: clock)
        second = try await PostgresStore.open(url: url, scope: folder, clock: clock)
    }
    do {
        let result = try await body(first, second)
        await first.close()
        await second.close()
        return result
    } catch {
        await first.close()
        await second.close()
        throw error
    }
}

func job(_ index: Int, key: String? = nil) -> LedgerJob {
    LedgerJob(
        key: key ?? "key-\(index)", inputPath: "/in/\(index).jpg", inputSHA256: String(repeating: "ab", count: 32),
        inputSize: Int64(1000 + index), inputModified: 1_700_000_000.5, copy: 0, endpoint: "runpod-qwen-image-edit-2511",
        prompt: "make it night", options: "{\"seed\":\"\(index)\"}")
}

@Suite("The run store's rules, on SQLite and on PostgreSQL")
struct RunStoreTests {
    @Test("A job is registered once per key, read back whole, and paged in order", arguments: StoreKind.allCases)
    func registerAndRead(_ kind: StoreKind) async throws {
        try await withStores(kind) { store, other in
            let first = try await store.register(job(1))
            let again = try await other.register(job(1))
            #expect(first.id != nil && again.id == first.id && again.state == .pending)
            #expect(again.inputPath == "/in/1.jpg" && again.inputSize == 1001 && again.inputModified == 1_700_000_000.5)
            for index in 2...5 { _ = try await store.register(job(index)) }
            var seen: [String] = []
            try await other.forEachJob(pageSize: 2) { seen.append($0.key) }
            #expect(seen == ["key-1", "key-2", "key-3", "key-4", "key-5"])
            #expect(try await store.knownHash(path: "/in/3.jpg", size: 1003, modified: 1_700_000_000.5) == String(repeating: "ab", count: 32))
            #expect(try await store.knownHash(path: "/in/3.jpg", size: 1004, modified: 1_700_000_000.5) == nil)
            let id = try #require(first.id)
            try await store.forget(id)
            #expect(try await other.job(id: id) == nil)
            #expect(try await other.lease(of: id) == nil)

            let run = try await store.recordRun(configuration: "{\"a\":1}", version: 3, arguments: ["edit", "in"], directory: "/work")
            let last = try #require(try await other.lastRun())
            #expect(last.id == run.id && last.configuration == "{\"a\":1}" && last.configurationVersion == 3)
            #expect(last.argumentList == ["edit", "in"] && last.directory == "/work")
        }
    }

    @Test("A claim excludes other workers until its lease runs out by the store's clock; renewals keep it; the lost lease sends nothing", arguments: StoreKind.allCases)
    func leases(_ kind: StoreKind) async throws {
        let clock = ManualClock(start: Date())
        try await withStores(kind, clock: clock) { store, other in
            let id = try #require(try await store.register(job(1)).id)
            #expect(try await store.claim(id, worker: "a", lease: 60)?.worker == "a")
            #expect(try await other.claim(id, worker: "b", lease: 10) == nil)
            #expect(try await other.lease(of: id) == JobLease(state: .pending, worker: "a", isSet: true, isLive: true))
            // Claimed again for ten seconds and renewed for a minute: it holds past the ten seconds.
            #expect(try await store.claim(id, worker: "a", lease: 10)?.worker == "a")
            try await store.renew(worker: "a", lease: 60)
            clock.advance(by: 30)
            #expect(try await other.claim(id, worker: "b", lease: 10) == nil)
            // Claimed again for ten seconds and not renewed: it runs out, and the other worker takes the job.
            #expect(try await store.claim(id, worker: "a", lease: 10) != nil)
            clock.advance(by: 11)
            #expect(try await other.lease(of: id)?.isLive == false)
            #expect(try await other.claim(id, worker: "b", lease: 30)?.worker == "b")
            // The first worker may no longer send it.
            let sending = JobMove.sending(estimate: Decimal(string: "0.03"), carried: 0)
            await #expect(throws: StoreError.leaseLost(job: id)) {
                try await store.record(sending, job: id, worker: "a", limit: nil)
            }
            try await other.record(sending, job: id, worker: "b", limit: nil)
            let sent = try #require(try await store.job(id: id))
            #expect(sent.state == .sending && sent.attempts == 1 && sent.estimatedCost == Decimal(string: "0.03"))

            try await other.record(.accepted(requestID: "job-1", extraAttempts: 0), job: id, worker: "b", limit: nil)
            try await other.record(
                .completed(outputs: ["/out/1.png"], reportedCost: Decimal(string: "0.025"), polls: 3), job: id, worker: "b", limit: nil)
            // A completed job is nobody's to claim, and its lease is over.
            #expect(try await store.claim(id, worker: "a", lease: 30) == nil)
            #expect(try await store.lease(of: id) == JobLease(state: .completed, worker: "b", isSet: false, isLive: false))
            let done = try #require(try await store.job(id: id))
            #expect(done.outputPaths == ["/out/1.png"] && done.reportedCost == Decimal(string: "0.025") && done.polls == 3)
            #expect(done.requestID == "job-1")
            await #expect(throws: StoreError.noJob(id + 1000)) {
                try await store.record(sending, job: id + 1000, worker: "a", limit: nil)
            }
        }
    }

    @Test("Released and ended jobs are free at once; releaseAll frees a killed run's", arguments: StoreKind.allCases)
    func releasing(_ kind: StoreKind) async throws {
        try await withStores(kind) { store, other in
            let one = try #require(try await store.register(job(1)).id)
            let two = try #require(try await store.register(job(2)).id)
            let three = try #require(try await store.register(job(3)).id)
            for id in [one, two, three] { _ = try #require(try await store.claim(id, worker: "a", lease: 60)) }
            try await store.release(one, worker: "a")
            #expect(try await other.claim(one, worker: "b", lease: 60) != nil)
            try await store.record(.failed(reason: "HTTP 400", extraAttempts: 0), job: two, worker: "a", limit: nil)
            #expect(try await other.lease(of: two) == JobLease(state: .failed, worker: "a", isSet: false, isLive: false))
            #expect(try await other.claim(three, worker: "b", lease: 60) == nil)
            try await other.releaseAll()
            #expect(try await other.claim(three, worker: "b", lease: 60) != nil)
        }
    }

    @Test("One run's lease renewals and releases never touch another run's jobs in the same database, whatever its clock")
    func leasesStayInTheirRun() async throws {
        let url = try PostgresURL(try PostgresServer.url)
        let mine = try await PostgresStore.open(url: url, scope: "leases-\(UUID().uuidString)")
        // Another run, by the same worker name, its clock an hour behind.
        let theirs = try await PostgresStore.open(
            url: url, scope: "leases-\(UUID().uuidString)", clock: ManualClock(start: Date().addingTimeInterval(-3600)))
        do {
            let id = try #require(try await mine.register(job(1)).id)
            let other = try #require(try await theirs.register(job(1)).id)
            _ = try #require(try await mine.claim(id, worker: "w", lease: 60))
            _ = try #require(try await theirs.claim(other, worker: "w", lease: 60))
            try await theirs.renew(worker: "w", lease: 1)
            try await theirs.release(id, worker: "w")
            #expect(try await mine.claim(id, worker: "z", lease: 60) == nil, "another run's renewal or release freed this run's job")
            #expect(try await mine.lease(of: id)?.isLive == true)
        } catch {
            await mine.close()
            await theirs.close()
            throw error
        }
        await mine.close()
        await theirs.close()
    }

    @Test("Every move is recorded as given, and the run's money follows the one definition", arguments: StoreKind.allCases)
    func movesAndMoney(_ kind: StoreKind) async throws {
        try await withStores(kind) { store, other in
            func sent(_ index: Int, estimate: String?, carried: String = "0") async throws -> Int64 {
                let id = try #require(try await store.register(job(index)).id)
                _ = try #require(try await store.claim(id, worker: "a", lease: 60))
                try await store.record(
                    .sending(estimate: estimate.flatMap { Decimal(string: $0) }, carried: Decimal(string: carried)!), job: id,
                    worker: "a", limit: nil)
                return id
            }
            _ = try await store.register(job(0))  // pending: no money
            let sending = try await sent(1, estimate: "0.02")  // at risk
            let accepted = try await sent(2, estimate: "0.02")
            try await store.record(.accepted(requestID: "j2", extraAttempts: 1), job: accepted, worker: "a", limit: nil)
            let answered = try await sent(3, estimate: "0.0393216")
            try await store.record(
                .answered(requestID: "j3", results: ["https://r/3.png"], reportedCost: Decimal(string: "0.04"), extraAttempts: 0, polls: 2),
                job: answered, worker: "a", limit: nil)
            let completed = try await sent(4, estimate: "0.02")
            try await store.record(.completed(outputs: ["/o/4.png"], reportedCost: nil, polls: 1), job: completed, worker: "a", limit: nil)
            let failed = try await sent(5, estimate: "0.02")
            try await store.record(.failed(reason: "HTTP 400", extraAttempts: 0), job: failed, worker: "a", limit: nil)
            let uncertain = try await sent(6, estimate: "0.02")
            try await store.record(.uncertain(reason: "HTTP 500", extraAttempts: 2), job: uncertain, worker: "a", limit: nil)
            let lost = try await sent(7, estimate: "0.02")
            try await store.record(
                .answered(requestID: "j7", results: ["https://r/7.png"], reportedCost: nil, extraAttempts: 0, polls: 0), job: lost,
                worker: "a", limit: nil)
            try await store.record(.lost(reason: "HTTP 404 fetching", keepResults: false, polls: 0), job: lost, worker: "a", limit: nil)
            let kept = try await sent(8, estimate: "0.02")
            try await store.record(
                .answered(requestID: "j8", results: ["https://r/8.png"], reportedCost: nil, extraAttempts: 0, polls: 0), job: kept,
                worker: "a", limit: nil)
            try await store.record(.lost(reason: "disk full", keepResults: true, polls: 0), job: kept, worker: "a", limit: nil)
            let waiting = try await sent(9, estimate: "0.02")
            try await store.record(.accepted(requestID: "j9", extraAttempts: 0), job: waiting, worker: "a", limit: nil)
            try await store.record(.waiting(reason: "timed out", polls: 4), job: waiting, worker: "a", limit: nil)
            let unpriced = try await sent(10, estimate: nil)
            try await store.record(.uncertain(reason: "dropped", extraAttempts: 0), job: unpriced, worker: "a", limit: nil)
            // Sent again after an uncertain first attempt: the first stays counted.
            let again = try await sent(11, estimate: "0.02")
            try await store.record(.uncertain(reason: "HTTP 502", extraAttempts: 0), job: again, worker: "a", limit: nil)
            _ = try #require(try await store.claim(again, worker: "a", lease: 60))
            try await store.record(.sending(estimate: Decimal(string: "0.02"), carried: Decimal(string: "0.02")!), job: again, worker: "a", limit: nil)

            let states = try await other.allJobs().map(\.state)
            #expect(states == [.pending, .sending, .accepted, .answered, .completed, .failed, .uncertain, .lost, .lost, .accepted, .uncertain, .sending])
            let rows = try await other.allJobs()
            #expect(rows[2].requestID == "j2" && rows[2].attempts == 2)
            #expect(rows[3].resultURLList == ["https://r/3.png"] && rows[3].reportedCost == Decimal(string: "0.04") && rows[3].polls == 2)
            #expect(rows[3].estimatedCost == Decimal(string: "0.039322"), "stored to the micro-dollar, rounded up")
            #expect(rows[6].attempts == 3 && rows[6].error == "HTTP 500")
            #expect(rows[7].resultURLList.isEmpty && rows[8].resultURLList == ["https://r/8.png"])
            #expect(rows[9].error == "timed out" && rows[9].polls == 4 && rows[9].requestID == "j9")
            #expect(rows[11].earlierCost == Decimal(string: "0.02") && rows[11].attempts == 2 && rows[11].error == nil)
            // Billed: accepted 0.02, answered 0.04 (reported), completed 0.02, lost 0.02 + 0.02, waiting 0.02.
            // At risk: sending 0.02, uncertain 0.02, sent again 0.02 (and one unpriced). Earlier: 0.02.
            let money = try await other.money()
            #expect(money == RunMoney(billed: Decimal(string: "0.14")!, atRisk: Decimal(string: "0.06")!, earlier: Decimal(string: "0.02")!, unpriced: 1))
            #expect(money.committed == Decimal(string: "0.22"))
            let summary = try await store.summary()
            #expect(summary.money == money && summary.jobs == 12 && summary.polls == 7 && summary.submissions == 15)
            #expect(summary.byState == ["pending": 1, "sending": 2, "accepted": 2, "answered": 1, "completed": 1, "failed": 1, "uncertain": 2, "lost": 2])
            _ = sending
        }
    }

    @Test("The cost limit is checked in the move that sends: workers together never pass it", arguments: StoreKind.allCases)
    func costLimit(_ kind: StoreKind) async throws {
        try await withStores(kind) { store, other in
            // Twenty jobs at $0.01 against $0.10, sent by two workers at once.
            var ids: [Int64] = []
            for index in 0..<20 { ids.append(try #require(try await store.register(job(index)).id)) }
            let limit = Decimal(string: "0.10")!
            let cent = JobMove.sending(estimate: Decimal(string: "0.01"), carried: 0)
            let sent = try await withThrowingTaskGroup(of: Bool.self) { group in
                for (index, id) in ids.enumerated() {
                    let (handle, worker) = index % 2 == 0 ? (store, "a") : (other, "b")
                    group.addTask {
                        _ = try #require(try await handle.claim(id, worker: worker, lease: 60))
                        do {
                            try await handle.record(cent, job: id, worker: worker, limit: limit)
                            return true
                        } catch StoreError.costLimit(let limit, let spent, let inFlight, let estimate) {
                            #expect(limit == Decimal(string: "0.10") && estimate == Decimal(string: "0.01"))
                            #expect(spent + inFlight + estimate > limit)
                            // Held back: given up, as a run does, for any worker to take later.
                            try await handle.release(id, worker: worker)
                            return false
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(sent == 10)
            #expect(try await other.money().committed == Decimal(string: "0.10"))
            // A refused move left nothing behind: its job is still pending.
            #expect(try await store.allJobs(in: [.pending]).count == 10)
            // A job that completes for less than its estimate frees the rest.
            let first = try #require(try await store.allJobs(in: [.sending]).first?.id)
            try await store.record(
                .completed(outputs: [], reportedCost: Decimal(string: "0.005"), polls: 0), job: first, worker: "a", limit: nil)
            let pending = try #require(try await store.allJobs(in: [.pending]).first?.id)
            _ = try #require(try await other.claim(pending, worker: "b", lease: 60))
            await #expect(throws: StoreError.self) {
                try await other.record(cent, job: pending, worker: "b", limit: limit)
            }
            try await other.record(.sending(estimate: Decimal(string: "0.005"), carried: 0), job: pending, worker: "b", limit: limit)
            // A job that was billed and lost stays counted: the limit is full.
            let billed = try #require(try await store.allJobs(in: [.sending]).first { $0.estimatedCost == Decimal(string: "0.01") }?.id)
            try await store.record(.lost(reason: "result expired", keepResults: false, polls: 0), job: billed, worker: "a", limit: nil)
            let next = try #require(try await store.allJobs(in: [.pending]).first?.id)
            _ = try #require(try await store.claim(next, worker: "a", lease: 60))
            await #expect(throws: StoreError.self) {
                try await store.record(.sending(estimate: Decimal(string: "0.001"), carried: 0), job: next, worker: "a", limit: limit)
            }
            let summary = try await store.summary()
            #expect(summary.money.billed == Decimal(string: "0.015") && summary.money.atRisk == Decimal(string: "0.085"))
            #expect(summary.jobs == 20 && summary.submissions == 11)
            #expect(summary.byState == ["completed": 1, "lost": 1, "sending": 9, "pending": 9])
            #expect(try await store.money().committed == Decimal(string: "0.1"))
        }
    }

    @Test("Rows an earlier qie wrote take the money model's states and amounts, the same on both stores", arguments: StoreKind.allCases)
    func migratingEarlierRows(_ kind: StoreKind) async throws {
        // state, request id, result links, estimate, reported -> state now.
        let rows: [(String, String?, String?, String?, String?, JobState)] = [
            ("pending", nil, nil, nil, nil, .pending),
            ("prepared", nil, nil, "0.02", nil, .sending),
            ("submitted", "j2", nil, "0.02", nil, .accepted),
            ("submitted", "j3", "[\"https://r/3.png\"]", "0.02", "0.0209", .answered),
            ("completed", "j4", nil, "0.02", "0.02097152", .completed),
            ("failed", nil, nil, "0.02", nil, .failed),
            ("failed", "j6", nil, "0.02", nil, .lost),
            ("failed", nil, "[\"https://r/7.png\"]", "0.02", nil, .lost),
            ("uncertain", nil, nil, "0.02", "-5", .uncertain),
            ("completed", nil, nil, "0.02abc", "1e3", .completed),
        ]
        let folder = NSTemporaryDirectory() + "qie-legacy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store: any RunStore
        switch kind {
        case .sqlite:
            try LegacyStores.sqlite(folder: folder, rows: rows.map { ($0.0, $0.1, $0.2, $0.3, $0.4) })
            store = try Ledger(folder: folder)
        case .postgres:
            let database = try PostgresServer.newDatabase()
            try LegacyStores.postgres(url: database, scope: folder, rows: rows.map { ($0.0, $0.1, $0.2, $0.3, $0.4) })
            store = try await PostgresStore.open(url: try PostgresURL(database), scope: folder)
        }
        let jobs = try await store.allJobs()
        let money = try await store.money()
        await store.close()
        #expect(jobs.map(\.state) == rows.map(\.5))
        #expect(jobs[3].reportedCost == Decimal(string: "0.0209") && jobs[4].reportedCost == Decimal(string: "0.020972"))
        #expect(jobs[8].reportedCost == nil && jobs[8].estimatedCost == Decimal(string: "0.02"), "a negative amount is dropped")
        #expect(jobs[9].estimatedCost == nil && jobs[9].reportedCost == nil, "text that is not an amount is dropped")
        // Billed: j2 0.02, j3 0.0209, j4 0.020972, j6 0.02, j7 0.02; at risk: prepared 0.02, uncertain 0.02; one unpriced.
        #expect(money == RunMoney(billed: Decimal(string: "0.101872")!, atRisk: Decimal(string: "0.04")!, earlier: 0, unpriced: 1))
    }

    @Test("Runs into different folders share a database without seeing each other")
    func scopes() async throws {
        let url = try PostgresURL(try PostgresServer.url)
        let one = try await PostgresStore.open(url: url, scope: "/runs/one")
        let two = try await PostgresStore.open(url: url, scope: "/runs/two")
        defer { Task { try? await one.removeRun(); try? await two.removeRun(); await one.close(); await two.close() } }
        _ = try await one.register(job(1))
        let theirs = try await two.register(job(1))
        #expect(theirs.state == .pending)
        #expect(try await two.summary().jobs == 1)
        #expect(try await one.summary().jobs == 1)
        #expect(try await two.job(id: try #require(try await one.allJobs().first?.id)) == nil)
    }

    @Test("A PostgreSQL store from a newer qie is refused; a wrong password is named without the password")
    func postgresRefusals() async throws {
        let database = try PostgresServer.newDatabase()
        let url = try PostgresURL(database)
        let store = try await PostgresStore.open(url: url, scope: "/runs/newer")
        await store.close()
        try PostgresServer.psql(database, "INSERT INTO qie_migrations (name) VALUES ('runs.v99')")
        do {
            _ = try await PostgresStore.open(url: url, scope: "/runs/newer")
            Issue.record("a newer store was opened")
        } catch let error as StoreError {
            #expect(error == .newer(location: "\(url)"))
            #expect(error.description.contains("newer qie"))
        }

        let password = try #require(URLComponents(string: database)?.password)
        var wrong = try #require(URLComponents(string: database))
        wrong.password = "not-the-password-\(password.prefix(4))"
        let refusedURL = try PostgresURL(try #require(wrong.string))
        #expect(!"\(refusedURL)".contains("not-the-password") && !"\(url)".contains(password))
        do {
            _ = try await PostgresStore.open(url: refusedURL, scope: "/runs/x")
            Issue.record("a wrong password was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("127.0.0.1") && text.contains("password authentication failed"), "\(text)")
            #expect(!text.contains("not-the-password") && !text.contains(password), "\(text)")
        }
        #expect(PostgresURL.redacting("postgres://qie:\(password)@host/db") == "postgres://qie@host/db")
        #expect(throws: StoreError.self) { try PostgresURL("postgres://host/db") }
        #expect(throws: StoreError.self) { try PostgresURL("postgres://u@host/db?sslmode=sometimes") }
        #expect(
            try PostgresURL("postgres://u@h/db?sslmode=require", environment: ["PGPASSWORD": "p"]).description == "postgres://u@h:5432/db")
    }
}
