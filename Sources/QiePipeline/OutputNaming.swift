import QieFiles
import QieImaging
import QieReport
import QieStore

/// Output names: the input's relative path with the output format's
/// extension, decided from the whole batch so the result does not depend on
/// timing and no two outputs (or an output and qie's own files) share a name.
/// An input keeps its own extension too (`a.png.webp`) when its name would
/// clash: with another input's (`a.png` and `a.jpg` to `a.webp`), with
/// another input's numbered results or copies (input `a-1.jpg` and the
/// second result of `a.jpg`), or with qie's files (input `report.jpg`'s
/// sidecar and `report.json`). An input folder named like the report's
/// thumbnail folder is written as `report-thumbs-input`.
public struct OutputNaming: Sendable {
    private let bases: [String: String]

    /// Stems (names without extension) qie writes at the top of an output
    /// folder: the report, the ledger and the run lock.
    static let reservedStems: Set<String> = ["report", OutputNaming.stem(Ledger.fileName), OutputNaming.stem(RunLock.fileName)]

    /// Naming for the whole batch `inputs`, each written as `copies`
    /// requests (numbered `-1`, `-2`... when more than one) of
    /// `resultsPerRequest` results (numbered likewise), with a `.json`
    /// sidecar per request when `sidecars` is set.
    public init(_ inputs: [InputFile], copies: Int = 1, resultsPerRequest: Int = 1, sidecars: Bool = false) {
        func plain(_ relative: String, keepingExtension: Bool) -> String {
            var base = keepingExtension ? relative : OutputNaming.stem(relative)
            let first = base.split(separator: "/", maxSplits: 1).first.map(String.init) ?? base
            if first.lowercased() == RunReport.thumbnailFolder, base.contains("/") {
                base = RunReport.thumbnailFolder + "-input" + base.dropFirst(first.count)
            }
            return base
        }
        // The stems one input writes, lowercased (names differing in case clash on some disks).
        func stems(_ base: String) -> [String] {
            let requests = copies > 1 ? (1...copies).map { "\(base)-\($0)" } : [base]
            return requests.flatMap { request in
                (resultsPerRequest > 1 ? (1...resultsPerRequest).map { "\(request)-\($0)" } : [request])
                    + (sidecars && resultsPerRequest > 1 ? [request] : [])
            }.map { $0.lowercased() }
        }
        let paths = inputs.map(\.relativePath)
        var keeps = Set<String>()
        var bases: [String: String] = [:]
        for round in 0..<4 {
            bases = Dictionary(uniqueKeysWithValues: paths.map { ($0, plain($0, keepingExtension: keeps.contains($0))) })
            var owners: [String: Set<String>] = [:]
            for path in paths {
                for stem in stems(bases[path]!) { owners[stem, default: []].insert(path) }
            }
            let reserved = sidecars ? Self.reservedStems : []
            let clashing = owners.filter { $0.value.count > 1 || reserved.contains($0.key) }
            if clashing.isEmpty { break }
            for names in clashing.values {
                // The input whose own name reaches the clash (input `a-2`
                // against `a`'s second result) moves aside; the numbered
                // names of the other stay where they are. Equal names both move.
                let longest = names.map { bases[$0]!.count }.max() ?? 0
                let moving = round == 3 ? names : names.filter { bases[$0]!.count == longest }
                if round == 3 {
                    for (index, name) in moving.sorted().enumerated() { bases[name] = name + "-\(index + 1)" }
                } else {
                    keeps.formUnion(moving)
                }
            }
        }
        self.bases = bases
    }

    /// Where `input`'s output goes in the output folder, with `format`'s extension.
    public func relativeOutputPath(for input: InputFile, format: OutputFormat) -> String {
        base(for: input) + "." + format.fileExtension
    }

    /// `input`'s output path without extension (and without copy or result numbers).
    public func base(for input: InputFile) -> String {
        bases[input.relativePath] ?? OutputNaming.stem(input.relativePath)
    }

    /// The path without its extension (a leading dot is part of the name).
    public static func stem(_ relative: String) -> String {
        let nameStart = relative.lastIndex(of: "/").map { relative.index(after: $0) } ?? relative.startIndex
        guard let dot = relative[nameStart...].lastIndex(of: "."), dot > nameStart else { return relative }
        return String(relative[..<dot])
    }

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
