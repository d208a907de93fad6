import Foundation

/// How an image is made to fit a target width and height, as in sharp.
public enum Fit: String, Sendable, Codable, CaseIterable {
    /// Scale to cover the target, then crop what overflows. Output is the target size.
    case cover
    /// Scale to fit inside the target, then pad. Output is the target size.
    case contain
    /// Stretch to the target, ignoring the aspect ratio.
    case fill
    /// Scale to fit inside the target; no padding, so one side may be shorter.
    case inside
    /// Scale to cover the target; no crop, so one side may be longer.
    case outside
}

/// Where the image sits when padded (`contain`) or which part is kept when
/// cropped (`cover`). `attention` and `entropy` choose the crop from the image
/// content and act as `centre` for padding.
public enum Position: String, Sendable, Codable, CaseIterable {
    /// The middle, or one of the eight compass points (`north` is the top edge, `northeast` the top right corner).
    case centre, north, northeast, east, southeast, south, southwest, west, northwest
    /// Crops for `cover` that libvips chooses from the pixels: `attention` keeps
    /// what most likely draws the eye, `entropy` the most detailed part.
    case attention, entropy

    /// Accepts sharp's spellings too: `center`, `top`, `right top`, `left-bottom`, ...
    public init?(parsing text: String) {
        let words = text.lowercased().replacingOccurrences(of: "-", with: " ")
            .split(separator: " ").map(String.init)
        let name = words.joined()
        let aliases: [String: Position] = [
            "center": .centre, "centre": .centre, "top": .north, "bottom": .south, "right": .east, "left": .west,
            "righttop": .northeast, "topright": .northeast, "rightbottom": .southeast, "bottomright": .southeast,
            "leftbottom": .southwest, "bottomleft": .southwest, "lefttop": .northwest, "topleft": .northwest,
        ]
        if let position = Position(rawValue: name) ?? aliases[name] {
            self = position
        } else {
            return nil
        }
    }

    /// Whether the crop is decided by libvips from the pixels.
    package var isContentAware: Bool { self == .attention || self == .entropy }

    /// Horizontal and vertical placement: 0 = start, 1 = middle, 2 = end.
    package var anchors: (x: Int, y: Int) {
        switch self {
        case .centre, .attention, .entropy: (1, 1)
        case .north: (1, 0)
        case .northeast: (2, 0)
        case .east: (2, 1)
        case .southeast: (2, 2)
        case .south: (1, 2)
        case .southwest: (0, 2)
        case .west: (0, 1)
        case .northwest: (0, 0)
        }
    }
}

/// A rectangle in pixels.
public struct PixelRect: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Left edge, in pixels from the left of the image.
    public var x: Int
    /// Top edge, in pixels from the top of the image.
    public var y: Int
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int

    /// A rectangle whose top left corner is at `x`, `y`.
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    /// The rectangle's width and height.
    public var size: PixelSize { PixelSize(width: width, height: height) }
    /// `WxH+X+Y`, as in ImageMagick geometry (`1440x1080+48+0`).
    public var description: String { "\(width)x\(height)+\(x)+\(y)" }
}

/// Pixels added on each side.
public struct Padding: Sendable, Equatable, Codable {
    /// Rows added above the image.
    public var top: Int
    /// Columns added right of the image.
    public var right: Int
    /// Rows added below the image.
    public var bottom: Int
    /// Columns added left of the image.
    public var left: Int

    /// Padding of these many pixels on each side; sides not given get none.
    public init(top: Int = 0, right: Int = 0, bottom: Int = 0, left: Int = 0) {
        self.top = top
        self.right = right
        self.bottom = bottom
        self.left = left
    }

    /// No padding on any side.
    public static let none = Padding()
    /// Whether no side has any padding.
    public var isEmpty: Bool { top == 0 && right == 0 && bottom == 0 && left == 0 }
}

/// Exactly what a resize did, so a later stage can undo it: the source size
/// (as displayed, after EXIF orientation), the size it was scaled to, the part
/// of that kept by a crop, and the padding around it.
public struct ResizeGeometry: Sendable, Equatable, Codable {
    /// The fit mode that produced this geometry.
    public var fit: Fit
    /// The input as displayed (after EXIF orientation).
    public var source: PixelSize
    /// The input after scaling, before crop or padding.
    public var resized: PixelSize
    /// The part of the resized image kept (`cover`); nil when nothing was cropped.
    public var crop: PixelRect?
    /// Pixels added around the resized image (`contain`).
    public var padding: Padding
    /// The final size.
    public var output: PixelSize

    /// A geometry with these steps (usually made by `plan(source:target:fit:position:)`).
    public init(fit: Fit, source: PixelSize, resized: PixelSize, crop: PixelRect?, padding: Padding, output: PixelSize) {
        self.fit = fit
        self.source = source
        self.resized = resized
        self.crop = crop
        self.padding = padding
        self.output = output
    }

    /// Horizontal scale factor from source to resized (above 1 enlarges).
    public var scaleX: Double { Double(resized.width) / Double(source.width) }
    /// Vertical scale factor from source to resized (above 1 enlarges).
    public var scaleY: Double { Double(resized.height) / Double(source.height) }

    /// Where the image content lies in the output; the rest is padding.
    public var contentRect: PixelRect {
        let kept = crop?.size ?? resized
        return PixelRect(x: padding.left, y: padding.top, width: kept.width, height: kept.height)
    }

    /// The part of the source that the output shows (all of it unless cropped),
    /// in source pixels.
    public var sourceRect: PixelRect {
        guard let crop else { return PixelRect(x: 0, y: 0, width: source.width, height: source.height) }
        let x = Double(crop.x) / scaleX, y = Double(crop.y) / scaleY
        let w = Double(crop.width) / scaleX, h = Double(crop.height) / scaleY
        return PixelRect(
            x: Int(x.rounded()), y: Int(y.rounded()),
            width: max(1, min(source.width, Int(w.rounded()))), height: max(1, min(source.height, Int(h.rounded()))))
    }

    /// Share of the output's pixels that are padding, 0 to 1.
    public var paddingFraction: Double {
        let content = contentRect
        return 1 - Double(content.width * content.height) / Double(output.pixelCount)
    }

    /// The content rectangle in a result of `resultSize` pixels, for results an
    /// endpoint returned at another size than `output` (scaled proportionally).
    public func contentRect(inResultOf resultSize: PixelSize) -> PixelRect {
        let content = contentRect
        let sx = Double(resultSize.width) / Double(output.width)
        let sy = Double(resultSize.height) / Double(output.height)
        let x0 = Int((Double(content.x) * sx).rounded()), y0 = Int((Double(content.y) * sy).rounded())
        let x1 = Int((Double(content.x + content.width) * sx).rounded())
        let y1 = Int((Double(content.y + content.height) * sy).rounded())
        let x = min(max(0, x0), resultSize.width - 1), y = min(max(0, y0), resultSize.height - 1)
        return PixelRect(
            x: x, y: y, width: max(1, min(resultSize.width, x1) - x), height: max(1, min(resultSize.height, y1) - y))
    }

    /// Plans how `source` becomes `target` under `fit` and `position`.
    ///
    /// Scaled sides are rounded to the nearest pixel; for `contain` and `cover`
    /// the side that decides the scale matches the target exactly. For
    /// content-aware positions the crop is centred here and replaced by the one
    /// libvips chooses when the image is processed.
    public static func plan(source: PixelSize, target: PixelSize, fit: Fit, position: Position = .centre)
        -> ResizeGeometry
    {
        let sw = Double(source.width), sh = Double(source.height)
        let tw = Double(target.width), th = Double(target.height)
        let fitScale = min(tw / sw, th / sh)
        let coverScale = max(tw / sw, th / sh)
        func scaled(_ scale: Double) -> PixelSize {
            PixelSize(width: max(1, Int((sw * scale).rounded())), height: max(1, Int((sh * scale).rounded())))
        }
        let anchors = position.anchors
        func offset(_ extra: Int, _ anchor: Int) -> Int { anchor == 0 ? 0 : anchor == 1 ? extra / 2 : extra }

        switch fit {
        case .fill:
            return ResizeGeometry(fit: fit, source: source, resized: target, crop: nil, padding: .none, output: target)
        case .inside, .outside:
            let size = scaled(fit == .inside ? fitScale : coverScale)
            return ResizeGeometry(fit: fit, source: source, resized: size, crop: nil, padding: .none, output: size)
        case .contain:
            var size = scaled(fitScale)
            if tw / sw <= th / sh { size.width = target.width } else { size.height = target.height }
            size.width = min(size.width, target.width)
            size.height = min(size.height, target.height)
            let extraX = target.width - size.width, extraY = target.height - size.height
            let left = offset(extraX, anchors.x), top = offset(extraY, anchors.y)
            let padding = Padding(top: top, right: extraX - left, bottom: extraY - top, left: left)
            return ResizeGeometry(fit: fit, source: source, resized: size, crop: nil, padding: padding, output: target)
        case .cover:
            var size = scaled(coverScale)
            if tw / sw >= th / sh { size.width = target.width } else { size.height = target.height }
            size.width = max(size.width, target.width)
            size.height = max(size.height, target.height)
            let extraX = size.width - target.width, extraY = size.height - target.height
            let crop =
                extraX == 0 && extraY == 0
                ? nil
                : PixelRect(
                    x: offset(extraX, anchors.x), y: offset(extraY, anchors.y), width: target.width,
                    height: target.height)
            return ResizeGeometry(fit: fit, source: source, resized: size, crop: crop, padding: .none, output: target)
        }
    }
}
