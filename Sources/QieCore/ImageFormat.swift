import Foundation

/// An image format qie can decode. Detected from content, never from the file name.
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    /// The formats read: JPEG, PNG, WebP, GIF, AVIF, HEIC (HEIF) and TIFF.
    case jpeg, png, webp, gif, avif, heic, tiff

    /// The name users see in messages and listings.
    public var displayName: String {
        switch self {
        case .jpeg: "JPEG"
        case .png: "PNG"
        case .webp: "WebP"
        case .gif: "GIF"
        case .avif: "AVIF"
        case .heic: "HEIC"
        case .tiff: "TIFF"
        }
    }

    /// The output format an image of this format is written as when the user
    /// names none: itself where qie can encode it, PNG otherwise (lossless).
    public var defaultOutput: OutputFormat {
        switch self {
        case .jpeg: .jpeg
        case .png: .png
        case .webp: .webp
        case .gif: .gif
        case .avif: .avif
        case .heic, .tiff: .png
        }
    }

    package static let acceptedList = "JPEG, PNG, WebP, GIF, AVIF, HEIC or TIFF"
}

/// What the first bytes of a file say it is.
package enum SniffedContent: Equatable {
    case image(ImageFormat)
    /// Recognised, and refused: `name` is the format, `advice` what to do.
    case refused(name: String, advice: String)
    case unknown
}

package enum FormatSniffer {
    /// How many leading bytes `sniff` looks at, at most.
    package static let window = 1024

    package static func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffedContent {
        let b = bytes
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            guard b.count >= offset + prefix.count else { return false }
            for (i, byte) in prefix.enumerated() where b[offset + i] != byte { return false }
            return true
        }
        func ascii(_ text: String, at offset: Int = 0) -> Bool { starts(Array(text.utf8), at: offset) }

        if starts([0xFF, 0xD8, 0xFF]) { return .image(.jpeg) }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .image(.png) }
        if ascii("RIFF") && ascii("WEBP", at: 8) { return .image(.webp) }
        if ascii("GIF87a") || ascii("GIF89a") { return .image(.gif) }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A])
            || starts([0x49, 0x49, 0x2B, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2B])
        {
            return .image(.tiff)
        }
        if ascii("ftyp", at: 4), let format = isoBrand(b) { return format }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) || starts([0xFF, 0x0A]) {
            return .refused(name: "JPEG XL", advice: "convert it to PNG or JPEG first")
        }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts([0xFF, 0x4F, 0xFF, 0x51]) {
            return .refused(name: "JPEG 2000", advice: "convert it to PNG or JPEG first")
        }
        if ascii("%PDF-") {
            return .refused(
                name: "PDF",
                advice: "documents are not decoded; render the page to PNG first (for example `pdftoppm -png`)")
        }
        if ascii("%!PS") {
            return .refused(name: "PostScript", advice: "documents are not decoded; render it to PNG first")
        }
        if ascii("BM") && b.count >= 14 { return .refused(name: "BMP", advice: "convert it to PNG first") }
        if ascii("8BPS") { return .refused(name: "Photoshop PSD", advice: "export it as PNG or JPEG first") }
        if starts([0x00, 0x00, 0x01, 0x00]) && b.count >= 22 {
            return .refused(name: "ICO", advice: "convert it to PNG first")
        }
        if ascii("SIMPLE  =") { return .refused(name: "FITS", advice: "convert it to PNG or TIFF first") }
        if ascii("MATLAB") { return .refused(name: "MATLAB", advice: "export it as PNG first") }
        if let markup = markupKind(b) { return markup }
        return .unknown
    }

    /// ISO base media files (HEIF family): the major brand, then the compatible ones.
    private static func isoBrand(_ b: UnsafeRawBufferPointer) -> SniffedContent? {
        guard b.count >= 12 else { return nil }
        let boxSize = Int(b[0]) << 24 | Int(b[1]) << 16 | Int(b[2]) << 8 | Int(b[3])
        var brands: [String] = []
        func brand(at offset: Int) -> String? {
            guard offset + 4 <= b.count else { return nil }
            return String(decoding: b[offset..<offset + 4], as: UTF8.self)
        }
        if let major = brand(at: 8) { brands.append(major) }
        var offset = 16
        while offset + 4 <= min(boxSize, b.count) {
            if let compatible = brand(at: offset) { brands.append(compatible) }
            offset += 4
        }
        if brands.contains(where: { $0 == "avif" || $0 == "avis" }) { return .image(.avif) }
        let heif: Set = ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"]
        if brands.contains(where: heif.contains) { return .image(.heic) }
        if brands.contains(where: { ["isom", "mp41", "mp42", "qt  ", "M4V "].contains($0) }) {
            return .refused(name: "video (MP4/QuickTime)", advice: "extract a frame as PNG first")
        }
        return nil
    }

    /// Text formats: SVG and other XML or HTML, judged on the first kilobyte.
    private static func markupKind(_ b: UnsafeRawBufferPointer) -> SniffedContent? {
        let head = String(decoding: b.prefix(window), as: UTF8.self)
        let trimmed = head.drop(while: { $0.isWhitespace || $0 == "\u{FEFF}" }).lowercased()
        guard trimmed.hasPrefix("<") else { return nil }
        if trimmed.contains("<svg") {
            return .refused(
                name: "SVG",
                advice:
                    "vector files can reference external files and entities, so they are not decoded; rasterise it to PNG first (for example `rsvg-convert -o out.png in.svg`)"
            )
        }
        if trimmed.hasPrefix("<!doctype html") || trimmed.hasPrefix("<html") {
            return .refused(
                name: "HTML", advice: "this is a web page, not an image; check the download or the URL it came from")
        }
        if trimmed.hasPrefix("<?xml") {
            return .refused(name: "XML", advice: "this is a text document, not an image")
        }
        return nil
    }

    /// A short, printable excerpt of unrecognised content for error messages.
    package static func excerpt(_ b: UnsafeRawBufferPointer) -> String {
        let head = b.prefix(16)
        let printable = head.allSatisfy { ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if printable {
            let text = String(decoding: head, as: UTF8.self)
                .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
                .replacingOccurrences(of: "\t", with: "\\t")
            return "text \"\(text)\(b.count > 16 ? "…" : "")\""
        }
        return "bytes " + head.prefix(8).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: " ")
    }
}
