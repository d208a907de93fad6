import Foundation
import GRDB
import QieTestSupport
import Testing

@testable import QieGateway
@testable import QiePipeline

/// Per-user budgets beside the day's, the same on SQLite and PostgreSQL:
/// reserved together, settled once, by UTC day, and never passed by edits
/// at once, on one gateway or on replicas.
@Suite("Budgets per day and per user, on SQLite and on PostgreSQL")
struct GatewayBudgetTests {
    let usd = { (text: String) in Decimal(string: text)! }

    @Test("A user's budget: counted apart from other users', inside the day's; settled once; a new UTC day starts empty", arguments: StateKind.allCases)
    func perUser(kind: StateKind) async throws {
        // 2027-01-15 08:00 UTC: midnight is 16 hours away.
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        try await withGatewayStore(kind, clock: clock) { store in
            let budgets = GatewayBudgets(
                ledger: store.budgetLedger, limits: BudgetLimits(perDay: usd("0.10"), perUserPerDay: usd("0.05")), clock: clock)
            let alice = try #require(try budgets.budget(for: "alice"))
            guard case .reserved(let two) = try await alice.reserve([usd("0.02"), usd("0.02")]) else { Issue.record("refused"); return }
            // Her third would pass her $0.05 with her two in flight: refused, naming her.
            guard case .refused(let refusal) = try await alice.reserve([usd("0.02")]) else { Issue.record("passed"); return }
            #expect(refusal == BudgetRefusal(limit: usd("0.05"), spent: 0, inFlight: usd("0.04"), estimate: usd("0.02")))
            #expect(alice.refusedBy == .user("alice"))
            // Another user has a budget of his own, inside the day's.
            let bob = try #require(try budgets.budget(for: "bob"))
            guard case .reserved(let his) = try await bob.reserve([usd("0.05")]) else { Issue.record("bob refused"); return }
            let carol = try #require(try budgets.budget(for: "carol"))
            guard case .refused(let day) = try await carol.reserve([usd("0.02")]) else { Issue.record("the day passed"); return }
            #expect(carol.refusedBy == .day)
            #expect(day == BudgetRefusal(limit: usd("0.10"), spent: 0, inFlight: usd("0.09"), estimate: usd("0.02")))

            await alice.settle(two[0], spent: usd("0.02"))  // billed
            await alice.settle(two[1], spent: 0)  // nothing billed: released
            await alice.settle(two[1], spent: usd("0.02"))  // settled once only
            let standing = try await budgets.standing()
            #expect(standing.day == "2027-01-15")
            #expect(standing.all == BudgetAmounts(spent: 20_000, held: 50_000))
            #expect(standing.users == ["alice": BudgetAmounts(spent: 20_000, held: 0), "bob": BudgetAmounts(spent: 0, held: 50_000)])
            guard case .reserved = try await alice.reserve([usd("0.03")]) else { Issue.record("alice refused her last $0.03"); return }

            // Without user, while a per-user budget is set: refused before anything is reserved.
            do throws(GatewayError) {
                _ = try budgets.budget(for: nil)
                Issue.record("a request without user was taken")
            } catch {
                #expect(error.status == 400 && error.param == "user" && error.code == "missing_required_parameter")
            }
            // The day's budget alone takes a request without user.
            let daily = GatewayBudgets(ledger: store.budgetLedger, limits: BudgetLimits(perDay: usd("1")), clock: clock)
            #expect(try daily.budget(for: nil) != nil)
            #expect(try GatewayBudgets(ledger: store.budgetLedger, limits: BudgetLimits(), clock: clock).budget(for: nil) == nil)

            // Past midnight UTC: a new day, every budget empty; yesterday's money in flight stays yesterday's.
            clock.advance(by: 16 * 3600)
            guard case .reserved = try await alice.reserve([usd("0.05")]) else { Issue.record("refused on a new day"); return }
            guard case .reserved = try await bob.reserve([usd("0.05")]) else { Issue.record("refused on a new day"); return }
            let today = try await budgets.standing()
            #expect(today.day == "2027-01-16" && today.all == BudgetAmounts(spent: 0, held: 100_000))
            await bob.settle(his[0], spent: usd("0.05"))
            // Settled today, counted on the day it was reserved.
            #expect(try await budgets.ledger.standing(day: "2027-01-15").users["bob"] == BudgetAmounts(spent: 50_000, held: 0))
            #expect(try await budgets.standing().users["bob"] == BudgetAmounts(spent: 0, held: 50_000))
        }
    }

    @Test("Edits at once, on one gateway or two PostgreSQL replicas: neither a user's budget nor the day's is passed", arguments: StateKind.allCases)
    func concurrent(kind: StateKind) async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        let database = kind == .postgres ? try PostgresServer.newDatabase() : nil
        try await withGatewayStore(kind, clock: clock, database: database) { first in
            // On PostgreSQL, a second replica on the same database takes every other edit.
            let stores: [any GatewayStore] =
                database == nil
                ? [first] : [first, try await PostgresGatewayStore.open(url: try PostgresURL(database!), lease: 30, connections: 8, clock: clock)]
            /// Reserves $0.01 for each user in `users`, all at once, spread over the stores; the users whose reservation was taken.
            func reserveAtOnce(_ users: [String], limits: BudgetLimits) async throws -> [String] {
                try await withThrowingTaskGroup(of: String?.self) { group in
                    for (index, user) in users.enumerated() {
                        let store = stores[index % stores.count]
                        group.addTask {
                            let budget = try GatewayBudgets(ledger: store.budgetLedger, limits: limits, clock: clock).budget(for: user)
                            guard case .reserved = try await budget!.reserve([Decimal(string: "0.01")!]) else { return nil }
                            return user
                        }
                    }
                    var reserved: [String] = []
                    for try await user in group { if let user { reserved.append(user) } }
                    return reserved
                }
            }
            // Ten of alice's at once under her $0.05: five pass, whichever they are.
            let alone = try await reserveAtOnce(Array(repeating: "alice", count: 10), limits: BudgetLimits(perUserPerDay: usd("0.05")))
            #expect(alone.count == 5, "\(alone)")
            // Ten more of hers and ten of other users' under a day of $0.13 ($0.05 held already): eight more pass, none of hers.
            let limits = BudgetLimits(perDay: usd("0.13"), perUserPerDay: usd("0.05"))
            let mixed = try await reserveAtOnce((0..<20).map { $0 % 2 == 0 ? "alice" : "bob\($0)" }, limits: limits)
            #expect(mixed.count == 8 && !mixed.contains("alice"), "\(mixed)")
            let standing = try await GatewayBudgets(ledger: first.budgetLedger, limits: limits, clock: clock).standing()
            #expect(standing.all == BudgetAmounts(spent: 0, held: 130_000))
            #expect(standing.users["alice"] == BudgetAmounts(spent: 0, held: 50_000))
            for store in stores.dropFirst() { await store.close() }
        }
    }

    @Test("Replicas share a user's budget: what one reserved, the other counts, and settles")
    func replicas() async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        let database = try PostgresServer.newDatabase()
        try await withGatewayStore(.postgres, clock: clock, database: database) { first in
            let second = try await PostgresGatewayStore.open(url: try PostgresURL(database), lease: 30, connections: 4, clock: clock)
            let limits = BudgetLimits(perUserPerDay: usd("0.05"))
            let here = try #require(try GatewayBudgets(ledger: first.budgetLedger, limits: limits, clock: clock).budget(for: "alice"))
            let there = try #require(try GatewayBudgets(ledger: second.budgetLedger, limits: limits, clock: clock).budget(for: "alice"))
            guard case .reserved(let held) = try await here.reserve([usd("0.04")]) else { Issue.record("refused"); return }
            guard case .refused(let refusal) = try await there.reserve([usd("0.02")]) else { Issue.record("passed on the other replica"); return }
            #expect(refusal.inFlight == usd("0.04") && there.refusedBy == .user("alice"))
            await here.settle(held[0], spent: usd("0.03"))
            guard case .reserved = try await there.reserve([usd("0.02")]) else { Issue.record("the settled cent was not released"); return }
            let standing = try await GatewayBudgets(ledger: second.budgetLedger, limits: limits, clock: clock).standing()
            #expect(standing.users["alice"] == BudgetAmounts(spent: 30_000, held: 20_000))
            await second.close()
        }
    }

    @Test("A state file from before per-user budgets and records opens: its money in flight stays counted, records are kept")
    func sqliteMigration() async throws {
        let folder = stateFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // The schema the gateway wrote before this version, with a day's spending and one reservation left open.
        let path = folder + "/" + SQLiteGatewayStore.fileName
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        let old = try DatabaseQueue(path: path)
        try await old.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                    INSERT INTO grdb_migrations VALUES ('v1'), ('v2: request fingerprints'), ('v3: fingerprints expire with their keys'),
                        ('v4: budget reservations kept, money as micro-dollars');
                    CREATE TABLE idempotency (key TEXT PRIMARY KEY, state TEXT NOT NULL, result BLOB, error TEXT, created DOUBLE NOT NULL);
                    CREATE TABLE files (id TEXT PRIMARY KEY, name TEXT NOT NULL, contentType TEXT NOT NULL, expires DOUBLE NOT NULL);
                    CREATE TABLE fingerprint (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, created DOUBLE NOT NULL DEFAULT 0);
                    CREATE TABLE budget_days (day TEXT PRIMARY KEY, spentMicros INTEGER NOT NULL);
                    CREATE TABLE budget_reservations (id TEXT PRIMARY KEY, day TEXT NOT NULL, micros INTEGER NOT NULL);
                    INSERT INTO budget_days VALUES ('2027-01-15', 30000);
                    INSERT INTO budget_reservations VALUES ('left-open', '2027-01-15', 20000);
                    """)
        }
        try old.close()
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        let store = try SQLiteGatewayStore(folder: folder, clock: clock)
        let budget = try #require(
            try GatewayBudgets(ledger: store.budgetLedger, limits: BudgetLimits(perDay: usd("0.10"), perUserPerDay: usd("0.10")), clock: clock)
                .budget(for: "alice"))
        guard case .refused(let refusal) = try await budget.reserve([usd("0.06")]) else { Issue.record("passed"); return }
        #expect(refusal.spent == usd("0.03") && refusal.inFlight == usd("0.02") && budget.refusedBy == .day)
        guard case .reserved = try await budget.reserve([usd("0.05")]) else { Issue.record("refused"); return }
        try await store.addRecord(sampleRecord("req_old", at: clock.now()), thumbnails: [], lifetime: 60)
        #expect(try await store.records(key: nil, limit: 10).map(\.id) == ["req_old"])
    }

    @Test("A PostgreSQL state from before per-user budgets and records is migrated: its money in flight stays counted")
    func postgresMigration() async throws {
        let url = try PostgresURL(try PostgresServer.newDatabase())
        let database = try QieStore.PostgresDatabase(url)
        try await database.migrate(namespace: "gateway", Array(PostgresGatewayStore.migrations.prefix(2)))
        try await database.query("INSERT INTO qie_gateway_budget_days (day, spent_micros) VALUES ('2027-01-15', 30000)")
        try await database.query(
            "INSERT INTO qie_gateway_budget_reservations (id, day, micros, replica) VALUES ('left-open', '2027-01-15', 20000, 'gone')")
        await database.close()
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        let store = try await PostgresGatewayStore.open(url: url, lease: 30, connections: 4, clock: clock)
        let budget = try #require(
            try GatewayBudgets(ledger: store.budgetLedger, limits: BudgetLimits(perDay: usd("0.10"), perUserPerDay: usd("0.10")), clock: clock)
                .budget(for: "alice"))
        guard case .refused(let refusal) = try await budget.reserve([usd("0.06")]) else { Issue.record("passed"); return }
        #expect(refusal.spent == usd("0.03") && refusal.inFlight == usd("0.02"))
        try await store.addRecord(sampleRecord("req_old", at: clock.now()), thumbnails: [], lifetime: 60)
        #expect(try await store.records(key: nil, limit: 10).map(\.id) == ["req_old"])
        await store.close()
    }
}

/// A request's record as a test writes it straight to a store.
func sampleRecord(
    _ id: String, at time: Date, key: String = "key-0000aaaa", user: String? = "alice", endpoint: String = "runpod-qwen-image-edit-2511",
    status: Int = 200, code: String? = nil, costMicros: Int64? = 20_000, atRiskMicros: Int64? = nil
) -> RequestRecord {
    RequestRecord(
        id: id, time: time, key: key, user: user, modelAsked: "runpod", endpoint: endpoint, images: 1, n: 1, size: "64x48", status: status,
        code: code, costMicros: costMicros, costUnknown: false, atRiskMicros: atRiskMicros, queueSeconds: 0.001, endpointSeconds: 0.5,
        seconds: 0.6)
}
