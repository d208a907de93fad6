import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat
import QiePipeline
import QieStore

/// The gateway's page (`GET /gateway`): an HTML shell without data, and the
/// JSON routes it reads, authenticated exactly as the API is (a gateway key
/// as `Authorization: Bearer KEY`; without keys, programs on this machine
/// only). Every gateway key sees the whole gateway: the day's spending by
/// key, model and user, the budgets left, the recent requests with the
/// thumbnails of their results, and the price of an edit before it is sent.
enum GatewayPage {
    /// Where the page is served; its JSON routes are under `path + "/api"`.
    static let path = "/gateway"
    /// Requests listed at most.
    static let maxRequests = 200
}

/// Money as the answers give it: USD as decimal text, as `cost_usd` is.
private func usd(_ micros: Int64) -> String { "\(MicroDollars.decimal(micros))" }

/// `GET /gateway/api/summary`: the UTC day's spending and budgets.
struct PageSummary: Codable, Equatable {
    /// Requests and money of one key, model (endpoint) or user, or of all.
    struct Spending: Codable, Hashable {
        /// The key's id, the endpoint or the user; nil: none (a request without
        /// `user`, or one refused before its model was known).
        var name: String?
        var requests: Int
        /// Billed (or kept as billed).
        var costUSD: String
        /// May have been billed without a usable answer.
        var atRiskUSD: String
        /// Edits made whose price is unknown: their cost is not in `costUSD`.
        var unpriced: Int
    }

    /// A limit and what it stands at.
    struct Budget: Codable, Equatable {
        /// The user, for a user's budget.
        var user: String?
        var limitUSD: String
        var spentUSD: String
        /// Reserved by edits in flight.
        var inFlightUSD: String
        /// What an edit may still reserve (never below 0).
        var leftUSD: String
    }

    /// The budgets set, and where they stand.
    struct Budgets: Codable, Equatable {
        /// The day's across every client; nil when not set.
        var perDay: Budget?
        /// The limit each user has a day; nil when not set.
        var perUserPerDayUSD: String?
        /// Each user with money spent or in flight today (with a per-user limit).
        var users: [Budget]
    }

    /// The UTC day, `yyyy-MM-dd`.
    var day: String
    /// Seconds until it ends and every daily budget starts again.
    var resetsInSeconds: Int
    /// The caller's key id (`local` without keys).
    var caller: String
    /// The key whose requests are summed, when the summary is filtered.
    var keyFilter: String?
    var total: Spending
    var byKey: [Spending]
    var byModel: [Spending]
    var byUser: [Spending]
    var budgets: Budgets
    /// The models offered: endpoint ids, then releases routed among them; the first is the default.
    var models: [String]
    /// How long requests' records are kept, seconds.
    var recordLifetimeSeconds: Double
    /// How long thumbnails (and result files) are kept, seconds.
    var fileLifetimeSeconds: Double
}

/// `GET /gateway/api/requests`: the newest requests first.
struct PageRequests: Codable, Equatable {
    /// One request as the page lists it.
    struct Item: Codable, Equatable {
        /// The `x-request-id` it was answered with.
        var id: String
        /// When it came, ISO 8601.
        var time: String
        var key: String
        var user: String?
        var modelAsked: String?
        var endpoint: String?
        var images: Int
        var n: Int
        var size: String?
        var status: Int
        var code: String?
        /// `200`, `200 replayed`, `400 invalid_value`, `499 client_closed_request`...
        var outcome: String
        /// Billed: decimal USD, `unknown` without a price, nil when nothing was billed.
        var costUSD: String?
        /// May have been billed without a usable answer.
        var atRiskUSD: String?
        var queueSeconds: Double?
        var endpointSeconds: Double?
        var seconds: Double
        /// Paths of its results' thumbnails still kept (fetched with the key).
        var thumbnails: [String]
    }

    var requests: [Item]
}

/// `GET /gateway/api/price`: what an edit would cost, priced as the edit
/// itself is before anything is sent.
struct PagePrice: Codable, Equatable {
    /// One endpoint's offer (with routing, every endpoint of the release).
    struct Offer: Codable, Equatable {
        var endpoint: String
        /// Requests the edit needs there.
        var requests: Int
        /// All of them, USD; nil when unpriced or refused.
        var costUSD: String?
        /// How it is priced, in words.
        var rule: String?
        /// Why the endpoint cannot take it.
        var refused: String?
    }

    /// The model asked (or the default).
    var model: String
    /// The endpoint the edit would go to (with routing, the one ranked first).
    var endpoint: String
    var requests: Int
    /// The edit's estimated cost, USD; nil when the endpoint publishes no price.
    var costUSD: String?
    var rule: String?
    /// The frame the input is fitted to (the size asked, else the image's), `WxH`.
    var input: String
    /// The size sent to the endpoint, `WxH`.
    var sent: String
    /// Each result's size, `WxH`.
    var output: String
    var n: Int
    var offers: [Offer]
}

extension EditsService {
    /// Adds the page and its JSON routes.
    func addPageRoutes(to router: Router<GatewayRequestContext>, keys: GatewayKeyMiddleware) {
        let page = GatewayPage.path
        router.get(RouterPath(page)) { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                    .contentSecurityPolicy: GatewayPageHTML.contentSecurityPolicy, HTTPField.Name("Referrer-Policy")!: "no-referrer",
                    HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                ],
                body: .init(byteBuffer: ByteBuffer(string: GatewayPageHTML.document)))
        }
        // The data, for key holders only.
        let api = router.group(RouterPath(page + "/api")).add(middleware: keys)
        api.get("summary") { request, context in try await answering { () throws(GatewayError) in try await summary(request, caller: context.keyID) } }
        api.get("requests") { request, _ in try await answering { () throws(GatewayError) in try await requests(request) } }
        api.get("requests/:id/thumbnails/:index") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let index = context.parameters.get("index").flatMap(Int.init), index >= 0 else { throw Self.noThumbnail }
            await recorder.flush()
            let found: Data?
            do { found = try await store.thumbnail(request: id, index: index) } catch { throw Self.storeUnavailable }
            guard let found else { throw Self.noThumbnail }
            return Response(
                status: .ok, headers: [.contentType: "image/jpeg", .cacheControl: "private, max-age=600"],
                body: .init(byteBuffer: ByteBuffer(data: found)))
        }
        api.get("price") { request, _ in try await answering { () throws(GatewayError) in try price(request) } }
    }

    /// What `body` returns, as JSON (its keys in snake case).
    private func answering<T: Encodable>(_ body: () async throws(GatewayError) -> T) async throws(GatewayError) -> Response {
        let answer = try await body()
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(data: try encoder.encode(answer))))
        } catch {
            throw GatewayError(status: 500, message: "the answer could not be written: \(error)", type: "server_error")
        }
    }

    private static var storeUnavailable: GatewayError {
        GatewayError(
            status: 503, message: "the gateway's state cannot be read just now; try again shortly", type: "server_error",
            code: "store_unavailable", retryAfter: 1)
    }

    private static var noThumbnail: GatewayError {
        GatewayError(
            status: 404, message: "no such thumbnail, or it has expired (thumbnails are kept as long as result files)",
            type: "invalid_request_error", code: "file_not_found")
    }

    /// The `key` query parameter: a key id to narrow the answer to.
    private func keyFilter(_ request: Request) -> String? {
        request.uri.queryParameters["key"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
    }

    private func summary(_ request: Request, caller: String) async throws(GatewayError) -> PageSummary {
        let filter = keyFilter(request)
        await recorder.flush()
        let now = clock.now()
        let day = BudgetDay.key(now)
        let rows: [SpendingRow]
        let standing: BudgetStanding?
        do {
            rows = try await store.spending(day: day, key: filter)
            standing = budgets.limits.isSet ? try await budgets.ledger.standing(day: day) : nil
        } catch {
            throw Self.storeUnavailable
        }
        func grouped(_ name: (SpendingRow) -> String?) -> [PageSummary.Spending] {
            var sums: [String?: (requests: Int, cost: Int64, atRisk: Int64, unpriced: Int)] = [:]
            for row in rows {
                var sum = sums[name(row), default: (0, 0, 0, 0)]
                sum.requests += row.requests
                sum.cost += row.costMicros
                sum.atRisk += row.atRiskMicros
                sum.unpriced += row.unpriced
                sums[name(row)] = sum
            }
            // The most money first, then by name.
            return sums.sorted { ($1.value.cost, $0.key ?? "") < ($0.value.cost, $1.key ?? "") }.map { name, sum in
                PageSummary.Spending(
                    name: name, requests: sum.requests, costUSD: usd(sum.cost), atRiskUSD: usd(sum.atRisk), unpriced: sum.unpriced)
            }
        }
        let total = grouped { _ in nil }.first ?? PageSummary.Spending(name: nil, requests: 0, costUSD: "0", atRiskUSD: "0", unpriced: 0)
        func budget(_ user: String?, limit: Decimal, _ amounts: BudgetAmounts) -> PageSummary.Budget {
            let micros = MicroDollars.from(limit)
            return PageSummary.Budget(
                user: user, limitUSD: "\(limit)", spentUSD: usd(amounts.spent), inFlightUSD: usd(amounts.held),
                leftUSD: usd(max(0, micros - amounts.committed)))
        }
        var budgets = PageSummary.Budgets(perDay: nil, perUserPerDayUSD: nil, users: [])
        if let standing {
            if let limit = self.budgets.limits.perDay { budgets.perDay = budget(nil, limit: limit, standing.all) }
            if let limit = self.budgets.limits.perUserPerDay {
                budgets.perUserPerDayUSD = "\(limit)"
                budgets.users = standing.users.sorted { $0.key < $1.key }.map { budget($0.key, limit: limit, $0.value) }
            }
        }
        return PageSummary(
            day: day, resetsInSeconds: BudgetDay.secondsToReset(from: now), caller: caller, keyFilter: filter,
            total: total, byKey: grouped(\.key), byModel: grouped(\.endpoint), byUser: grouped(\.user), budgets: budgets,
            models: profiles.map(\.id) + configuration.releases(among: profiles).map(\.release.rawValue),
            recordLifetimeSeconds: configuration.recordLifetime, fileLifetimeSeconds: configuration.fileLifetime)
    }

    private func requests(_ request: Request) async throws(GatewayError) -> PageRequests {
        var limit = 50
        if let text = request.uri.queryParameters["limit"] {
            guard let number = Int(text), (1...GatewayPage.maxRequests).contains(number) else {
                throw .invalid("limit", "limit must be an integer from 1 to \(GatewayPage.maxRequests); got \(text)")
            }
            limit = number
        }
        let filter = keyFilter(request)
        await recorder.flush()
        let records: [RequestRecord]
        do { records = try await store.records(key: filter, limit: limit) } catch { throw Self.storeUnavailable }
        let time = ISO8601DateFormatter()
        return PageRequests(
            requests: records.map { record in
                PageRequests.Item(
                    id: record.id, time: time.string(from: record.time), key: record.key, user: record.user, modelAsked: record.modelAsked,
                    endpoint: record.endpoint, images: record.images, n: record.n, size: record.size, status: record.status,
                    code: record.code, outcome: "\(record.status)" + (record.code.map { " " + $0 } ?? ""),
                    costUSD: record.costUnknown ? "unknown" : record.costMicros.map(usd),
                    atRiskUSD: record.atRiskMicros.map(usd), queueSeconds: record.queueSeconds, endpointSeconds: record.endpointSeconds,
                    seconds: record.seconds,
                    thumbnails: (0..<record.thumbnails).map { "\(GatewayPage.path)/api/requests/\(record.id)/thumbnails/\($0)" })
            })
    }

    /// Prices an edit of an image of `width` x `height` (as displayed) for
    /// `model` at `size` (or `auto`) with `n` results, as the edit would
    /// be priced before sending.
    private func price(_ request: Request) throws(GatewayError) -> PagePrice {
        let query = request.uri.queryParameters
        let limits = configuration.options.limits
        func side(_ name: String) throws(GatewayError) -> Int {
            guard let text = query[Substring(name)] else {
                throw .invalid(name, "\(name) is required: the image's \(name) in pixels", code: "missing_required_parameter")
            }
            guard let value = Int(text), (1...limits.maxSide).contains(value) else {
                throw .invalid(name, "\(name) must be an integer from 1 to \(limits.maxSide); got \(text)")
            }
            return value
        }
        let image = PixelSize(width: try side("width"), height: try side("height"))
        var n = 1
        if let text = query["n"] {
            guard let value = Int(text), (1...10).contains(value) else { throw .invalid("n", "n must be an integer from 1 to 10; got \(text)") }
            n = value
        }
        var size: PixelSize? = nil
        if let text = query["size"]?.lowercased(), text != "auto", !text.isEmpty {
            let parts = text.split(separator: "x").map { Int($0) }
            guard parts.count == 2, let width = parts[0], let height = parts[1], (16...limits.maxSide).contains(width),
                (16...limits.maxSide).contains(height)
            else { throw .invalid("size", "size must be auto or WIDTHxHEIGHT, each side from 16 to \(limits.maxSide); got \(text)") }
            size = PixelSize(width: width, height: height)
        }
        let model = query["model"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let routed = model.flatMap(release(named:)) ?? []
        let profile: ProviderProfile
        if let first = routed.first {
            profile = first
        } else if let model {
            do { profile = try self.profile(named: model) } catch { throw .unknownModel(model, offered: profiles.map(\.id)) }
        } else {
            profile = profiles[0]
        }
        var options = configuration.options
        options.endpoint = profile.id
        if routed.count > 1 { options.routing = Routing(endpoints: routed.map(\.id), policy: configuration.route) }
        options.numImages = n
        let frame = size ?? image
        let offers: [EndpointOffer]
        do {
            offers = try options.offers(for: frame, meanDurations: editors[profile.id]?.meanDurations ?? [:])
        } catch {
            throw GatewayError(EditError.setting(error))
        }
        guard let pick = offers.first, case .success(let plan) = pick.plan else {
            if case .failure(let error) = offers.first?.plan { throw GatewayError(EditError.request(error)) }
            throw .invalid("model", "no endpoint of \(model ?? profile.id) takes this image")
        }
        return PagePrice(
            model: model ?? profile.id, endpoint: pick.profile.id, requests: pick.requests, costUSD: pick.cost.map { "\($0)" },
            rule: pick.estimate?.rule, input: "\(frame.width)x\(frame.height)", sent: "\(plan.target.width)x\(plan.target.height)",
            output: "\(frame.width)x\(frame.height)", n: n,
            offers: offers.map { offer in
                var refused: String? = nil
                if case .failure(let error) = offer.plan { refused = GatewayError(EditError.request(error)).message }
                return PagePrice.Offer(
                    endpoint: offer.profile.id, requests: offer.requests, costUSD: offer.cost.map { "\($0)" }, rule: offer.estimate?.rule,
                    refused: refused)
            })
    }
}
