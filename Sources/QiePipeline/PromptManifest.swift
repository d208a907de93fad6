import Foundation
import QieCore
import QieFiles
import SwiftCSV

/// What one input is asked, when it differs from the run's defaults.
public struct InputRequest: Sendable, Equatable {
    /// The instruction for this input.
    public var prompt: String
    /// Its seed; nil takes the run's.
    public var seed: Int?
    /// Its negative prompt; nil takes the run's.
    public var negativePrompt: String?
    /// Reference images sent after the input (absolute paths); nil keeps the run's references.
    public var references: [String]?

    /// A request with `prompt`; nil fields take the run's values.
    public init(prompt: String, seed: Int? = nil, negativePrompt: String? = nil, references: [String]? = nil) {
        self.prompt = prompt
        self.seed = seed
        self.negativePrompt = negativePrompt
        self.references = references
    }
}

/// Prompts per image: a manifest (CSV with a header row, or JSON Lines) with
/// the columns `file`, `prompt` and optionally `seed`, `negative_prompt` and
/// `images` (reference images: a JSON array, or paths separated by `;` in
/// CSV). Paths are relative to the manifest's folder. Without a manifest row,
/// a text file next to the image with the same name (`photo.txt` for
/// `photo.jpg`) gives its prompt.
public struct PromptManifest: Sendable {
    /// Requests by the input's absolute, standardised path.
    public private(set) var requests: [String: InputRequest] = [:]
    /// The manifest's line of each request, by the same key.
    private var lines: [String: Int] = [:]
    /// The manifest file, when read from one.
    public let path: String?
    /// The run's inputs: a prompt file (`NAME.txt`) that is a link is read
    /// only when it leads inside them (or links are followed); nil reads
    /// prompt files wherever they lead.
    public var bounds: InputBounds?

    /// No manifest: only `NAME.txt` files give prompts.
    public init() { path = nil }

    /// Reads a manifest of at most `maxBytes` (a regular file, checked before
    /// it is read); errors name the file, the line and what is wrong.
    public init(file: String, maxBytes: Int = 256 << 20) throws(ManifestError) {
        path = file
        let folder = (Self.absolute(file) as NSString).deletingLastPathComponent
        let rows: [(line: Int, fields: [String: Any])]
        let data: Data
        do {
            data = try FileContents.read(file, maxBytes: maxBytes)
        } catch {
            throw ManifestError(file: file, line: nil, "\(error)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ManifestError(file: file, line: nil, "is not UTF-8 text") }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("{") {
            var parsed: [(Int, [String: Any])] = []
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let row = line.trimmingCharacters(in: .whitespaces)
                if row.isEmpty { continue }
                guard let object = try? JSONSerialization.jsonObject(with: Data(row.utf8)) as? [String: Any] else {
                    throw ManifestError(file: file, line: index + 1, "is not a JSON object")
                }
                parsed.append((index + 1, object))
            }
            rows = parsed
        } else {
            let csv: CSV<Named>
            do {
                csv = try CSV<Named>(string: text, delimiter: .comma, loadColumns: false)
            } catch {
                throw ManifestError(file: file, line: nil, "is not valid CSV: \(error)")
            }
            guard csv.header.contains("file"), csv.header.contains("prompt") else {
                throw ManifestError(file: file, line: 1, "needs a header row with file and prompt columns (got \(csv.header.joined(separator: ",")))")
            }
            rows = csv.rows.enumerated().map { ($0.offset + 2, $0.element as [String: Any]) }
        }
        for (line, fields) in rows {
            guard let name = (fields["file"] as? String)?.trimmingCharacters(in: .whitespaces), !name.isEmpty else {
                throw ManifestError(file: file, line: line, "has no file")
            }
            guard let prompt = (fields["prompt"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines), !prompt.isEmpty else {
                throw ManifestError(file: file, line: line, "has no prompt for \(name)")
            }
            var request = InputRequest(prompt: prompt)
            switch fields["seed"] {
            case let number as Int: request.seed = number
            case let text as String where !text.trimmingCharacters(in: .whitespaces).isEmpty:
                guard let seed = Int(text.trimmingCharacters(in: .whitespaces)) else {
                    throw ManifestError(file: file, line: line, "has a seed that is not an integer: \(text)")
                }
                request.seed = seed
            default: break
            }
            if let negative = fields["negative_prompt"] as? String, !negative.isEmpty { request.negativePrompt = negative }
            var references: [String]? = nil
            if let list = fields["images"] as? [String] {
                references = list
            } else if let text = fields["images"] as? String, !text.trimmingCharacters(in: .whitespaces).isEmpty {
                references = text.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            }
            // As written (made absolute, `..` folded, links kept): judged by where they lead before they are read.
            request.references = references?.map { path in
                URL(fileURLWithPath: path.hasPrefix("/") ? path : (folder as NSString).appendingPathComponent(path)).standardized.path
            }
            let key = Self.absolute(name, relativeTo: folder)
            if requests[key] != nil { throw ManifestError(file: file, line: line, "names \(name) a second time") }
            requests[key] = request
            lines[key] = line
        }
    }

    /// Adds another manifest's rows (its rows win for the same image).
    public mutating func merge(_ other: PromptManifest) {
        requests.merge(other.requests) { _, theirs in theirs }
        lines.merge(other.lines) { _, theirs in theirs }
    }

    /// The request for an input: its manifest row, else its `NAME.txt` (a
    /// regular file under `maxPromptFileBytes`, UTF-8, and within `bounds`),
    /// else nil.
    public func request(for path: String) -> InputRequest? {
        if let row = requests[Self.absolute(path)] { return row }
        guard let text = Self.promptFile(for: path), let data = try? promptFileContents(text),
            let prompt = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !prompt.isEmpty
        else { return nil }
        return InputRequest(prompt: prompt)
    }

    /// A prompt file the bounds admit, read through one descriptor (a
    /// file that is no link is opened as no link, so it cannot be swapped
    /// for one meanwhile); `.link` when it leads outside them.
    private func promptFileContents(_ text: String) throws(FileContents.Refusal) -> Data {
        guard let bounds else { return try FileContents.read(text, maxBytes: Self.maxPromptFileBytes - 1) }
        switch bounds.admit(text) {
        case .missing: throw .missing
        case .outside: throw .link
        case .admitted:
            let isLink = Platform.linkStatus(text)?.isLink ?? false
            return try FileContents.read(text, maxBytes: Self.maxPromptFileBytes - 1, followingLinks: isLink)
        }
    }

    /// The prompt file (`NAME.txt`) next to `path` that is a link leading
    /// outside `bounds`: not read.
    public func skippedPromptFile(for path: String) -> SkippedLink? {
        guard requests[Self.absolute(path)] == nil, let bounds, let text = Self.promptFile(for: path),
            case .outside(let link) = bounds.admit(text)
        else { return nil }
        return link
    }

    /// Prompt files (`NAME.txt`) must be smaller than this: 64 KiB.
    public static let maxPromptFileBytes = 64 << 10

    /// `NAME.txt` for `NAME.jpg`.
    static func promptFile(for path: String) -> String? {
        let text = ((path as NSString).deletingPathExtension) + ".txt"
        return text == path ? nil : text
    }

    /// Why the `NAME.txt` next to `path` gives no prompt although it is
    /// there (not a regular file, too large, not UTF-8 text, empty); nil
    /// when it gives one or is not there.
    public static func promptFileProblem(for path: String) -> String? { PromptManifest().promptFileProblem(for: path) }

    /// Why the `NAME.txt` next to `path` gives no prompt although it is
    /// there (as the static form says, and a link leading outside `bounds`).
    public func promptFileProblem(for path: String) -> String? {
        guard let text = Self.promptFile(for: path), Platform.linkStatus(text) != nil else { return nil }
        let maxPromptFileBytes = Self.maxPromptFileBytes
        if let link = skippedPromptFile(for: path) { return "\(link), so it gives no prompt" }
        do {
            let data = try promptFileContents(text)
            guard let prompt = String(data: data, encoding: .utf8) else { return "\(DisplayPath.escape(text)) is not UTF-8 text" }
            return prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "\(DisplayPath.escape(text)) is empty" : nil
        } catch .tooLarge {
            return "\(DisplayPath.escape(text)) is over \(maxPromptFileBytes / 1024) KB; a prompt file holds one short instruction"
        } catch {
            return "\(DisplayPath.escape(text)) \(error)"
        }
    }

    /// A reference image a manifest row names outside the folders a run reads.
    public struct OutsideReference: Sendable, Equatable {
        /// The image the row is for.
        public var image: String
        /// The reference as the row names it (made absolute).
        public var reference: String
        /// Where it leads, every link and `..` resolved.
        public var target: String
        /// The manifest's line.
        public var line: Int?
    }

    /// Reference images rows name whose resolved paths (`realpath`: `..`,
    /// absolute paths and links all followed to where they lead) lie outside
    /// every one of `folders` (resolved too), in row order. A reference that
    /// leads nowhere is judged by its text, standardised.
    public func references(outside folders: [String]) -> [OutsideReference] {
        func resolved(_ path: String) -> String {
            Platform.resolved(path) ?? URL(fileURLWithPath: Self.absolute(path)).standardized.path
        }
        let bounds = InputBounds(inputs: folders.map(resolved))
        var found: [OutsideReference] = []
        for (image, request) in requests.sorted(by: { (lines[$0.key] ?? 0, $0.key) < (lines[$1.key] ?? 0, $1.key) }) {
            for reference in request.references ?? [] {
                let target = resolved(reference)
                if !bounds.contains(resolved: target) {
                    found.append(OutsideReference(image: image, reference: reference, target: target, line: lines[image]))
                }
            }
        }
        return found
    }

    /// A test for the text files among `files` that give an image its prompt
    /// (`NAME.txt` next to `NAME.jpg`): they are prompts, not inputs.
    public static func isPromptFile(among files: [InputFile]) -> @Sendable (InputFile) -> Bool {
        let imageStems = Set(files.filter { !$0.path.hasSuffix(".txt") }.map { ($0.path as NSString).deletingPathExtension })
        return { $0.path.hasSuffix(".txt") && imageStems.contains(($0.path as NSString).deletingPathExtension) }
    }

    /// `path` made absolute (against `folder`, else the current directory) and standardised.
    public static func absolute(_ path: String, relativeTo folder: String? = nil) -> String {
        let base = folder ?? FileManager.default.currentDirectoryPath
        let full = path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
        return (full as NSString).standardizingPath
    }
}

/// A manifest that cannot be used, with where and why.
public struct ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The manifest file.
    public var file: String
    /// The line concerned, when one is.
    public var line: Int?
    /// What is wrong.
    public var reason: String
    /// The setting that would let the run go on as the manifest asks, when one would.
    public var allowedBy: Setting?

    init(file: String, line: Int?, _ reason: String, allowedBy: Setting? = nil) {
        self.file = file
        self.line = line
        self.reason = reason
        self.allowedBy = allowedBy
    }

    /// `FILE:LINE reason`, the path escaped for one line.
    public var description: String { message(naming: \.name) }

    /// `FILE:LINE reason`, naming the setting that allows it as a front end spells it.
    public func message(naming: (Setting) -> String) -> String {
        "\(DisplayPath.escape(file))\(line.map { ":\($0)" } ?? "") \(reason)" + (allowedBy.map { "; \(naming($0)) allows it" } ?? "")
    }
}
