/// What an image's header says, read without decoding any pixels.
public struct ImageInfo: Sendable, Equatable, Codable {
    /// The format, read from the content.
    public var format: ImageFormat
    /// Stored width and height, before EXIF orientation.
    public var width: Int
    /// Stored height, before EXIF orientation (see `displaySize`).
    public var height: Int
    /// EXIF orientation, 1 (upright) to 8.
    public var orientation: Int
    /// Samples per pixel once decoded (palette images count as RGB or RGBA).
    public var channels: Int
    /// Bits per sample as stored.
    public var bitDepth: Int
    /// Whether the image has an alpha (transparency) channel.
    public var hasAlpha: Bool
    /// Whether the file holds more than one frame (animated GIF or WebP); only the first is processed.
    public var isAnimated: Bool
    /// Frames (or pages) when the header states them.
    public var frameCount: Int?
    /// The colour model as stored: `rgb`, `ycbcr`, `cmyk`, `ycck`, `grey`, `grey+alpha`, `rgba`, `palette`.
    public var colourModel: String
    /// Whether the file embeds an ICC colour profile.
    public var hasICCProfile: Bool
    /// Size of the file or buffer in bytes.
    public var byteCount: Int

    /// A header as read from a file or buffer.
    public init(
        format: ImageFormat, width: Int, height: Int, orientation: Int, channels: Int, bitDepth: Int, hasAlpha: Bool,
        isAnimated: Bool, frameCount: Int?, colourModel: String, hasICCProfile: Bool, byteCount: Int
    ) {
        self.format = format
        self.width = width
        self.height = height
        self.orientation = orientation
        self.channels = channels
        self.bitDepth = bitDepth
        self.hasAlpha = hasAlpha
        self.isAnimated = isAnimated
        self.frameCount = frameCount
        self.colourModel = colourModel
        self.hasICCProfile = hasICCProfile
        self.byteCount = byteCount
    }

    /// Width and height the way the image is displayed, after EXIF orientation.
    public var displaySize: PixelSize {
        orientation >= 5 ? PixelSize(width: height, height: width) : PixelSize(width: width, height: height)
    }

    /// Millions of pixels (10^6), as providers bill them.
    public var megapixels: Double { Double(width) * Double(height) / 1_000_000 }

    /// Whether orientation swaps width and height.
    public var isRotatedQuarterTurn: Bool { orientation >= 5 }
}

/// A width and height in pixels.
public struct PixelSize: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int

    /// A size of `width` by `height` pixels.
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Width times height.
    public var pixelCount: Int { width * height }
    /// Millions of pixels (10^6), as providers bill them.
    public var megapixels: Double { Double(width) * Double(height) / 1_000_000 }
    /// Width divided by height.
    public var aspectRatio: Double { Double(width) / Double(height) }
    /// `WxH`, such as `1024x1280`.
    public var description: String { "\(width)x\(height)" }

    /// Parses `1024x1280`, `1024*1280` or `1024X1280`.
    public init?(parsing text: String) {
        let parts = text.split(whereSeparator: { $0 == "x" || $0 == "X" || $0 == "*" })
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0 else { return nil }
        self.init(width: w, height: h)
    }
}

/// Limits checked from the header, before any pixel is decoded.
public struct ImageLimits: Sendable, Equatable, Codable {
    /// Largest accepted image, in millions of pixels (stored width x height / 10^6).
    public var maxMegapixels: Double
    /// Longest accepted side in pixels.
    public var maxSide: Int

    /// Limits of `maxMegapixels` million pixels and `maxSide` pixels a side.
    public init(maxMegapixels: Double = 100, maxSide: Int = 16384) {
        self.maxMegapixels = maxMegapixels
        self.maxSide = maxSide
    }

    /// The default limits: 100 megapixels and 16384 pixels a side.
    public static let `default` = ImageLimits()
}

/// Megapixels for messages: one decimal, or more below 0.1.
package func formatMegapixels(_ value: Double) -> String {
    if value == value.rounded() { return String(Int(value)) }
    if value >= 0.1 { return String((value * 10).rounded() / 10) }
    return String((value * 1000).rounded() / 1000)
}
