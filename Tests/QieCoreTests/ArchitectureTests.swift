import Foundation
import Testing

/// The repository's source files, read as text.
enum SourceTree {
    /// The repository root, found from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Every Swift file under `Sources/`, as (path relative to the root, lines).
    static func swiftFiles() throws -> [(path: String, lines: [String])] {
        let sources = root + "/Sources"
        guard let walker = FileManager.default.enumerator(atPath: sources) else { return [] }
        var files: [(String, [String])] = []
        for case let relative as String in walker where relative.hasSuffix(".swift") {
            let text = try String(contentsOfFile: sources + "/" + relative, encoding: .utf8)
            files.append(("Sources/" + relative, text.components(separatedBy: "\n")))
        }
        return files.sorted { $0.0 < $1.0 }
    }

    /// The module a source path belongs to (`Sources/QieCore/X.swift` -> `QieCore`).
    static func module(_ path: String) -> String { path.split(separator: "/").dropFirst().first.map(String.init) ?? "" }
}

@Suite("The layers hold")
struct ArchitectureTests {
    private let cModules = ["CVips", "CVipsShims", "CCodecShims", "CPNG", "CJPEG", "CWebP"]

    @Test("Only QieImaging imports the C modules; only one platform file imports the C library")
    func cImports() throws {
        var offenders: [String] = []
        for (path, lines) in try SourceTree.swiftFiles() {
            for (index, line) in lines.enumerated() {
                let code = line.trimmingCharacters(in: .whitespaces)
                let imported = code.replacingOccurrences(of: "internal ", with: "").replacingOccurrences(of: "private ", with: "")
                if cModules.contains(where: { imported == "import \($0)" }), SourceTree.module(path) != "QieImaging" {
                    offenders.append("\(path):\(index + 1): \(code)")
                }
                let system = ["import Glibc", "import Darwin", "import Musl"].contains(imported) || code.contains("Glibc.")
                if system, path != "Sources/QieFiles/Platform.swift" { offenders.append("\(path):\(index + 1): \(code)") }
            }
        }
        #expect(offenders.isEmpty, "\(offenders.joined(separator: "\n"))")
    }

    @Test("Planning, cost, request bodies and HTTP never link libvips: QieCore, QieProviders and QieClient do not import QieImaging")
    func noImagingBelow() throws {
        var offenders: [String] = []
        for (path, lines) in try SourceTree.swiftFiles() where ["QieCore", "QieProviders", "QieClient", "QieFiles"].contains(SourceTree.module(path)) {
            for (index, line) in lines.enumerated() where line.contains("import QieImaging") || line.contains("import QiePipeline") {
                offenders.append("\(path):\(index + 1): \(line)")
            }
        }
        #expect(offenders.isEmpty, "\(offenders.joined(separator: "\n"))")
    }

    @Test("No library message spells a command-line flag: front ends name settings their own way")
    func noFlagsInLibraryText() throws {
        var offenders: [String] = []
        let flag = /"[^"]*--[a-z][^"]*"/
        for (path, lines) in try SourceTree.swiftFiles() where SourceTree.module(path).hasPrefix("Qie") {
            for (index, line) in lines.enumerated() {
                let code = line.trimmingCharacters(in: .whitespaces)
                if code.hasPrefix("//") { continue }
                if code.contains(flag) { offenders.append("\(path):\(index + 1): \(code)") }
            }
        }
        #expect(offenders.isEmpty, "\(offenders.joined(separator: "\n"))")
    }
}
