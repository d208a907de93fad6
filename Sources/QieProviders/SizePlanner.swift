import Foundation
import QieCore

/// What size a user asks an endpoint for.
public enum SizeRequest: Sendable, Equatable, Codable {
    /// Let the planner choose from the input's shape.
    case automatic
    /// An exact size.
    case size(PixelSize)
    /// An aspect ratio, at the endpoint's default scale.
    case aspectRatio(AspectRatio)
    /// A resolution tier (`1K`), optionally with an aspect ratio.
    case tier(String, aspectRatio: AspectRatio?)
}

/// A size field as sent in the request, in the endpoint's own spelling.
public struct SizeField: Sendable, Equatable, Codable {
    /// The endpoint's field name, such as `size`.
    public var name: String
    /// The value, such as `1024*1280`.
    public var value: String

    /// A size field `name` set to `value`.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// How one input becomes what an endpoint accepts, and how to undo it.
public struct SizePlan: Sendable, Equatable, Codable {
    /// The id of the endpoint the plan is for.
    public var provider: String
    /// The input as displayed (after EXIF orientation).
    public var input: PixelSize
    /// The prepared image sent to the endpoint.
    public var target: PixelSize
    /// The size the endpoint is expected to return (pricing uses it).
    public var expectedOutput: PixelSize
    /// How the input is made to fit `target`.
    public var fit: Fit
    /// The resize, crop and padding from input to target.
    public var geometry: ResizeGeometry
    /// Size fields of the request.
    public var fields: [SizeField]

    /// Share of the prepared image that is padding.
    public var paddingFraction: Double { geometry.paddingFraction }

    /// To restore: crop this from a result of `resultSize`, then resize it to `input`.
    public func restoreCrop(inResultOf resultSize: PixelSize) -> PixelRect {
        geometry.contentRect(inResultOf: resultSize)
    }
}

/// Chooses the size an input is sent at for an endpoint, and how to undo it on the result.
public enum SizePlanner {
    /// The area free-size endpoints are planned at: the model's own 1024 x 1024.
    public static let freeArea = 1024 * 1024

    /// Plans `input` (displayed size) for `profile`.
    public static func plan(
        input: PixelSize, for profile: ProviderProfile, request: SizeRequest = .automatic, fit: Fit = .contain,
        position: Position = .centre
    ) throws(ProvidersError) -> SizePlan {
        let (target, output, fields) = try choose(input: input, rule: profile.sizes, request: request, profile: profile)
        let geometry = ResizeGeometry.plan(source: input, target: target, fit: fit, position: position)
        return SizePlan(
            provider: profile.id, input: input, target: target, expectedOutput: output, fit: fit, geometry: geometry,
            fields: fields)
    }

    /// About one megapixel at `ratio`, both sides a multiple of 16.
    public static func freeSize(ratio: Double, area: Int = freeArea) -> PixelSize {
        let width = (Double(area) * ratio).squareRoot()
        let height = width / ratio
        return PixelSize(width: max(16, Int((width / 16).rounded()) * 16), height: max(16, Int((height / 16).rounded()) * 16))
    }

    /// About one megapixel at `ratio`, both sides a multiple of 16, the
    /// shape kept within what `sides` allows (from 1:4 to 4:1 for 512-2048).
    public static func freeSize(ratio: Double, sides: ClosedRange<Int>) -> PixelSize {
        let widest = Double(sides.upperBound) / Double(sides.lowerBound)
        return freeSize(ratio: min(max(ratio, 1 / widest), widest))
    }

    /// The candidate closest in shape to `input`: smallest distance of log
    /// aspect ratios; ties go to the larger area, then to less upscaling.
    public static func closest<T>(to input: PixelSize, among candidates: [T], size: (T) -> PixelSize) -> T? {
        let logRatio = log(input.aspectRatio)
        func key(_ candidate: T) -> (Double, Int, Double) {
            let s = size(candidate)
            let distance = (abs(log(s.aspectRatio) - logRatio) * 1e9).rounded() / 1e9
            let upscale = max(1, min(Double(s.width) / Double(input.width), Double(s.height) / Double(input.height)))
            return (distance, -s.pixelCount, upscale)
        }
        return candidates.min { key($0) < key($1) }
    }

    private static func choose(input: PixelSize, rule: SizeRule, request: SizeRequest, profile: ProviderProfile)
        throws(ProvidersError) -> (PixelSize, PixelSize, [SizeField])
    {
        let name = profile.id
        switch rule {
        case .fixedSizes(let field, let sizes, let separator, _):
            func spelled(_ s: PixelSize) -> [SizeField] { [SizeField(name: field, value: "\(s.width)\(separator)\(s.height)")] }
            switch request {
            case .automatic:
                let best = closest(to: input, among: sizes) { $0 }!
                return (best, best, spelled(best))
            case .size(let size):
                guard sizes.contains(size) else { throw unsupported(name, "size \(size)", rule, .size) }
                return (size, size, spelled(size))
            case .aspectRatio(let ratio):
                let matching = sizes.filter { abs($0.aspectRatio / ratio.value - 1) < 0.01 }
                guard let best = matching.max(by: { $0.pixelCount < $1.pixelCount }) else {
                    throw unsupported(name, "aspect ratio \(ratio)", rule, .aspectRatio)
                }
                return (best, best, spelled(best))
            case .tier(let tier, _):
                throw unsupported(name, "resolution \(tier)", rule, .resolution)
            }
        case .aspectRatios(let field, let ratios, _):
            let chosen: AspectRatio
            switch request {
            case .automatic:
                chosen = closest(to: input, among: ratios) { PixelSize(width: $0.width * 1000, height: $0.height * 1000) }!
            case .aspectRatio(let ratio):
                guard let match = ratios.first(where: { abs($0.value / ratio.value - 1) < 1e-9 }) else {
                    throw unsupported(name, "aspect ratio \(ratio)", rule, .aspectRatio)
                }
                chosen = match
            case .size(let size):
                throw unsupported(name, "an exact size (\(size))", rule, .size)
            case .tier(let tier, _):
                throw unsupported(name, "resolution \(tier)", rule, .resolution)
            }
            let target = freeSize(ratio: chosen.value)
            return (target, target, [SizeField(name: field, value: chosen.description)])
        case .sizeOrTier(let sizeField, let ratioField, let tierField, let table, let maxSide):
            switch request {
            case .automatic:
                let best = closest(to: input, among: table) { $0.size }!
                return (best.size, best.size, [SizeField(name: sizeField, value: "\(best.size.width)x\(best.size.height)")])
            case .size(let size):
                guard (1...maxSide).contains(size.width), (1...maxSide).contains(size.height) else {
                    throw unsupported(name, "size \(size)", rule, .size)
                }
                return (size, size, [SizeField(name: sizeField, value: "\(size.width)x\(size.height)")])
            case .aspectRatio(let ratio):
                guard let row = table.first(where: { abs($0.ratio.value / ratio.value - 1) < 1e-9 }) else {
                    throw unsupported(name, "aspect ratio \(ratio)", rule, .aspectRatio)
                }
                return (row.size, row.size, [SizeField(name: ratioField, value: row.ratio.description)])
            case .tier(let tier, let ratio):
                let rows = table.filter { $0.tier.lowercased() == tier.lowercased() }
                guard !rows.isEmpty else { throw unsupported(name, "resolution \(tier)", rule, .resolution) }
                let row: TierSize
                if let ratio {
                    guard let match = rows.first(where: { abs($0.ratio.value / ratio.value - 1) < 1e-9 }) else {
                        throw unsupported(name, "aspect ratio \(ratio) at \(tier)", rule, .aspectRatio)
                    }
                    row = match
                } else {
                    row = closest(to: input, among: rows) { $0.size }!
                }
                return (
                    row.size, row.size,
                    [SizeField(name: ratioField, value: row.ratio.description), SizeField(name: tierField, value: row.tier)]
                )
            }
        case .followsInput:
            switch request {
            case .automatic:
                let target = freeSize(ratio: input.aspectRatio)
                return (target, target, [])
            case .size(let size):
                return (size, size, [])
            case .aspectRatio(let ratio):
                let target = freeSize(ratio: ratio.value)
                return (target, target, [])
            case .tier(let tier, _):
                throw unsupported(name, "resolution \(tier)", rule, .resolution)
            }
        case .sizeObject(let field, let maxSide, _):
            let target: PixelSize
            switch request {
            case .automatic: target = freeSize(ratio: input.aspectRatio)
            case .size(let size):
                guard (1...maxSide).contains(size.width), (1...maxSide).contains(size.height) else {
                    throw unsupported(name, "size \(size)", rule, .size)
                }
                target = size
            case .aspectRatio(let ratio): target = freeSize(ratio: ratio.value)
            case .tier(let tier, _): throw unsupported(name, "resolution \(tier)", rule, .resolution)
            }
            return (target, target, [SizeField(name: field, value: "\(target.width)x\(target.height)")])
        case .aboutOneMegapixel(let sizeField, let separator, let sides):
            switch request {
            case .automatic:
                let target = freeSize(ratio: input.aspectRatio, sides: sides)
                return (target, target, [])
            case .aspectRatio(let ratio):
                let target = freeSize(ratio: ratio.value, sides: sides)
                return (target, target, [])
            case .size(let size):
                guard let sizeField, sides.contains(size.width), sides.contains(size.height) else {
                    throw unsupported(name, "size \(size)", rule, .size)
                }
                return (size, size, [SizeField(name: sizeField, value: "\(size.width)\(separator)\(size.height)")])
            case .tier(let tier, _):
                throw unsupported(name, "resolution \(tier)", rule, .resolution)
            }
        }
    }

    private static func unsupported(_ provider: String, _ what: String, _ rule: SizeRule, _ setting: Setting) -> ProvidersError {
        ProvidersError(
            .unsupportedSize,
            SettingError(setting, value: nil, .notAccepted(by: provider, what: what, accepts: rule.summary)))
    }
}

extension SizeRequest {
    /// The size asked for, from its three spellings (each nil when not given):
    /// `WxH` (also `W*H`), an aspect ratio `W:H`, a resolution tier such as
    /// `1K` (optionally with an aspect ratio). An exact size excludes the other two.
    public init(size: String?, aspectRatio: String?, resolution: String?) throws(SettingError) {
        var ratio: AspectRatio? = nil
        if let aspectRatio {
            guard let parsed = AspectRatio(parsing: aspectRatio) else {
                throw SettingError(
                    .aspectRatio, value: SettingError.quoted(aspectRatio), .invalid(expected: "W:H, for example 16:9"))
            }
            ratio = parsed
        }
        if let size {
            guard let parsed = PixelSize(parsing: size) else {
                throw SettingError(
                    .size, value: SettingError.quoted(size),
                    .invalid(expected: "WxH with positive integers, for example 1024x1280"))
            }
            guard ratio == nil, resolution == nil else {
                throw SettingError(
                    .size,
                    .explained("sets both shape and scale: leave out \(setting: .aspectRatio) and \(setting: .resolution)"))
            }
            self = .size(parsed)
            return
        }
        if let resolution {
            self = .tier(resolution, aspectRatio: ratio)
        } else if let ratio {
            self = .aspectRatio(ratio)
        } else {
            self = .automatic
        }
    }

    /// The setting that carries this request (for messages about it).
    var setting: Setting {
        switch self {
        case .automatic, .size: .size
        case .aspectRatio: .aspectRatio
        case .tier: .resolution
        }
    }
}
