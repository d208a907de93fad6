import Foundation
import QieCore
import QieFiles
import QieImaging
import QieProviders

/// What editing a set of images costs, from their headers alone, before
/// anything is sent: each file planned and priced on each endpoint asked
/// about, the endpoint routing picks for it (the only one, without
/// routing), and the totals: routed, and on each endpoint alone with what
/// routing saves against it. `qie cost` prints it (`--json`: one line per
/// file, then the total; format 1). Amounts are USD as decimal text, as in
/// `qie status --json`.
///
/// ```swift
/// var options = EditOptions(endpoint: "runpod")
/// options.routing = Routing(endpoints: ["runpod", "runflow"], policy: .cheapest)
/// let walk = InputWalker().walk(["photos"])
/// let report = try CostReport(walk.files, options: options)
/// print(report.total.costUSD ?? "unknown")
/// ```
public struct CostReport: Sendable, Codable, Equatable {
    /// The format version this qie writes.
    public static let currentFormat = 1

    /// What one endpoint would do with a file.
    public struct Offer: Sendable, Codable, Equatable {
        /// The endpoint (profile id).
        public var endpoint: String
        /// The output size it would make (`WxH`), when it takes the file.
        public var output: String?
        /// Megapixels of one output image, as priced.
        public var outputMegapixels: String?
        /// What all the file's requests cost there, USD; nil when it publishes no price or cannot take the file.
        public var costUSD: String?
        /// Why it cannot take the file.
        public var error: String?
    }

    /// How a file came out: planned (priced, or unpriced, on an endpoint
    /// that takes it), failed (its header could not be read, or no endpoint
    /// takes it) or skipped, as in `EditEstimateReport`.
    public typealias Status = EditEstimateReport.Status

    /// One file.
    public struct File: Sendable, Codable, Equatable {
        /// The input's path, as walked.
        public var path: String
        /// Planned, failed or skipped.
        public var status: Status
        /// Its size as displayed (`WxH`), when its header was read.
        public var input: String?
        /// Its megapixels as displayed.
        public var inputMegapixels: Double?
        /// The endpoint it goes to: the only one, or routing's pick.
        public var endpoint: String?
        /// The output size there (`WxH`).
        public var output: String?
        /// Megapixels of one output image there.
        public var outputMegapixels: String?
        /// Output images asked for.
        public var images: Int
        /// What it costs there, USD; nil when unpriced or not planned.
        public var costUSD: String?
        /// Every endpoint asked about, in the order listed (one without routing).
        public var offers: [Offer]
        /// Why it cannot be priced.
        public var error: String?
    }

    /// One endpoint, as if every file went there.
    public struct EndpointTotal: Sendable, Codable, Equatable {
        /// The endpoint (profile id).
        public var endpoint: String
        /// The price rule, in words.
        public var rule: String
        /// Files it takes and prices.
        public var priced: Int
        /// Files it takes without a price.
        public var unpriced: Int
        /// Files it cannot take (a size it does not accept).
        public var refused: Int
        /// Its total for the files it prices, USD; nil when it prices none.
        public var costUSD: String?
        /// Its total less the routed total, USD, when both price every file
        /// planned (what routing saves against it).
        public var savingUSD: String?
    }

    /// The totals.
    public struct Total: Sendable, Codable, Equatable {
        /// Always true: tells the total's line from the files' lines.
        public var total = true
        /// Files planned.
        public var files: Int
        /// Files that failed, and arguments that could not be walked.
        public var failed: Int
        /// Output images of the planned files.
        public var outputImages: Int
        /// Their output megapixels, on the endpoints they go to.
        public var outputMegapixels: String
        /// What the planned files cost where they go, USD; nil when any is unpriced.
        public var costUSD: String?
        /// The priced files' sum, USD, when some are unpriced.
        public var pricedUSD: String?
        /// Planned files without a price.
        public var unpriced: Int
        /// The routing policy, when several endpoints were asked about.
        public var route: Routing.Policy?
        /// Each endpoint alone, in the order listed.
        public var endpoints: [EndpointTotal]
    }

    /// The report's format version.
    public var format = Self.currentFormat
    /// Each file, in order.
    public var files: [File]
    /// The totals.
    public var total: Total

    /// Plans and prices `files` from their headers (several at once) as
    /// `options` asks, on its endpoint or on each endpoint of its route;
    /// `problems` (arguments that could not be walked) count as failed.
    /// Errors name settings as `naming` spells them. Throws when the
    /// options name no usable endpoint.
    public init(
        _ files: [InputFile], problems: Int = 0, options: EditOptions, naming: (Setting) -> String = \.name
    ) throws(SettingError) {
        let profiles = try options.candidateProfiles()
        let probes = ProbeBatch(files: files).run()
        var lines: [File] = []
        // Every file's offers, for each endpoint's totals.
        var offered: [[EndpointOffer]] = []
        var routedSum = Decimal(0)
        var megapixels = Decimal(0)
        var planned = 0
        var unpriced = 0
        var failed = problems
        var images = 0
        for (file, probe) in zip(files, probes) {
            var line = File(path: file.path, status: .planned, images: options.numImages, offers: [])
            switch probe {
            case .failure(let error):
                line.status = file.isSkippable(error) ? .skipped : .failed
                line.error = error.reason(naming: naming)
                if line.status == .failed { failed += 1 }
                lines.append(line)
                continue
            case .success(let info):
                line.input = "\(info.displaySize)"
                line.inputMegapixels = info.megapixels
                let offers = try options.offers(for: info.displaySize)
                offered.append(offers)
                line.offers = profiles.compactMap { profile in
                    offers.first { $0.profile.id == profile.id }.map { Self.offer($0, naming: naming) }
                }
                guard let pick = offers.first, case .success(let plan) = pick.plan else {
                    line.status = .failed
                    line.error = offers.first.flatMap { if case .failure(let error) = $0.plan { error.message(naming: naming) } else { nil } }
                    failed += 1
                    lines.append(line)
                    continue
                }
                planned += 1
                images += options.numImages
                line.endpoint = pick.profile.id
                line.output = "\(plan.expectedOutput)"
                line.outputMegapixels = pick.estimate.map { "\($0.outputMegapixels)" }
                megapixels += (pick.estimate?.outputMegapixels ?? 0) * Decimal(options.numImages)
                if let cost = pick.cost {
                    line.costUSD = "\(cost)"
                    routedSum += cost
                } else {
                    unpriced += 1
                }
                lines.append(line)
            }
        }
        self.files = lines
        total = Total(
            files: planned, failed: failed, outputImages: images, outputMegapixels: "\(megapixels)",
            costUSD: unpriced == 0 && planned > 0 ? "\(routedSum)" : (planned == 0 ? "0" : nil),
            pricedUSD: unpriced > 0 && unpriced < planned ? "\(routedSum)" : nil, unpriced: unpriced,
            route: options.routing?.policy, endpoints: try options.endpointTotals(offered))
    }

    private static func offer(_ offer: EndpointOffer, naming: (Setting) -> String) -> Offer {
        switch offer.plan {
        case .success(let plan):
            return Offer(
                endpoint: offer.profile.id, output: "\(plan.expectedOutput)",
                outputMegapixels: offer.estimate.map { "\($0.outputMegapixels)" }, costUSD: offer.cost.map { "\($0)" })
        case .failure(let error):
            return Offer(endpoint: offer.profile.id, error: error.message(naming: naming))
        }
    }

    /// The price rule of `profile` as these options apply it, in words.
    static func rule(_ profile: ProviderProfile, options: EditOptions) -> String {
        let estimate = CostEstimator.estimate(profile, outputSize: PixelSize(width: 1, height: 1), override: options.price)
        return profile.pricing == .unpublished && estimate.total == nil ? profile.pricing.summary : estimate.rule
    }
}
