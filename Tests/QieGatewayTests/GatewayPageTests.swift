import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import QieEmulator
import QieTestSupport
import Testing

@testable import QieGateway
@testable import QiePipeline

/// The gateway's page and the JSON routes it reads: what was spent and by
/// whom, the budgets left, the requests with their outcomes and thumbnails,
/// and the price of an edit before it is sent.
@Suite("The gateway's page: records, spending, budgets, thumbnails, prices", .serialized)
struct GatewayPageTests {
    static let keyA = "page-key-a-\(UUID().uuidString.prefix(6))"
    static let keyB = "page-key-b-\(UUID().uuidString.prefix(6))"

    /// Runs `body` with a router-level client of a gateway over an emulator
    /// that answers each edit with its input's negative.
    func withGateway(
        kind: StateKind = .sqlite, clock: any QieClock = SystemClock(), configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (EditEmulator, any TestClientProtocol) async throws -> Void
    ) async throws {
        let state = stateFolder()
        defer { try? FileManager.default.removeItem(atPath: state) }
        try await withEmulator(effect: .negative) { emulator, environment in
            var configuration = try kind.configuration(folder: state)
            configuration.keys = [GatewayKey(Self.keyA), GatewayKey(Self.keyB)]
            configure(&configuration)
            try await Gateway(configuration, environment: environment, clock: clock).withApplication { application in
                try await application.test(.router) { client in try await body(emulator, client) }
            }
        }
    }

    /// A PNG of one colour.
    func solid(_ rgb: [UInt8], _ width: Int = 320, _ height: Int = 240) throws -> Data {
        try Image(pixels: [UInt8]((0..<(width * height)).flatMap { _ in rgb }), size: PixelSize(width: width, height: height), channels: 3)
            .encoded(EncodeOptions(format: .png))
    }

    func edit(
        _ client: some TestClientProtocol, key: String?, image: Data, user: String? = nil, fields: [String: String] = [:]
    ) async throws -> TestResponse {
        let form = multipart { form in
            form.file("image", image)
            form.field("prompt", "turn it over")
            if let user { form.field("user", user) }
            for (name, value) in fields.sorted(by: { $0.key < $1.key }) { form.field(name, value) }
        }
        var headers: HTTPFields = [.contentType: form.contentType]
        if let key { headers[.authorization] = "Bearer " + key }
        return try await client.execute(uri: "/v1/images/edits", method: .post, headers: headers, body: form.body)
    }

    func get(_ client: some TestClientProtocol, _ uri: String, key: String?) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let key { headers[.authorization] = "Bearer " + key }
        return try await client.execute(uri: uri, method: .get, headers: headers)
    }

    /// An answer read back as the page reads it: `cost_usd` is `costUSD`.
    func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { path in
            let words = path.last!.stringValue.split(separator: "_")
            let camel = words.enumerated().map { index, word in
                index == 0 ? String(word) : word == "usd" ? "USD" : word.prefix(1).uppercased() + word.dropFirst()
            }
            return AnswerKey(stringValue: camel.joined())
        }
        return try decoder.decode(type, from: Data(buffer: response.body))
    }

    @Test("Each request is recorded; the day's spending sums by key, model and user, narrows to a key; budgets left; thumbnails are the results'", arguments: StateKind.allCases)
    func records(kind: StateKind) async throws {
        let red = try solid([200, 40, 40])
        let idA = GatewayKey(Self.keyA).id, idB = GatewayKey(Self.keyB).id
        // Midday by the gateway's clock: every request falls on one UTC day.
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        try await withGateway(kind: kind, clock: clock, configure: { $0.maxCostPerUserPerDay = Decimal(string: "0.03") }) { emulator, client in
            let first = try await edit(client, key: Self.keyA, image: red, user: "alice")
            #expect(first.status == .ok, "\(String(buffer: first.body))")
            clock.advance(by: 1)
            // Alice's second $0.02 would pass her $0.03: refused, naming her and when the day resets.
            let over = try await edit(client, key: Self.keyA, image: red, user: "alice")
            #expect(over.status == .tooManyRequests, "\(String(buffer: over.body))")
            let message = errorObject(over)["message"] as? String ?? ""
            #expect(message.contains("user \"alice\"") && message.contains("$0.02 spent") && message.contains("00:00 UTC"), "\(message)")
            #expect(errorObject(over)["code"] as? String == "gateway_budget_reached" && over.headers[.retryAfter].flatMap(Int.init) != nil)
            clock.advance(by: 1)
            // Bob has his own budget. His result is a JPEG, whose thumbnail
            // is made from its bytes; Alice's PNG's is made beside it.
            let bob = try await edit(client, key: Self.keyB, image: red, user: "bob", fields: ["output_format": "jpeg"])
            #expect(bob.status == .ok, "\(String(buffer: bob.body))")
            clock.advance(by: 1)
            // Without user, a per-user budget cannot charge anyone: 400, nothing sent.
            let anonymous = try await edit(client, key: Self.keyB, image: red)
            #expect(anonymous.status == .badRequest && errorObject(anonymous)["param"] as? String == "user", "\(String(buffer: anonymous.body))")
            // A request refused for its key is nobody's: not recorded.
            #expect(try await edit(client, key: "not-a-key", image: red, user: "mallory").status == .unauthorized)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)

            let summary = try decode(PageSummary.self, try await get(client, "/gateway/api/summary", key: Self.keyB))
            #expect(summary.caller == idB && summary.keyFilter == nil)
            #expect(summary.total == .init(name: nil, requests: 4, costUSD: "0.04", atRiskUSD: "0", unpriced: 0))
            #expect(
                Set(summary.byKey) == [
                    .init(name: idA, requests: 2, costUSD: "0.02", atRiskUSD: "0", unpriced: 0),
                    .init(name: idB, requests: 2, costUSD: "0.02", atRiskUSD: "0", unpriced: 0),
                ])
            #expect(
                Set(summary.byUser) == [
                    .init(name: "alice", requests: 2, costUSD: "0.02", atRiskUSD: "0", unpriced: 0),
                    .init(name: "bob", requests: 1, costUSD: "0.02", atRiskUSD: "0", unpriced: 0),
                    .init(name: nil, requests: 1, costUSD: "0", atRiskUSD: "0", unpriced: 0),
                ])
            #expect(summary.byModel == [.init(name: "runpod-qwen-image-edit-2511", requests: 4, costUSD: "0.04", atRiskUSD: "0", unpriced: 0)])
            #expect(summary.budgets.perDay == nil && summary.budgets.perUserPerDayUSD == "0.03")
            #expect(
                summary.budgets.users == [
                    .init(user: "alice", limitUSD: "0.03", spentUSD: "0.02", inFlightUSD: "0", leftUSD: "0.01"),
                    .init(user: "bob", limitUSD: "0.03", spentUSD: "0.02", inFlightUSD: "0", leftUSD: "0.01"),
                ])

            // Narrowed to key A: its requests only.
            let narrowed = try decode(PageSummary.self, try await get(client, "/gateway/api/summary?key=\(idA)", key: Self.keyB))
            #expect(narrowed.keyFilter == idA && narrowed.total.requests == 2 && narrowed.total.costUSD == "0.02")
            #expect(narrowed.byKey.map(\.name) == [idA] && narrowed.byUser.map(\.name) == ["alice"])

            let list = try decode(PageRequests.self, try await get(client, "/gateway/api/requests", key: Self.keyA))
            #expect(list.requests.map(\.outcome) == ["400 missing_required_parameter", "200", "429 gateway_budget_reached", "200"])
            #expect(list.requests.map(\.user) == [nil, "bob", "alice", "alice"])
            #expect(list.requests.map(\.key) == [idB, idB, idA, idA])
            #expect(list.requests.map(\.costUSD) == [nil, "0.02", nil, "0.02"])
            #expect(list.requests.allSatisfy { $0.endpoint == "runpod-qwen-image-edit-2511" && $0.seconds > 0 })
            #expect(list.requests[1].endpointSeconds != nil && list.requests[1].size == "320x240")
            #expect(list.requests.map(\.thumbnails.count) == [0, 1, 0, 1])
            let onlyA = try decode(PageRequests.self, try await get(client, "/gateway/api/requests?key=\(idA)&limit=1", key: Self.keyA))
            #expect(onlyA.requests.map(\.outcome) == ["429 gateway_budget_reached"])

            // The thumbnail is the result's, however it was made: the red
            // input's negative, cyan, at most 256 pixels a side.
            for item in list.requests where !item.thumbnails.isEmpty {
                let thumbnail = try await get(client, item.thumbnails[0], key: Self.keyA)
                #expect(thumbnail.status == .ok && thumbnail.headers[.contentType] == "image/jpeg")
                let image = try Image.decode(data: Data(buffer: thumbnail.body))
                #expect(image.width == 256 && image.height == 192)
                let pixel = try image.pixel(x: image.width / 2, y: image.height / 2)
                #expect(zip(pixel, [55, 215, 215] as [UInt8]).allSatisfy { abs(Int($0) - Int($1)) < 12 }, "\(pixel)")
                // Fetched with a key, like every page route.
                #expect(try await get(client, item.thumbnails[0], key: nil).status == .unauthorized)
            }

            // Nothing the page reads holds a secret.
            for uri in ["/gateway/api/summary", "/gateway/api/requests", "/gateway"] {
                let body = String(buffer: try await get(client, uri, key: Self.keyA).body)
                #expect(!body.contains(Self.keyA) && !body.contains(Self.keyB) && !body.contains(endpointKey))
            }
        }
    }

    @Test("The page routes take the API's keys: none or a wrong one is 401; without keys, only programs on this machine")
    func authentication() async throws {
        try await withGateway { _, client in
            for uri in ["/gateway/api/summary", "/gateway/api/requests", "/gateway/api/price?width=64&height=48", "/gateway/api/requests/x/thumbnails/0"] {
                let none = try await get(client, uri, key: nil)
                #expect(none.status == .unauthorized && errorObject(none)["code"] as? String == "invalid_api_key", "\(uri)")
                #expect(try await get(client, uri, key: "wrong").status == .unauthorized, "\(uri)")
            }
            let summary = try await get(client, "/gateway/api/summary", key: Self.keyA)
            #expect(summary.status == .ok && summary.headers[.cacheControl] == "no-store")
            // The shell holds no data: anyone may load it; it asks for the key.
            let page = try await get(client, "/gateway", key: nil)
            #expect(page.status == .ok && page.headers[.contentType] == "text/html; charset=utf-8")
            let policy = page.headers[.contentSecurityPolicy] ?? ""
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'sha256-") && !policy.contains("unsafe-inline"))
            #expect(String(buffer: page.body).contains("Gateway key"))
            #expect(try await get(client, "/gateway/api/requests/x/thumbnails/0", key: Self.keyA).status == .notFound)
            #expect(try await get(client, "/gateway/api/requests?limit=0", key: Self.keyA).status == .badRequest)
        }
        try await withGateway(configure: { $0.keys = [] }) { _, client in
            #expect(try await get(client, "/gateway/api/summary", key: nil).status == .ok)
            let elsewhere = try await client.execute(
                uri: "/gateway/api/summary", method: .get, headers: [.origin: "https://attacker.example"])
            #expect(elsewhere.status == .forbidden && errorObject(elsewhere)["code"] as? String == "not_local")
        }
    }

    @Test("The price route prices an edit as the edit itself is priced: the model, the image's size, the size asked and n")
    func price() async throws {
        let image = try solid([30, 120, 200], 640, 480)
        try await withGateway { _, client in
            let quoted = try await get(client, "/gateway/api/price?model=runpod&width=640&height=480&size=1024x1536&n=2", key: Self.keyA)
            #expect(quoted.status == .ok, "\(String(buffer: quoted.body))")
            let price = try decode(PagePrice.self, quoted)
            #expect(price.endpoint == "runpod-qwen-image-edit-2511" && price.requests == 2 && price.n == 2)
            #expect(price.input == "1024x1536" && price.output == "1024x1536")
            let edited = try await edit(client, key: Self.keyA, image: image, fields: ["model": "runpod", "size": "1024x1536", "n": "2"])
            #expect(edited.status == .ok)
            let qie = object(edited)["qie"] as? [String: Any]
            #expect(price.costUSD != nil && qie?["cost_usd"] as? String == price.costUSD, "\(price) vs \(String(describing: qie))")
            #expect((qie?["plan"] as? [String: String])?["sent"] == price.sent)

            // A release as the model: every endpoint that runs it is offered, the cheapest first.
            let release = try decode(
                PagePrice.self, try await get(client, "/gateway/api/price?model=qwen-image-edit-2511&width=640&height=480", key: Self.keyA))
            #expect(release.offers.count > 1 && release.offers[0].endpoint == release.endpoint)
            let costs = release.offers.compactMap { $0.costUSD.flatMap { Decimal(string: $0) } }
            #expect(costs == costs.sorted() && release.costUSD.flatMap { Decimal(string: $0) } == costs.first)

            // Bad questions get clear answers.
            let missing = try await get(client, "/gateway/api/price?model=runpod&height=480", key: Self.keyA)
            #expect(missing.status == .badRequest && errorObject(missing)["param"] as? String == "width")
            let size = try await get(client, "/gateway/api/price?width=640&height=480&size=big", key: Self.keyA)
            #expect(size.status == .badRequest && (errorObject(size)["message"] as? String)?.contains("WIDTHxHEIGHT") == true)
            let n = try await get(client, "/gateway/api/price?width=640&height=480&n=11", key: Self.keyA)
            #expect(n.status == .badRequest && errorObject(n)["param"] as? String == "n")
            let model = try await get(client, "/gateway/api/price?model=dall-e-2&width=640&height=480", key: Self.keyA)
            #expect(model.status == .notFound && errorObject(model)["code"] as? String == "model_not_found")
        }
    }

    @Test("A user's budget over HTTP: refused until midnight UTC by the gateway's clock, then open again", arguments: StateKind.allCases)
    func userBudgetAcrossMidnight(kind: StateKind) async throws {
        let red = try solid([200, 40, 40], 64, 48)
        // 2027-01-15 23:59:00 UTC.
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000 + 16 * 3600 - 60))
        try await withGateway(
            kind: kind, clock: clock, configure: { $0.maxCostPerUserPerDay = Decimal(string: "0.02"); $0.maxCostPerDay = Decimal(string: "1") }
        ) { emulator, client in
            #expect(try await edit(client, key: Self.keyA, image: red, user: "alice").status == .ok)
            let refused = try await edit(client, key: Self.keyB, image: red, user: "alice")
            #expect(refused.status == .tooManyRequests)
            #expect((errorObject(refused)["message"] as? String)?.contains("in 1 min 00 s") == true, "\(String(buffer: refused.body))")
            #expect(refused.headers[.retryAfter] == "60")
            #expect(try await edit(client, key: Self.keyB, image: red, user: "bob").status == .ok)
            clock.advance(by: 61)
            #expect(try await edit(client, key: Self.keyA, image: red, user: "alice").status == .ok)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 3)
            let summary = try decode(PageSummary.self, try await get(client, "/gateway/api/summary", key: Self.keyA))
            #expect(summary.day == "2027-01-16" && summary.total.requests == 1 && summary.total.costUSD == "0.02")
            #expect(summary.budgets.perDay == .init(user: nil, limitUSD: "1", spentUSD: "0.02", inFlightUSD: "0", leftUSD: "0.98"))
            #expect(summary.budgets.users.map(\.user) == ["alice"])
        }
    }

    @Test("Records are kept for their lifetime and thumbnails for the files', by the store's clock, then swept", arguments: StateKind.allCases)
    func lifetimes(kind: StateKind) async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        try await withGatewayStore(kind, clock: clock) { store in
            try await store.addRecord(sampleRecord("req_a", at: clock.now()), thumbnails: [Data([1, 2, 3])], lifetime: 60)
            clock.advance(by: 10)
            try await store.addRecord(
                sampleRecord("req_b", at: clock.now(), key: "key-0000bbbb", user: nil, status: 502, code: "endpoint_result_lost", atRiskMicros: 20_000),
                thumbnails: [], lifetime: 60)
            var records = try await store.records(key: nil, limit: 10)
            #expect(records.map(\.id) == ["req_b", "req_a"] && records.map(\.thumbnails) == [0, 1])
            #expect(records[0].atRiskMicros == 20_000 && records[0].code == "endpoint_result_lost" && records[0].user == nil)
            #expect(try await store.records(key: "key-0000bbbb", limit: 10).map(\.id) == ["req_b"])
            #expect(try await store.thumbnail(request: "req_a", index: 0) == Data([1, 2, 3]))
            let rows = try await store.spending(day: "2027-01-15", key: nil)
            #expect(rows.map(\.atRiskMicros).reduce(0, +) == 20_000 && rows.map(\.costMicros).reduce(0, +) == 40_000)
            // Past the files' lifetime: the thumbnail is gone, the record stays.
            clock.advance(by: 51)
            #expect(try await store.thumbnail(request: "req_a", index: 0) == nil)
            try await store.sweepRecords(olderThan: 3600)
            records = try await store.records(key: nil, limit: 10)
            #expect(records.map(\.id) == ["req_b", "req_a"] && records.map(\.thumbnails) == [0, 0])
            // Past the records' lifetime: swept.
            clock.advance(by: 3600 - 61 + 5)
            try await store.sweepRecords(olderThan: 3600)
            #expect(try await store.records(key: nil, limit: 10).map(\.id) == ["req_b"])
        }
    }
}

/// A key of an answer read back.
private struct AnswerKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
