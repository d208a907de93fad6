import Foundation
import QieStore
import QieTestSupport
import Testing

/// The two stores a run can keep its jobs in.
enum StoreKind: String, CaseIterable, CustomStringConvertible {
    case sqlite, postgres
    var description: String { rawValue }
}

/// A new, empty store of `kind` for one test, and a second handle on the
/// same run (another worker's view: its own connections), closed by `body`'s end.
func withStores<T>(
    _ kind: StoreKind, _ body: (_ first: any RunStore, _ second: any RunStore) async throws -> T
) async throws -> T {
    let folder = NSTemporaryDirectory() + "qie-store-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let first: any RunStore
    let second: any RunStore
    switch kind {
    case .sqlite:
        first = try Ledger(folder: folder)
        second = try Ledger(folder: folder)
    case .postgres:
        let url = try PostgresURL(try PostgresServer.url)
        first = try await PostgresStore.open(url: url, scope: folder)
        second = try await PostgresStore.open(url: url, scope: folder)
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

    @Test("A claim excludes other workers until its lease runs out; renewals keep it; the lost lease sends nothing", arguments: StoreKind.allCases)
    func leases(_ kind: StoreKind) async throws {
        try await withStores(kind) { store, other in
            let id = try #require(try await store.register(job(1)).id)
            #expect(try await store.claim(id, worker: "a", lease: 60)?.worker == "a")
            #expect(try await other.claim(id, worker: "b", lease: 0.5) == nil)
            #expect(try await other.lease(of: id) == JobLease(state: .pending, worker: "a", isSet: true, isLive: true))
            // Claimed again for half a second and renewed for a minute: it holds past the half second.
            #expect(try await store.claim(id, worker: "a", lease: 0.5)?.worker == "a")
            try await store.renew(worker: "a", lease: 60)
            try await Task.sleep(for: .milliseconds(700))
            #expect(try await other.claim(id, worker: "b", lease: 0.5) == nil)
            // Claimed again for 0.3 s and not renewed: it runs out, and the other worker takes the job.
            #expect(try await store.claim(id, worker: "a", lease: 0.3) != nil)
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await other.lease(of: id)?.isLive == false)
            #expect(try await other.claim(id, worker: "b", lease: 30)?.worker == "b")
            // The first worker may no longer send it.
            await #expect(throws: StoreError.leaseLost(job: id)) {
                try await store.markSending(id, worker: "a", estimatedCost: "0.03", limit: nil)
            }
            try await other.markSending(id, worker: "b", estimatedCost: "0.03", limit: nil)
            let sending = try #require(try await store.job(id: id))
            #expect(sending.state == .prepared && sending.attempts == 1 && sending.estimatedCost == "0.03")

            try await other.markSubmitted(id, requestID: "job-1", resultURLs: [], reportedCost: nil, extraAttempts: 0)
            try await other.markCompleted(id, outputs: ["/out/1.png"], reportedCost: "0.025", polls: 3)
            // A completed job is nobody's to claim, and its lease is over.
            #expect(try await store.claim(id, worker: "a", lease: 30) == nil)
            #expect(try await store.lease(of: id) == JobLease(state: .completed, worker: "b", isSet: false, isLive: false))
            let done = try #require(try await store.job(id: id))
            #expect(done.outputPaths == ["/out/1.png"] && done.reportedCost == "0.025" && done.polls == 3 && done.requestID == "job-1")
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
            try await store.markError(two, "HTTP 500", failed: true, extraAttempts: 0)
            #expect(try await other.lease(of: two) == JobLease(state: .failed, worker: "a", isSet: false, isLive: false))
            #expect(try await other.claim(three, worker: "b", lease: 60) == nil)
            try await other.releaseAll()
            #expect(try await other.claim(three, worker: "b", lease: 60) != nil)
        }
    }

    @Test("The cost limit is checked in the move that sends: workers together never pass it", arguments: StoreKind.allCases)
    func costLimit(_ kind: StoreKind) async throws {
        try await withStores(kind) { store, other in
            // Twenty jobs at $0.01 against $0.10, sent by two workers at once.
            var ids: [Int64] = []
            for index in 0..<20 { ids.append(try #require(try await store.register(job(index)).id)) }
            let limit = Decimal(string: "0.10")!
            let sent = try await withThrowingTaskGroup(of: Bool.self) { group in
                for (index, id) in ids.enumerated() {
                    let (handle, worker) = index % 2 == 0 ? (store, "a") : (other, "b")
                    group.addTask {
                        _ = try #require(try await handle.claim(id, worker: worker, lease: 60))
                        do {
                            try await handle.markSending(id, worker: worker, estimatedCost: "0.01", limit: limit)
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
            #expect(try await other.committedCost(includingSubmitted: true).total == Decimal(string: "0.10"))
            // A job that completes for less than its estimate frees the rest.
            let prepared = try await store.allJobs(in: [.prepared])
            let first = try #require(prepared.first?.id)
            try await store.markCompleted(first, outputs: [], reportedCost: "0.005", polls: 0)
            let pending = try #require(try await store.allJobs(in: [.pending]).first?.id)
            _ = try #require(try await other.claim(pending, worker: "b", lease: 60))
            await #expect(throws: StoreError.self) {
                try await other.markSending(pending, worker: "b", estimatedCost: "0.01", limit: limit)
            }
            try await other.markSending(pending, worker: "b", estimatedCost: "0.005", limit: limit)
            // Spent: completed only; committed: in flight too.
            let summary = try await store.summary()
            #expect(summary.spentUSD == Decimal(string: "0.005") && summary.jobs == 20 && summary.submissions == 11)
            #expect(summary.byState == ["completed": 1, "prepared": 10, "pending": 9])
            #expect(try await store.committedCost(includingSubmitted: true).total == Decimal(string: "0.1"))
        }
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
        #expect(try PostgresURL("postgres://u@h/db", environment: ["PGPASSWORD": "p"]).description == "postgres://u@h:5432/db")
    }
}
