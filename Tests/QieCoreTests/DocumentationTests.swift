import Foundation
import Testing

/// Every public declaration of the library products carries a `///` comment,
/// so the generated documentation and Quick Help say what each one is for.
@Suite("Public declarations are documented")
struct DocumentationTests {
    /// The repository's root, found from this file's place in it.
    private static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The Swift files of the library targets (`Sources/Qie*`), sorted.
    private static func librarySources() throws -> [URL] {
        let sources = root.appendingPathComponent("Sources")
        let manager = FileManager.default
        var files: [URL] = []
        for target in try manager.contentsOfDirectory(atPath: sources.path).sorted() where target.hasPrefix("Qie") {
            let folder = sources.appendingPathComponent(target)
            let paths = manager.enumerator(atPath: folder.path)?.compactMap { $0 as? String } ?? []
            files += paths.filter { $0.hasSuffix(".swift") }.sorted().map { folder.appendingPathComponent($0) }
        }
        return files
    }

    @Test("Every public or open declaration in Sources/Qie* has a /// comment")
    func librariesAreDocumented() throws {
        let files = try Self.librarySources()
        #expect(files.count > 20, "found only \(files.count) library sources under \(Self.root.path)")
        var missing: [String] = []
        for file in files {
            let relative = String(file.path.dropFirst(Self.root.path.count + 1))
            let scan = DocumentationScan.undocumented(in: try String(contentsOf: file, encoding: .utf8))
            #expect(scan.balanced, "\(relative): braces do not balance as read; the scan cannot be trusted there")
            missing += scan.declarations.map { "\(relative):\($0.line): \($0.text)" }
        }
        #expect(
            missing.isEmpty,
            "\(missing.count) public declarations have no /// comment:\n\(missing.joined(separator: "\n"))")
    }

    @Test("The scan finds undocumented declarations, implicit ones included, and nothing else")
    func scanFindsWhatIsMissing() {
        let source = """
            public import Foundation
            @_exported import QieCore

            /// Documented.
            public struct Kept {
                public var bare: Int
                /// Documented, with an attribute between.
                @inlinable
                public func attributed() {}
                @discardableResult
                public func attributedBare() -> Int { let local = 1; return local }
                var internalOne = 0
                let text = "public var inString: Int { }"
                // A plain comment is not documentation.
                public init() { bare = 0 }
            }

            public enum Choice {
                case one, two
                /// Documented.
                case three

                var internalComputed: Int {
                    switch self {
                    case .one: 1
                    default: 2
                    }
                }
            }

            public extension Kept {
                func implicitlyPublic() {}
                private func hidden() {}
            }

            /// Documented.
            public protocol Requirement {
                func required()
            }

            enum Internal { case quiet }
            """
        let scan = DocumentationScan.undocumented(in: source)
        #expect(scan.balanced)
        #expect(scan.declarations.map(\.line) == [6, 11, 15, 18, 19, 32, 38])
        #expect(scan.declarations.first?.text == "public var bare: Int")
    }
}

/// A public declaration found without a `///` comment: its line number (from 1) and its text.
struct UndocumentedDeclaration: Equatable, CustomStringConvertible {
    var line: Int
    var text: String
    var description: String { "\(line): \(text)" }
}

/// Reads Swift source as text and finds the public declarations that have no
/// `///` comment right above them (attribute lines may sit between).
enum DocumentationScan {
    /// What a pair of braces encloses, as far as implicit publicness goes.
    private enum Scope {
        case publicEnum, publicExtension, publicProtocol, other
    }

    private static let modifiers: Set<String> = [
        "public", "open", "private", "fileprivate", "internal", "package", "static", "final", "override",
        "mutating", "nonmutating", "convenience", "required", "lazy", "weak", "unowned", "nonisolated", "dynamic",
        "indirect", "prefix", "postfix", "infix", "optional", "distributed", "consuming", "borrowing", "isolated",
    ]
    private static let declarationKeywords: Set<String> = [
        "func", "var", "let", "init", "deinit", "struct", "class", "enum", "case", "protocol", "typealias",
        "subscript", "actor", "extension", "associatedtype", "macro", "operator", "precedencegroup",
    ]

    /// The undocumented public declarations in `source`, in order. Also
    /// returns whether the braces balanced, so a caller can tell a misread file.
    static func undocumented(in source: String) -> (declarations: [UndocumentedDeclaration], balanced: Bool) {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let code = codeOnly(lines)
        var scopes: [Scope] = []
        var pending: Scope?
        var found: [UndocumentedDeclaration] = []
        var balanced = true
        for (index, text) in code.enumerated() {
            if let declaration = declaration(in: text) {
                let enclosing = scopes.last ?? .other
                let access = declaration.modifiers
                let isPublic = access.contains("public") || access.contains("open")
                let isRestricted = !access.isDisjoint(with: ["private", "fileprivate", "internal", "package"])
                let implicitlyPublic: Bool =
                    switch enclosing {
                    case .publicEnum: declaration.keyword == "case"
                    case .publicExtension: !isRestricted && declaration.keyword != "case"
                    case .publicProtocol:
                        ["func", "var", "init", "subscript", "associatedtype", "typealias"].contains(declaration.keyword)
                    case .other: false
                    }
                if (isPublic || implicitlyPublic) && declaration.keyword != "extension"
                    && !isDocumented(lineIndex: index, lines: lines)
                {
                    found.append(UndocumentedDeclaration(
                        line: index + 1, text: lines[index].trimmingCharacters(in: .whitespaces)))
                }
                pending =
                    switch declaration.keyword {
                    case "enum" where isPublic: .publicEnum
                    case "extension" where isPublic: .publicExtension
                    case "protocol" where isPublic: .publicProtocol
                    default: .other
                    }
            }
            for character in text {
                if character == "{" {
                    scopes.append(pending ?? .other)
                    pending = nil
                } else if character == "}" {
                    if scopes.popLast() == nil { balanced = false }
                }
            }
        }
        return (found, balanced && scopes.isEmpty)
    }

    /// Whether the line above the declaration (past attribute lines) is a `///` comment.
    private static func isDocumented(lineIndex: Int, lines: [String]) -> Bool {
        var above = lineIndex - 1
        while above >= 0 {
            let text = lines[above].trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("///") { return true }
            if !text.hasPrefix("@") { return false }
            above -= 1
        }
        return false
    }

    /// The keyword and modifiers of a declaration starting this line, if one does.
    private static func declaration(in line: String) -> (keyword: String, modifiers: Set<String>)? {
        var rest = Substring(line)
        var seen: Set<String> = []
        while true {
            rest = rest.drop(while: \.isWhitespace)
            if rest.first == "@" {
                rest = skipParenthesised(afterWord: rest.dropFirst())
                continue
            }
            let word = String(rest.prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" }))
            if word.isEmpty { return nil }
            rest = rest.dropFirst(word.count)
            if word == "class", let next = nextWord(rest), declarationKeywords.contains(next), next != "class" {
                seen.insert(word)
            } else if modifiers.contains(word) {
                seen.insert(word)
                if rest.first == "(" { rest = skipParenthesised(afterWord: rest) }
            } else if declarationKeywords.contains(word) {
                return (word, seen)
            } else {
                return nil
            }
        }
    }

    private static func nextWord(_ text: Substring) -> String? {
        let word = text.drop(while: \.isWhitespace).prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" })
        return word.isEmpty ? nil : String(word)
    }

    /// Drops a word and, if it is followed by one, a balanced `( ... )`.
    private static func skipParenthesised(afterWord text: Substring) -> Substring {
        var rest = text.drop(while: { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." })
        guard rest.first == "(" else { return rest }
        var depth = 0
        while let character = rest.first {
            rest = rest.dropFirst()
            if character == "(" { depth += 1 }
            if character == ")" {
                depth -= 1
                if depth == 0 { break }
            }
        }
        return rest
    }

    /// Each line with comments and the contents of string literals blanked
    /// out, so braces and keywords inside them are not read as code.
    private static func codeOnly(_ lines: [String]) -> [String] {
        enum Mode {
            case code(parens: Int)  // parens counts open `(` inside a string interpolation
            case string(multiline: Bool, hashes: Int)
            case comment(depth: Int)
        }
        var modes: [Mode] = [.code(parens: 0)]
        var result: [String] = []
        for line in lines {
            var output = ""
            let characters = Array(line)
            var i = 0
            func next(_ text: String, at offset: Int) -> Bool {
                let wanted = Array(text)
                guard offset + wanted.count <= characters.count else { return false }
                return Array(characters[offset..<offset + wanted.count]) == wanted
            }
            lineLoop: while i < characters.count {
                let character = characters[i]
                switch modes.last! {
                case .comment(let depth):
                    if next("*/", at: i) {
                        modes.removeLast()
                        if depth > 1 { modes.append(.comment(depth: depth - 1)) }
                        i += 2
                    } else if next("/*", at: i) {
                        modes[modes.count - 1] = .comment(depth: depth + 1)
                        i += 2
                    } else {
                        i += 1
                    }
                case .string(let multiline, let hashes):
                    let closing = (multiline ? "\"\"\"" : "\"") + String(repeating: "#", count: hashes)
                    let interpolation = "\\" + String(repeating: "#", count: hashes) + "("
                    if next(closing, at: i) {
                        modes.removeLast()
                        output += "\"\""
                        i += closing.count
                    } else if next(interpolation, at: i) {
                        modes.append(.code(parens: 1))
                        i += interpolation.count
                    } else if character == "\\" && hashes == 0 {
                        i += 2
                    } else {
                        i += 1
                    }
                case .code(let parens):
                    if next("//", at: i) { break lineLoop }
                    if next("/*", at: i) {
                        modes.append(.comment(depth: 1))
                        i += 2
                        continue
                    }
                    var hashes = 0
                    while i + hashes < characters.count && characters[i + hashes] == "#" { hashes += 1 }
                    if i + hashes < characters.count && characters[i + hashes] == "\"" {
                        let multiline = next("\"\"\"", at: i + hashes)
                        modes.append(.string(multiline: multiline, hashes: hashes))
                        i += hashes + (multiline ? 3 : 1)
                        continue
                    }
                    if modes.count > 1 {
                        if character == "(" { modes[modes.count - 1] = .code(parens: parens + 1) }
                        if character == ")" {
                            if parens == 1 {
                                modes.removeLast()
                                i += 1
                                continue
                            }
                            modes[modes.count - 1] = .code(parens: parens - 1)
                        }
                    }
                    output.append(character)
                    i += 1
                }
            }
            result.append(output)
        }
        return result
    }
}
