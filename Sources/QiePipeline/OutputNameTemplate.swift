import QieCore
import QieFiles

/// Output names from a template, as batch image tools take them
/// (`'{dir}/{stem}-night.{ext}'`): each placeholder in braces is replaced
/// per result, everything else is kept as written.
///
/// | placeholder | replaced by |
/// |---|---|
/// | `{dir}` | the input's folder, relative to the input folder it was found in (empty for a file at its top, or named directly; the `/` after it then goes too) |
/// | `{stem}` | the input's file name without its extension |
/// | `{ext}` | the output format's extension (`jpg`, `png`, `webp`, `avif`, `gif`) |
/// | `{index}` | the result's number among its input's results, from 1 (always 1 when an input has one result) |
///
/// A template ends with `.{ext}`, so a file's name says what it holds and
/// its sidecar (`.json` in place of the extension) sits beside it. Names
/// are relative to the output folder: a template starting with `/`, or with
/// a `.` or `..` part, is refused. `OutputNaming` refuses, before anything
/// is written or sent, a template without `{index}` when inputs have
/// several results, and two results (or a result and qie's own files) that
/// would get one name, naming both files.
public struct OutputNameTemplate: Sendable, Equatable, Codable, CustomStringConvertible {
    /// What a template may name.
    public enum Placeholder: String, Sendable, CaseIterable {
        /// The input's folder, relative to its input folder.
        case dir
        /// The input's file name without its extension.
        case stem
        /// The output format's extension.
        case ext
        /// The result's number among its input's results, from 1.
        case index
    }

    private enum Part: Equatable {
        case text(String)
        case placeholder(Placeholder)
    }

    /// The template as written.
    public let text: String
    private let parts: [Part]

    /// A template, checked: known placeholders only, braces matched, ending
    /// with `.{ext}`, relative, and without `.` or `..` parts.
    public init(_ text: String) throws(SettingError) {
        func refuse(_ why: Phrase) -> SettingError { SettingError(.outputName, value: SettingError.quoted(text), .explained(why)) }
        let known = Placeholder.allCases.map { "{\($0.rawValue)}" }.joined(separator: ", ")
        guard !text.isEmpty else {
            throw SettingError(.outputName, .missing(hint: "give a template such as {dir}/{stem}-night.{ext}"))
        }
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            if open > rest.startIndex { parts.append(.text(String(rest[..<open]))) }
            guard rest[open] == "{", let close = rest[open...].firstIndex(of: "}") else {
                throw refuse("has an unmatched brace; placeholders are \(known)")
            }
            let name = rest[rest.index(after: open)..<close]
            guard let placeholder = Placeholder(rawValue: String(name)) else {
                throw refuse("names {\(name)}, which is not a placeholder; use \(known)")
            }
            parts.append(.placeholder(placeholder))
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        guard Self.endsWithExtension(parts) else {
            throw refuse("must end with .{ext}, the output format's extension (for example {stem}-night.{ext})")
        }
        guard !text.hasPrefix("/") else { throw refuse("starts with /: names are relative to the output folder") }
        self.text = text
        self.parts = parts
        // Placeholders never give `.` or `..` parts; the text around them may.
        for sample in ["d/s.x", "s.x"] {
            if let part = Self.outsidePart(name(relativePath: sample, index: 1, fileExtension: "e")) {
                throw refuse("has a \(part) part: names stay inside the output folder")
            }
        }
    }

    /// A part of `name` that leads out of the folder or stays in place (`..`, `.`), if any.
    static func outsidePart(_ name: String) -> String? {
        name.split(separator: "/").first { $0 == ".." || $0 == "." }.map(String.init)
    }

    /// Whether the last two parts are text ending in `.` and `{ext}`.
    private static func endsWithExtension(_ parts: [Part]) -> Bool {
        guard parts.count >= 2, parts[parts.count - 1] == .placeholder(.ext), case .text(let before) = parts[parts.count - 2]
        else { return false }
        return before.hasSuffix(".")
    }

    /// Whether the template names `{index}`.
    public var usesIndex: Bool { parts.contains(.placeholder(.index)) }

    /// The template as written.
    public var description: String { text }

    /// The name, relative to the output folder, of result `index` (from 1)
    /// of the input found at `relativePath` (relative to its input folder),
    /// with `fileExtension`. Empty parts (an empty `{dir}`) are left out.
    public func name(relativePath: String, index: Int, fileExtension: String) -> String {
        let slash = relativePath.lastIndex(of: "/")
        let dir = slash.map { String(relativePath[..<$0]) } ?? ""
        let file = slash.map { String(relativePath[relativePath.index(after: $0)...]) } ?? relativePath
        var name = ""
        for part in parts {
            switch part {
            case .text(let literal): name += literal
            case .placeholder(.dir): name += dir
            case .placeholder(.stem): name += OutputNaming.stem(file)
            case .placeholder(.ext): name += fileExtension
            case .placeholder(.index): name += String(index)
            }
        }
        return name.split(separator: "/").joined(separator: "/")
    }

    /// Reads a template stored as its text, checked again.
    public init(from decoder: any Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }

    /// Stores the template as its text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
