import Foundation
import QieCore

/// How fractional megapixels are billed, where a document does not say.
public enum MegapixelRounding: String, Sendable, Codable, CaseIterable {
    /// Exact output pixels / 10^6 (the default).
    case none
    /// Up to the next 0.01 megapixel.
    case hundredth
    /// Up to the next whole megapixel.
    case whole

    func apply(_ megapixels: Decimal) -> Decimal {
        switch self {
        case .none: return megapixels
        case .hundredth: return Self.roundUp(megapixels, scale: 2)
        case .whole: return Self.roundUp(megapixels, scale: 0)
        }
    }

    private static func roundUp(_ value: Decimal, scale: Int) -> Decimal {
        var input = value
        var result = Decimal()
        NSDecimalRound(&result, &input, scale, .up)
        return result
    }
}

/// A price the user sets for endpoints without one (or to override one).
public struct PriceOverride: Sendable, Equatable, Codable {
    /// USD per output image; takes precedence over `perMegapixel`.
    public var perImage: Decimal?
    /// USD per output megapixel (10^6 pixels).
    public var perMegapixel: Decimal?

    /// A price per image, per megapixel, or neither (the endpoint's own price applies).
    public init(perImage: Decimal? = nil, perMegapixel: Decimal? = nil) {
        self.perImage = perImage
        self.perMegapixel = perMegapixel
    }
}

/// The price of one request, before it is sent.
public struct CostEstimate: Sendable, Equatable, Codable {
    /// Images the request produces.
    public var images: Int
    /// Megapixels of one output image (10^6 pixels).
    public var outputMegapixels: Decimal
    /// USD for the request; nil when the endpoint publishes no price and none was set.
    public var total: Decimal?
    /// The same under another reading of an ambiguous price list.
    public var alternativeTotal: Decimal?
    /// How it was priced, in words.
    public var rule: String

    /// `$0.0393216`, or `unknown`.
    public var totalText: String { total.map { "$\($0)" } ?? "unknown" }
}

/// Prices requests before they are sent, from the planned output size and the endpoint's pricing rule.
public enum CostEstimator {
    /// Prices `images` outputs of `outputSize` pixels each on `profile`.
    public static func estimate(
        _ profile: ProviderProfile, outputSize: PixelSize, images: Int = 1, override: PriceOverride = PriceOverride(),
        rounding: MegapixelRounding = .none
    ) -> CostEstimate {
        let count = Decimal(images)
        let megapixels = Decimal(outputSize.width * outputSize.height) / 1_000_000
        let billed = rounding.apply(megapixels)
        if let perImage = override.perImage {
            return CostEstimate(
                images: images, outputMegapixels: megapixels, total: perImage * count, alternativeTotal: nil,
                rule: "$\(perImage) per image (set by you)")
        }
        if let perMegapixel = override.perMegapixel {
            return CostEstimate(
                images: images, outputMegapixels: megapixels, total: perMegapixel * billed * count,
                alternativeTotal: nil, rule: "$\(perMegapixel) per output megapixel (set by you)")
        }
        switch profile.pricing {
        case .perImage(let price):
            return CostEstimate(
                images: images, outputMegapixels: megapixels, total: price * count, alternativeTotal: nil,
                rule: profile.pricing.summary)
        case .perOutputMegapixel(let price, let alternative):
            return CostEstimate(
                images: images, outputMegapixels: megapixels, total: price * billed * count,
                alternativeTotal: alternative.map { $0 * count }, rule: profile.pricing.summary)
        case .unpublished:
            return CostEstimate(
                images: images, outputMegapixels: megapixels, total: nil, alternativeTotal: nil,
                rule: profile.pricing.summary)
        }
    }
}
