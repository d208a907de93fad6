import Foundation
import QieCore

/// A width:height ratio such as `16:9`.
public struct AspectRatio: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// The width part of the ratio.
    public var width: Int
    /// The height part of the ratio.
    public var height: Int

    /// The ratio `width`:`height`.
    public init(_ width: Int, _ height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `16:9` (also `16/9`).
    public init?(parsing text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "/" })
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0 else { return nil }
        self.init(w, h)
    }

    /// Width divided by height.
    public var value: Double { Double(width) / Double(height) }
    /// `W:H`, such as `16:9`.
    public var description: String { "\(width):\(height)" }
}

/// One row of a size table keyed by aspect ratio and resolution tier.
public struct TierSize: Sendable, Equatable {
    /// The row's aspect ratio.
    public var ratio: AspectRatio
    /// The resolution tier, such as `1K`.
    public var tier: String
    /// The pixels the endpoint returns for that ratio and tier.
    public var size: PixelSize

    /// A row: `ratio` at `tier` is `size`.
    public init(_ ratio: AspectRatio, _ tier: String, _ size: PixelSize) {
        self.ratio = ratio
        self.tier = tier
        self.size = size
    }
}

/// The output sizes an endpoint takes.
public enum SizeRule: Sendable {
    /// A fixed list, sent in `field` as `W<separator>H` (RunPod: `1024*1280`).
    case fixedSizes(field: String, sizes: [PixelSize], separator: String, defaultSize: PixelSize)
    /// Named aspect ratios (Oxen). The endpoint picks the pixels.
    case aspectRatios(field: String, ratios: [AspectRatio], defaultRatio: AspectRatio)
    /// An exact `WxH` in `sizeField` (1 to `maxSide` a side), or an aspect ratio
    /// and resolution tier from `table` (Lumenfall).
    case sizeOrTier(sizeField: String, ratioField: String, tierField: String, table: [TierSize], maxSide: Int)
    /// No size field: the output follows the input image.
    case followsInput
    /// An exact size sent in `field` as the object `{"width": W, "height": H}`,
    /// 1 to `maxSide` a side; the endpoint also takes the named `presets`.
    case sizeObject(field: String, maxSide: Int, presets: [(name: String, size: PixelSize)])
    /// About one megapixel at the aspect ratio of the last image sent,
    /// whatever the images' sizes (sides a multiple of 16, the shape kept
    /// within what `sides` allows), unless an exact `W<separator>H` with
    /// each side in `sides` is asked in `sizeField`, where there is one.
    case aboutOneMegapixel(sizeField: String?, separator: String, sides: ClosedRange<Int>)

    /// What users may ask for, for listings and error messages.
    public var summary: String {
        switch self {
        case .fixedSizes(_, let sizes, let separator, let defaultSize):
            return "sizes "
                + sizes.map { "\($0.width)\(separator)\($0.height)" }.joined(separator: ", ")
                + " (default \(defaultSize.width)\(separator)\(defaultSize.height))"
        case .aspectRatios(_, let ratios, let defaultRatio):
            return "aspect ratios " + ratios.map(\.description).joined(separator: ", ") + " (default \(defaultRatio))"
        case .sizeOrTier(_, _, _, let table, let maxSide):
            let tiers = Array(Set(table.map(\.tier))).sorted().joined(separator: ", ")
            return "any WxH from 1 to \(maxSide) a side, or aspect ratio "
                + table.map(\.ratio.description).joined(separator: ", ") + " at resolution " + tiers + " ("
                + table.map { "\($0.ratio)=\($0.size)" }.joined(separator: ", ") + ")"
        case .followsInput:
            return "the input's own size (about 1 megapixel, sides a multiple of 16, recommended)"
        case .sizeObject(_, let maxSide, let presets):
            return "any WxH from 1 to \(maxSide) a side, sent as {width, height} (about 1 megapixel at the input's shape by default)"
                + (presets.isEmpty ? "" : "; presets " + presets.map { "\($0.name)=\($0.size)" }.joined(separator: ", "))
        case .aboutOneMegapixel(let sizeField, let separator, let sides):
            let widest = String(format: "%g", Double(sides.upperBound) / Double(sides.lowerBound))
            let shape = "about 1 megapixel at the last image's aspect ratio (sides a multiple of 16, from 1:\(widest) to \(widest):1)"
            guard sizeField != nil else { return shape + "; aspect ratios, not exact sizes" }
            return "any W\(separator)H from \(sides.lowerBound) to \(sides.upperBound) a side, or by default " + shape
        }
    }
}

/// How an endpoint charges.
public enum PricingRule: Sendable, Equatable {
    /// A flat price per output image.
    case perImage(Decimal)
    /// A price per output megapixel (10^6 pixels). `perImageReading` is another
    /// reading of an ambiguous document, shown next to the estimate.
    case perOutputMegapixel(Decimal, perImageReading: Decimal?)
    /// No price in the document: estimates say "unknown" unless the user sets one.
    case unpublished

    /// The price in words, such as `$0.02 per image`.
    public var summary: String {
        switch self {
        case .perImage(let price): "$\(price) per image"
        case .perOutputMegapixel(let price, let alternative):
            "$\(price) per output megapixel" + (alternative.map { " (or $\($0) per image, another reading)" } ?? "")
        case .unpublished: "not published"
        }
    }
}
