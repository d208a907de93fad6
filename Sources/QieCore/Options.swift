import Foundation

/// An 8-bit sRGB colour with alpha.
public struct Colour: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Red, 0-255.
    public var red: UInt8
    /// Green, 0-255.
    public var green: UInt8
    /// Blue, 0-255.
    public var blue: UInt8
    /// Opacity, 0 (transparent) to 255 (opaque).
    public var alpha: UInt8

    /// A colour from its components; opaque unless `alpha` says otherwise.
    public init(red: UInt8, green: UInt8, blue: UInt8, alpha: UInt8 = 255) {
        self.red = red
        self.green = green
        self.blue = blue
        self.alpha = alpha
    }

    /// Opaque white, the default padding and flattening colour.
    public static let white = Colour(red: 255, green: 255, blue: 255)
    /// Opaque black.
    public static let black = Colour(red: 0, green: 0, blue: 0)
    /// Fully transparent black.
    public static let transparent = Colour(red: 0, green: 0, blue: 0, alpha: 0)

    /// Whether alpha is 255.
    public var isOpaque: Bool { alpha == 255 }

    /// `#rrggbb`, or `#rrggbbaa` when not opaque.
    public var description: String {
        let hex = [red, green, blue] + (isOpaque ? [] : [alpha])
        return "#" + hex.map { String(format: "%02x", $0) }.joined()
    }

    private static let names: [String: Colour] = [
        "white": .white, "black": .black, "transparent": .transparent,
        "grey": Colour(red: 128, green: 128, blue: 128), "gray": Colour(red: 128, green: 128, blue: 128),
        "red": Colour(red: 255, green: 0, blue: 0), "green": Colour(red: 0, green: 128, blue: 0),
        "blue": Colour(red: 0, green: 0, blue: 255),
    ]

    /// Parses `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`, `r,g,b[,a]` (0-255) or a
    /// name (`white`, `black`, `transparent`, `grey`, `red`, `green`, `blue`).
    public init(parsing text: String) throws(SettingError) {
        let value = text.trimmingCharacters(in: .whitespaces).lowercased()
        if let named = Colour.names[value] {
            self = named
            return
        }
        if value.hasPrefix("#") {
            var digits = Array(value.dropFirst())
            if digits.count == 3 || digits.count == 4 { digits = digits.flatMap { [$0, $0] } }
            let bytes = stride(from: 0, to: digits.count, by: 2).compactMap { i -> UInt8? in
                i + 1 < digits.count ? UInt8(String(digits[i...i + 1]), radix: 16) : nil
            }
            if (digits.count == 6 || digits.count == 8) && bytes.count == digits.count / 2 {
                self.init(red: bytes[0], green: bytes[1], blue: bytes[2], alpha: bytes.count == 4 ? bytes[3] : 255)
                return
            }
        } else {
            let parts = value.split(separator: ",").map { UInt8($0.trimmingCharacters(in: .whitespaces)) }
            if parts.count == 3 || parts.count == 4, parts.allSatisfy({ $0 != nil }) {
                let p = parts.map { $0! }
                self.init(red: p[0], green: p[1], blue: p[2], alpha: p.count == 4 ? p[3] : 255)
                return
            }
        }
        throw SettingError(
            .background, value: SettingError.quoted(text),
            .invalid(expected: "a colour: #rrggbb, #rrggbbaa, r,g,b[,a] or a name such as white, black or transparent"))
    }
}

/// What fills the padding added by `contain`.
public enum PaddingFill: Sendable, Equatable, Codable, CustomStringConvertible {
    /// A flat colour.
    case colour(Colour)
    /// A blurred, enlarged copy of the image itself.
    case blur
    /// The image's edge pixels repeated outwards.
    case edge

    /// Parses `blur`, `edge` or a colour (see `Colour(parsing:)`).
    public init(parsing text: String) throws(SettingError) {
        switch text.lowercased() {
        case "blur": self = .blur
        case "edge", "extend", "copy": self = .edge
        default: self = .colour(try Colour(parsing: text))
        }
    }

    /// `blur`, `edge`, or the colour as `#rrggbb[aa]`.
    public var description: String {
        switch self {
        case .colour(let colour): colour.description
        case .blur: "blur"
        case .edge: "edge"
        }
    }
}

/// A format qie writes.
public enum OutputFormat: String, Sendable, Codable, CaseIterable {
    /// The formats written: JPEG, PNG, WebP, AVIF and GIF.
    case jpeg, png, webp, avif, gif

    /// Accepts `jpg` and `jpeg`, in any case.
    public init?(name: String) {
        let value = name.lowercased()
        if value == "jpg" {
            self = .jpeg
        } else if let format = OutputFormat(rawValue: value) {
            self = format
        } else {
            return nil
        }
    }

    /// Whether the format keeps transparency (all but JPEG).
    public var supportsAlpha: Bool { self != .jpeg }
    /// The file name extension, without the dot (`jpg` for JPEG).
    public var fileExtension: String { self == .jpeg ? "jpg" : rawValue }
    /// The media type, such as `image/png`.
    public var mimeType: String { "image/\(rawValue)" }
}

/// How an image is encoded.
public struct EncodeOptions: Sendable, Equatable, Codable {
    /// The format to write.
    public var format: OutputFormat
    /// 1-100 for JPEG, WebP and AVIF; nil for the format's default (JPEG 90,
    /// WebP 90, AVIF 60). Ignored by PNG and GIF.
    public var quality: Int?
    /// PNG zlib level 0-9 (default 6).
    public var compression: Int?
    /// Progressive JPEG, interlaced PNG or GIF.
    public var progressive: Bool
    /// Lossless WebP or AVIF.
    public var lossless: Bool
    /// JPEG chroma subsampling: 4:2:0 when true (the default, as in sharp and
    /// most cameras), 4:4:4 when false.
    public var chromaSubsampling: Bool
    /// JPEG Huffman tables made for the image (the default, as in sharp):
    /// 1-6% smaller photos at quality 95, for about twice the encoder's
    /// time. Off for images only passed on to be decoded once (an edit's
    /// input on its way to the endpoint).
    public var optimizeCoding: Bool
    /// Encoder effort: WebP 0-6 (default 4), AVIF 0-9 (default 4), GIF 1-10 (default 7).
    public var effort: Int?
    /// Embed an sRGB ICC profile describing the output pixels (JPEG, PNG, WebP;
    /// AVIF always states sRGB in its colour box, GIF has no profiles). Off by
    /// default: all metadata (EXIF with GPS, XMP, IPTC, comments, profiles) is
    /// stripped.
    public var keepICCProfile: Bool
    /// What transparent pixels become when the format has no alpha (JPEG).
    public var flattenBackground: Colour

    /// Encoding settings; every value left out takes the format's default.
    public init(
        format: OutputFormat, quality: Int? = nil, compression: Int? = nil, progressive: Bool = false,
        lossless: Bool = false, chromaSubsampling: Bool = true, optimizeCoding: Bool = true, effort: Int? = nil,
        keepICCProfile: Bool = false, flattenBackground: Colour = .white
    ) {
        self.chromaSubsampling = chromaSubsampling
        self.optimizeCoding = optimizeCoding
        self.format = format
        self.quality = quality
        self.compression = compression
        self.progressive = progressive
        self.lossless = lossless
        self.effort = effort
        self.keepICCProfile = keepICCProfile
        self.flattenBackground = flattenBackground
    }

    private enum CodingKeys: String, CodingKey {
        case format, quality, compression, progressive, lossless, chromaSubsampling, optimizeCoding, effort
        case keepICCProfile, flattenBackground
    }

    /// Settings stored before `optimizeCoding` existed read as its default.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decode(OutputFormat.self, forKey: .format)
        quality = try container.decodeIfPresent(Int.self, forKey: .quality)
        compression = try container.decodeIfPresent(Int.self, forKey: .compression)
        progressive = try container.decode(Bool.self, forKey: .progressive)
        lossless = try container.decode(Bool.self, forKey: .lossless)
        chromaSubsampling = try container.decode(Bool.self, forKey: .chromaSubsampling)
        optimizeCoding = try container.decodeIfPresent(Bool.self, forKey: .optimizeCoding) ?? true
        effort = try container.decodeIfPresent(Int.self, forKey: .effort)
        keepICCProfile = try container.decode(Bool.self, forKey: .keepICCProfile)
        flattenBackground = try container.decode(Colour.self, forKey: .flattenBackground)
    }

    package var effectiveQuality: Int {
        quality ?? (format == .avif ? 60 : 90)
    }

    /// Checks every value before any native code runs.
    public func validate() throws(SettingError) {
        if let quality, !(1...100).contains(quality) {
            throw SettingError(.quality, value: String(quality), .invalid(expected: "an integer from 1 to 100"))
        }
        if let compression, !(0...9).contains(compression) {
            throw SettingError(.compression, value: String(compression), .invalid(expected: "a PNG zlib level from 0 to 9"))
        }
        if let effort {
            let range: ClosedRange<Int> =
                switch format {
                case .webp: 0...6
                case .avif: 0...9
                case .gif: 1...10
                default: 0...10
                }
            if !range.contains(effort) {
                throw SettingError(
                    .effort, value: String(effort),
                    .invalid(expected: "from \(range.lowerBound) to \(range.upperBound) for \(format.rawValue)"))
            }
        }
        if lossless && !(format == .webp || format == .avif) {
            throw SettingError(
                .lossless,
                .explained(
                    "applies to webp and avif only; \(format.rawValue) is \(format == .png || format == .gif ? "always lossless" : "lossy")"))
        }
    }
}

/// A small copy of an image, made beside it for showing (a page, a contact
/// sheet): fitted inside `side` x `side` pixels, never enlarged, and encoded
/// as `encode` asks. Made from pixels already decoded for the image itself,
/// it costs a shrink and a small encode, not another decode.
public struct PreviewOptions: Sendable, Equatable, Codable {
    /// The longest side, pixels (1 to `ResizeOptions.maxSide`).
    public var side: Int
    /// How the copy is encoded.
    public var encode: EncodeOptions

    /// A copy at most `side` pixels a side; by default 256, as a JPEG of quality 80.
    public init(side: Int = 256, encode: EncodeOptions = EncodeOptions(format: .jpeg, quality: 80)) {
        self.side = side
        self.encode = encode
    }

    /// The box an image of `size` is shrunk into: `side` x `side`, but
    /// never more than the image's own width and height.
    public func box(for size: PixelSize) -> PixelSize {
        PixelSize(width: min(side, max(1, size.width)), height: min(side, max(1, size.height)))
    }

    /// Checks the side and the encoding before any native code runs.
    public func validate() throws(SettingError) {
        if !(1...ResizeOptions.maxSide).contains(side) {
            throw SettingError(
                .size, value: String(side), .invalid(expected: "a preview side from 1 to \(ResizeOptions.maxSide) pixels"))
        }
        try encode.validate()
    }
}

/// A target size and how to reach it.
public struct ResizeOptions: Sendable, Equatable, Codable {
    /// The target width and height.
    public var size: PixelSize
    /// How the image is made to fit `size`.
    public var fit: Fit
    /// Where the image sits when padded, or which part is kept when cropped.
    public var position: Position
    /// What fills the padding of `contain`.
    public var fill: PaddingFill

    /// A resize to `size`; by default padded (`contain`), centred, on white.
    public init(size: PixelSize, fit: Fit = .contain, position: Position = .centre, fill: PaddingFill = .colour(.white)) {
        self.size = size
        self.fit = fit
        self.position = position
        self.fill = fill
    }

    /// Largest target side accepted.
    public static let maxSide = 16384

    /// Checks the size, and that the fill and position suit `fit` and `output`, before any native code runs.
    public func validate(for output: OutputFormat) throws(SettingError) {
        if size.width < 1 || size.height < 1 || size.width > Self.maxSide || size.height > Self.maxSide {
            throw SettingError(
                .size, value: "\(size.width)x\(size.height)",
                .invalid(expected: "from 1x1 to \(Self.maxSide)x\(Self.maxSide) pixels"))
        }
        if case .colour(let colour) = fill, !colour.isOpaque, !output.supportsAlpha, fit == .contain {
            throw SettingError(
                .background, value: colour.description,
                .explained(
                    "is transparent but \(output.rawValue) has no alpha channel; choose png, webp, avif or gif, or an opaque background"
                ))
        }
        if position.isContentAware && fit != .cover {
            throw SettingError(
                .position, value: position.rawValue,
                .explained("chooses a crop, so it needs \(setting: .fit) cover (got \(fit.rawValue))"))
        }
    }
}
