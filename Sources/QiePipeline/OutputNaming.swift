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
///
/// With an `OutputNameTemplate` the names are the template's, as written:
/// nothing is moved aside, and names that would meet are refused instead.
public struct OutputNaming: Sendable {
    private let bases: [String: String]
    /// The template, and the results each input's request gives; nil: names from the inputs' own.
    private let template: (OutputNameTemplate, resultsPerRequest: Int)?

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
        template = nil
    }

    /// Naming by `template` for the whole batch `inputs`, each written as
    /// `copies` requests of `resultsPerRequest` results (numbered together
    /// by `{index}`), with a `.json` sidecar per request when `sidecars` is
    /// set, in `format` (nil: as each result comes). Refuses, before anything
    /// is written, a template without `{index}` when inputs have several
    /// results, a name leading outside the output folder, and two inputs, or
    /// an input and qie's own files (the report, its thumbnails, the ledger,
    /// the lock), given one name, naming both. Without `format`, names that
    /// differ only by extension count as one: the extension is not known yet.
    public init(
        _ inputs: [InputFile], copies: Int = 1, resultsPerRequest: Int = 1, sidecars: Bool = false,
        template: OutputNameTemplate, format: OutputFormat? = nil
    ) throws(SettingError) {
        let results = max(1, copies) * max(1, resultsPerRequest)
        func refuse(_ why: Phrase) -> SettingError {
            SettingError(.outputName, value: SettingError.quoted(template.text), .explained(why))
        }
        if results > 1 && !template.usesIndex {
            throw refuse("has no {index}, and each input has \(results) results; add it (for example {stem}-{index}.{ext})")
        }
        let ext = format?.fileExtension ?? "{ext}"
        // qie's own files are an edit run's (the one with sidecars).
        let reserved: Set<String> =
            sidecars ? Set([RunReport.htmlName, RunReport.jsonName, Ledger.fileName, RunLock.fileName].map { $0.lowercased() }) : []
        var owners: [String: String] = [:]
        for input in inputs {
            var names = (1...results).map { template.name(relativePath: input.relativePath, index: $0, fileExtension: ext) }
            if sidecars {
                names += stride(from: 1, through: results, by: max(1, resultsPerRequest)).map {
                    template.name(relativePath: input.relativePath, index: $0, fileExtension: "json")
                }
            }
            for name in names {
                let shown = DisplayPath.escape(input.path)
                if let part = OutputNameTemplate.outsidePart(name) {
                    throw refuse("gives \(shown) the name \(DisplayPath.escape(name)), whose \(part) part leaves the output folder")
                }
                let key = name.lowercased()
                let top = key.split(separator: "/").first.map(String.init) ?? key
                if reserved.contains(key) || (sidecars && top == RunReport.thumbnailFolder && key.contains("/")) {
                    throw refuse("gives \(shown) the name \(DisplayPath.escape(name)), which is qie's own (the report, its thumbnails, the ledger or the lock); change the template")
                }
                if let other = owners[key], other != input.path {
                    let apart: Phrase =
                        format == nil
                        ? "add a placeholder that tells them apart ({dir}, {stem}, {index}), or give \(setting: .format)"
                        : "add a placeholder that tells them apart ({dir}, {stem}, {index})"
                    throw refuse(
                        "gives both \(DisplayPath.escape(other)) and \(shown) the name \(DisplayPath.escape(name)); \(apart)")
                }
                owners[key] = input.path
            }
        }
        bases = [:]
        self.template = (template, max(1, resultsPerRequest))
    }

    /// Where result `result` (from 0) of the `count` that request `copy` of
    /// `input` gave goes (`copy` 0 for an input's only request, else 1...),
    /// with `format`'s extension.
    public func resultPath(for input: InputFile, copy: Int, result: Int, of count: Int, format: OutputFormat) -> String {
        if let (template, perRequest) = template {
            return template.name(
                relativePath: input.relativePath, index: (max(copy, 1) - 1) * perRequest + result + 1,
                fileExtension: format.fileExtension)
        }
        return requestBase(for: input, copy: copy) + (count > 1 ? "-\(result + 1)" : "") + "." + format.fileExtension
    }

    /// Where the sidecar of request `copy` of `input` goes: its first
    /// result's name with `.json` for the extension (without a template, the
    /// request's name without result numbers).
    public func sidecarPath(for input: InputFile, copy: Int) -> String {
        if let (template, perRequest) = template {
            return template.name(
                relativePath: input.relativePath, index: (max(copy, 1) - 1) * perRequest + 1, fileExtension: "json")
        }
        return requestBase(for: input, copy: copy) + ".json"
    }

    /// Request `copy`'s name without extension or result number.
    private func requestBase(for input: InputFile, copy: Int) -> String {
        base(for: input) + (copy > 0 ? "-\(copy)" : "")
    }

    /// Where `input`'s output goes in the output folder, with `format`'s
    /// extension (its only result).
    public func relativeOutputPath(for input: InputFile, format: OutputFormat) -> String {
        resultPath(for: input, copy: 0, result: 0, of: 1, format: format)
    }

    /// `input`'s output path without extension (and without copy or result
    /// numbers), when names come from the inputs' own (not a template).
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
