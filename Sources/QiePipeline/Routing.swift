import Foundation
import QieCore
import QieProviders

/// Several endpoints that run the same model release, and how each image
/// picks one: the same edit is sold by several hosts at different prices and
/// units, and qie knows each image's exact price on each before sending.
///
/// ```swift
/// var options = EditOptions(endpoint: "runpod")
/// options.routing = Routing(endpoints: ["runpod", "runflow", "fal"], policy: .cheapest)
/// ```
///
/// A request goes to the first endpoint of its ranking; it falls back to the
/// next only when the failure proves nothing was billed (see
/// `RequestFailure.provesUnbilled`): refused before acceptance, never after
/// acceptance or on an ambiguous failure.
public struct Routing: Sendable, Codable, Equatable {
    /// How the endpoints are ranked for each image.
    public enum Policy: String, Sendable, Codable, CaseIterable {
        /// The lowest price for the image's planned output first; endpoints
        /// without a price after the priced ones, in listed order.
        case cheapest
        /// The shortest duration measured in this run first (its mean);
        /// endpoints not yet measured are tried first, in listed order, so
        /// each is measured.
        case fastest
        /// As listed.
        case order
    }

    /// The endpoints (ids or aliases), in listed order.
    public var endpoints: [String]
    /// How they are ranked.
    public var policy: Policy
    /// Without a flow chosen, each endpoint is waited for as a folder run
    /// waits: polling where it can (`ProviderProfile.defaultRunFlow`), so a
    /// job's id is recorded as soon as it is sent. Off: each endpoint's
    /// `defaultFlow`. A folder run sets it; it is not stored.
    public var pollsWhereItCan = false

    private enum CodingKeys: String, CodingKey { case endpoints, policy }

    /// Endpoints `endpoints`, ranked by `policy`.
    public init(endpoints: [String], policy: Policy = .cheapest) {
        self.endpoints = endpoints
        self.policy = policy
    }

    /// The endpoints' profiles, in listed order: each known, none twice, all
    /// of one model release (different releases give different edits).
    public func profiles() throws(SettingError) -> [ProviderProfile] {
        guard !endpoints.isEmpty else { throw SettingError(.endpoint, .missing(hint: "name one or more endpoints")) }
        var profiles: [ProviderProfile] = []
        for name in endpoints {
            let profile: ProviderProfile
            do { profile = try ProviderCatalog.profile(named: name) } catch {
                throw error.setting ?? SettingError(.endpoint, value: SettingError.quoted(name), .explained("is not known"))
            }
            if profiles.contains(where: { $0.id == profile.id }) {
                throw SettingError(.endpoint, value: SettingError.quoted(name), .explained("is listed twice (it is \(profile.id))"))
            }
            profiles.append(profile)
        }
        let releases = Set(profiles.map(\.version))
        if releases.count > 1 {
            let listed = profiles.map { "\($0.id) runs \($0.version.rawValue)" }.joined(separator: ", ")
            throw SettingError(
                .endpoint, value: SettingError.quoted(endpoints.joined(separator: ",")),
                .explained("mixes model releases, which give different edits: \(listed); route among endpoints of one release"))
        }
        return profiles
    }
}

/// What one endpoint offers an input: the plan it would be sent with and
/// what all its requests cost, or why the endpoint cannot take it.
public struct EndpointOffer: Sendable {
    /// The endpoint.
    public var profile: ProviderProfile
    /// The plan, or why the endpoint cannot take the input (a size it does not accept).
    public var plan: Result<SizePlan, ProvidersError>
    /// Requests the input needs there (more than one where it has no count field).
    public var requests: Int
    /// The price of one of those requests, when planned.
    public var estimate: CostEstimate?

    /// What all the input's requests cost there, USD; nil when unplanned or unpriced.
    public var cost: Decimal? { estimate?.total.map { $0 * Decimal(requests) } }
    /// Whether the endpoint can take the input.
    public var isPlanned: Bool { (try? plan.get()) != nil }
}

extension EditOptions {
    /// The endpoints a request may go to, in listed order: `routing`'s
    /// (checked: known, each once, one release), else `endpoint` alone.
    public func candidateProfiles() throws(SettingError) -> [ProviderProfile] {
        guard let routing else { return [try profile()] }
        return try routing.profiles()
    }

    /// These options for one endpoint: `endpoint` set to it, no routing.
    /// With routing, results come in one format whichever endpoint made
    /// them: the one asked, else the first endpoint's default (converted
    /// locally where another endpoint makes another).
    public func on(_ profile: ProviderProfile) -> EditOptions {
        var options = self
        if routing != nil, options.format == nil { options.format = (try? self.profile())?.outputFormat.defaultFormat }
        options.endpoint = profile.id
        if options.flow == nil, routing?.pollsWhereItCan == true { options.flow = profile.defaultRunFlow }
        options.routing = nil
        return options
    }

    /// Every candidate endpoint's offer for an input of `size` (as displayed),
    /// best first as `routing`'s policy ranks them, those that cannot take it
    /// last. `meanDurations`: the mean seconds each endpoint (by id) took per
    /// edit in this run, for `fastest`.
    public func offers(for size: PixelSize, meanDurations: [String: Double] = [:]) throws(SettingError) -> [EndpointOffer] {
        let offers = try candidateProfiles().map { profile in
            let plan = Result { () throws(ProvidersError) -> SizePlan in try self.plan(size, on: profile) }
            return EndpointOffer(
                profile: profile, plan: plan, requests: requestsPerInput(on: profile),
                estimate: (try? plan.get()).map { estimate($0, on: profile) })
        }
        return Self.rank(offers, policy: routing?.policy ?? .order, meanDurations: meanDurations)
    }

    /// Each candidate endpoint as if every file went there, from each
    /// file's `offers` (as `offers(for:)` ranks them): its total over the
    /// files it prices, its counts, and with routing what routing saves
    /// against it (its total less the sum of each file's pick, when both
    /// price every file planned).
    public func endpointTotals(_ offered: [[EndpointOffer]]) throws(SettingError) -> [CostReport.EndpointTotal] {
        let picks = offered.compactMap { $0.first }.filter(\.isPlanned)
        let routed = picks.compactMap(\.cost).reduce(0, +)
        let allPriced = !picks.isEmpty && picks.allSatisfy { $0.cost != nil }
        return try candidateProfiles().map { profile in
            let offers = offered.compactMap { $0.first { $0.profile.id == profile.id } }
            let prices = offers.filter(\.isPlanned).compactMap(\.cost)
            let sum = prices.reduce(0, +)
            var total = CostReport.EndpointTotal(
                endpoint: profile.id, rule: CostReport.rule(profile, options: self), priced: prices.count,
                unpriced: offers.filter { $0.isPlanned && $0.cost == nil }.count, refused: offers.filter { !$0.isPlanned }.count,
                costUSD: prices.isEmpty ? nil : "\(sum)")
            if routing != nil, allPriced, prices.count == picks.count { total.savingUSD = "\(sum - routed)" }
            return total
        }
    }

    /// `offers` (in listed order) ranked by `policy`; the sort is stable, so
    /// ties keep the listed order.
    static func rank(_ offers: [EndpointOffer], policy: Routing.Policy, meanDurations: [String: Double]) -> [EndpointOffer] {
        let listed = offers.enumerated().map { (index: $0.offset, offer: $0.element) }
        func key(_ item: (index: Int, offer: EndpointOffer)) -> (Int, Decimal, Double, Int) {
            guard item.offer.isPlanned else { return (2, 0, 0, item.index) }
            switch policy {
            case .order:
                return (0, 0, 0, item.index)
            case .cheapest:
                guard let cost = item.offer.cost else { return (1, 0, 0, item.index) }
                return (0, cost, 0, item.index)
            case .fastest:
                guard let mean = meanDurations[item.offer.profile.id] else { return (0, 0, -1, item.index) }
                return (0, 0, mean, item.index)
            }
        }
        return listed.sorted { key($0) < key($1) }.map(\.offer)
    }
}
