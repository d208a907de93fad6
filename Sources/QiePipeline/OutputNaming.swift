import QieFiles
import QieImaging

/// Output names: the input's relative path with the output format's
/// extension. Inputs that would land on the same name (`a.png` and `a.jpg`
/// to `a.webp`) keep their own extension too (`a.png.webp`, `a.jpg.webp`),
/// decided from the whole batch so the result does not depend on timing.
public struct OutputNaming: Sendable {
    private let keepsExtension: Set<String>

    /// Naming for the whole batch `inputs`, so clashing names are found before any is written.
    public init(_ inputs: [InputFile]) {
        var counts: [String: Int] = [:]
        for input in inputs { counts[OutputNaming.stemKey(input.relativePath), default: 0] += 1 }
        keepsExtension = Set(
            inputs.map(\.relativePath).filter { counts[OutputNaming.stemKey($0), default: 0] > 1 })
    }

    /// Where `input`'s output goes in the output folder, with `format`'s extension.
    public func relativeOutputPath(for input: InputFile, format: OutputFormat) -> String {
        let relative = input.relativePath
        let base = keepsExtension.contains(relative) ? relative : OutputNaming.stem(relative)
        return base + "." + format.fileExtension
    }

    /// The path without its extension (a leading dot is part of the name).
    public static func stem(_ relative: String) -> String {
        let nameStart = relative.lastIndex(of: "/").map { relative.index(after: $0) } ?? relative.startIndex
        guard let dot = relative[nameStart...].lastIndex(of: "."), dot > nameStart else { return relative }
        return String(relative[..<dot])
    }

    private static func stemKey(_ relative: String) -> String { stem(relative).lowercased() }

    /// Extensions that say "image": a file with one of these that does not
    /// decode is an error; other files found in folders are skipped.
    public static let imageExtensions: Set<String> = [
        "jpg", "jpeg", "jpe", "jfif", "png", "apng", "webp", "gif", "avif", "heic", "heif", "tif", "tiff",
        "svg", "svgz", "pdf", "bmp", "jxl", "jp2", "psd", "ico",
    ]

    /// Whether `path`'s name ends in one of `imageExtensions` (any case).
    public static func hasImageExtension(_ path: String) -> Bool {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot > name.startIndex else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }
}

extension InputFile {
    /// Whether `error` means this file is simply not an image and can be
    /// skipped quietly: found in a folder, not named like an image, and its
    /// content is not an image either. Files named on the command line, or
    /// named like images, are failures instead.
    public func isSkippable(_ error: Error) -> Bool {
        guard let error = error as? ImagingError else { return false }
        return !isExplicit && error.kind == .notAnImage && !OutputNaming.hasImageExtension(path)
    }
}
