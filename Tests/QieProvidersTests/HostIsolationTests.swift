import Foundation
import QieProviders
import Testing

/// A host is one file: nothing in `Sources/` outside its file in
/// `Sources/QieProviders/Hosts/` names it, its routes, its variables or the
/// wire fields only it uses. Code is read (string literals and identifiers);
/// comments and documentation may name hosts as examples.
@Suite("A host is one file")
struct HostIsolationTests {
    /// The OpenAI Images API's words: qie's gateway speaks that API itself,
    /// so a host that shares them (an OpenAI-compatible one) does not own them.
    static let openAIVocabulary: Set<String> = [
        "image", "prompt", "model", "n", "size", "response_format", "output_format", "output_compression", "url",
        "b64_json", "data", "mask", "quality", "background", "user", "seed", "message", "id",
    ]

    /// qie's own words, in its ledgers, manifests and sidecars.
    static let ownVocabulary: Set<String> = ["images", "outputs", "metadata", "format", "request_id"]

    /// Where `Sources/` is, from this file's place in `Tests/`.
    static var sources: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
    }

    /// Each Swift file under `Sources/`, by path relative to it.
    static func swiftFiles() throws -> [(path: String, text: String)] {
        let root = sources.path
        let walker = FileManager.default.enumerator(atPath: root)
        var files: [(String, String)] = []
        while let path = walker?.nextObject() as? String {
            guard path.hasSuffix(".swift") else { continue }
            files.append((path, try String(contentsOfFile: root + "/" + path, encoding: .utf8)))
        }
        return files.sorted { $0.0 < $1.0 }
    }

    /// The code of `text` line by line, comments dropped, with each line's
    /// string literals (multi-line literals' lines whole).
    static func code(_ text: String) -> [(line: Int, code: String, literals: [String])] {
        var result: [(Int, String, [String])] = []
        var inBlock = false
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.contains("\"\"\"") {
                // The opening or closing line of a multi-line literal.
                let quoteCount = trimmed.components(separatedBy: "\"\"\"").count - 1
                if quoteCount % 2 == 1 { inBlock.toggle() }
                result.append((number + 1, line, [line]))
                continue
            }
            if inBlock {
                result.append((number + 1, line, [line]))
                continue
            }
            if trimmed.hasPrefix("//") { continue }
            var literals: [String] = []
            var current: String? = nil
            var escaped = false
            var codeText = ""
            for character in line {
                if var literal = current {
                    if escaped {
                        literal.append(character)
                        escaped = false
                    } else if character == "\\" {
                        escaped = true
                        literal.append(character)
                    } else if character == "\"" {
                        literals.append(literal)
                        current = nil
                        continue
                    } else {
                        literal.append(character)
                    }
                    current = literal
                } else if character == "\"" {
                    current = ""
                } else {
                    codeText.append(character)
                }
            }
            // A trailing comment is not code.
            if let comment = codeText.range(of: "//") { codeText = String(codeText[..<comment.lowerBound]) }
            result.append((number + 1, codeText, literals))
        }
        return result
    }

    /// What names a host: its name, endpoints' ids and aliases, hosts,
    /// variables, routes and documents.
    static func names(of host: any EndpointHost) -> Set<String> {
        var names: Set<String> = [host.name, String(describing: type(of: host))]
        for profile in host.profiles {
            names.insert(profile.id)
            names.formUnion(profile.aliases)
            names.insert(profile.provider)
            names.insert(profile.document)
            names.insert(profile.baseURLVariable)
            names.insert(profile.auth.keyVariable)
            if let base = URL(string: profile.baseURL)?.host { names.insert(base) }
            let routes = profile.routes
            for route in [routes.submit, routes.poll, routes.enqueue, routes.events, routes.cancel, routes.result].compactMap({ $0 }) {
                names.insert(route)
            }
            if let callback = profile.callback {
                names.formUnion([callback.signatureHeader, callback.deliveryHeader, callback.secretVariable])
            }
            names.formUnion(profile.events?.completedEvents ?? [])
        }
        return names
    }

    /// The wire fields a host's endpoints use.
    static func fields(of host: any EndpointHost) -> Set<String> {
        var fields: Set<String> = []
        for profile in host.profiles {
            fields.insert(profile.images.field)
            fields.insert(profile.outputFormat.field)
            fields.formUnion(profile.fields.map(\.name))
            switch profile.sizes {
            case .fixedSizes(let field, _, _, _): fields.insert(field)
            case .aspectRatios(let field, _, _): fields.insert(field)
            case .sizeOrTier(let sizeField, let ratioField, let tierField, _, _): fields.formUnion([sizeField, ratioField, tierField])
            case .sizeObject(let field, _, _): fields.insert(field)
            default: break
            }
            switch profile.result {
            case .url(let path): fields.formUnion(path)
            case .urlArray(let path, let key): fields.formUnion(path + [key])
            case .openAIData: break
            case .urls(let path): fields.formUnion(path.map { $0.hasSuffix("[]") ? String($0.dropLast(2)) : $0 })
            case .urlList(let path): fields.formUnion(path)
            }
            if let callback = profile.callback { fields.insert(callback.idField) }
            if let events = profile.events { fields.insert(events.idField) }
        }
        return fields
    }

    /// Whether `text` holds `name` (in any case) as a word of its own: not
    /// the tail of a longer identifier (`defaultRunFlow` does not name
    /// Runflow), nor the head of a longer lowercase word (`false` does not
    /// name fal.ai; `falQwen...` and `fal-2511` do).
    static func mentions(_ text: String, _ name: String) -> Bool {
        var searched = text[...]
        while let found = searched.range(of: name, options: .caseInsensitive) {
            let before = found.lowerBound == text.startIndex ? nil : text[text.index(before: found.lowerBound)]
            let after = found.upperBound == text.endIndex ? nil : text[found.upperBound]
            let continues = (after?.isLowercase ?? false) && (name.last?.isLetter ?? false)
            // Part of a longer hyphenated word (another host's `X-Fal-Webhook-Signature` holds `webhook-signature`): not this name.
            let joined = (before?.isLetter ?? false) || before == "-"
            if !joined && !continues { return true }
            searched = text[found.upperBound...]
        }
        return false
    }

    /// Where each host's file is.
    static func file(of host: any EndpointHost) -> String { "QieProviders/Hosts/\(type(of: host)).swift" }

    @Test("No host's name, route, variable or own wire field appears in code outside its file")
    func hostsStayInTheirFiles() throws {
        let hosts = ProviderCatalog.hosts
        let files = try Self.swiftFiles()
        #expect(files.count > 50, "the sources were found at \(Self.sources.path)")
        // A wire field belongs to a host when no other host uses it and it
        // is not the OpenAI API's own word.
        let fieldsByHost = hosts.map { Self.fields(of: $0) }
        var misplaced: [String] = []
        for (index, host) in hosts.enumerated() {
            #expect(files.contains { $0.path == Self.file(of: host) }, "\(host.name) has its file, \(Self.file(of: host))")
            let others = fieldsByHost.enumerated().filter { $0.offset != index }.reduce(into: Set<String>()) { $0.formUnion($1.element) }
            let own = fieldsByHost[index].subtracting(others).subtracting(Self.openAIVocabulary).subtracting(Self.ownVocabulary)
            let names = Self.names(of: host).map { $0.lowercased() }
            for (path, text) in files where path != Self.file(of: host) {
                for (line, code, literals) in Self.code(text) {
                    // The one list of hosts.
                    if path == "QieProviders/ProviderCatalog.swift", code.contains("static let hosts") { continue }
                    let text = code + " " + literals.joined(separator: " ")
                    for name in names where Self.mentions(text, name) {
                        misplaced.append("\(path):\(line) names \(host.name) (\(name))")
                    }
                    for literal in literals where own.contains(literal) {
                        misplaced.append("\(path):\(line) uses \(host.name)'s field \"\(literal)\"")
                    }
                }
            }
        }
        #expect(misplaced.isEmpty, "\(misplaced.joined(separator: "\n"))")
    }

    @Test("The scan sees what it looks for: literals, multi-line literals and identifiers, not comments")
    func scanReadsCode() {
        let sample = """
            // RunPod in a comment
            let a = "delayTime" + b // runflow after code
            let help = \"\"\"
                Oxen's queue
                \"\"\"
            let profile = ProviderProfile.runpodQwenImageEdit2511
            """
        let lines = Self.code(sample)
        #expect(!lines.contains { $0.code.contains("RunPod in a comment") })
        #expect(lines.contains { $0.literals == ["delayTime"] && !$0.code.contains("runflow") })
        #expect(lines.contains { $0.literals.contains { $0.contains("Oxen's queue") } })
        #expect(lines.contains { $0.code.lowercased().contains("runpod") })
        #expect(Self.mentions("profile.runpodQwenImageEdit2511", "runpod"))
        #expect(!Self.mentions("defaultrunflow", "runflow") && !Self.mentions("defaultRunFlow", "runflow"))
        #expect(Self.mentions("ProviderProfile.falQwenImageEdit2511", "fal") && Self.mentions("\"fal-2511\"", "fal"))
        #expect(!Self.mentions("return false", "fal") && !Self.mentions("fallBack = nil", "fal"))
    }
}
