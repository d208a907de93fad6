import Foundation
import Testing

/// `Examples/EditFolder` is a package of its own whose `Package.resolved` is
/// committed: built on its own, SwiftPM would rewrite a stale one (and may
/// pick other versions than the ones tested). Its pins must be qie's.
@Suite("The example's Package.resolved matches qie's")
struct ExamplePinsTests {
    /// The repository's root, found from this file's place in it.
    private static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Packages qie pins that a package depending on qie never resolves:
    /// the documentation plugin (`make docs`) and what it depends on are used
    /// by no target.
    private static let rootOnly: Set<String> = ["swift-docc-plugin", "swift-docc-symbolkit"]

    /// Each pin of a `Package.resolved`: identity, and its state (version and revision).
    private static func pins(_ relative: String) throws -> [String: [String: String]] {
        let data = try Data(contentsOf: root.appendingPathComponent(relative))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(relative) is not a JSON object")
        let pins = try #require(object["pins"] as? [[String: Any]], "\(relative) has no pins")
        var found: [String: [String: String]] = [:]
        for pin in pins {
            let identity = try #require(pin["identity"] as? String, "a pin of \(relative) has no identity")
            found[identity] = pin["state"] as? [String: String] ?? [:]
        }
        return found
    }

    @Test("Every package the example resolves is pinned as qie pins it, and none qie's targets use is missing")
    func pinsMatch() throws {
        let qie = try Self.pins("Package.resolved")
        let example = try Self.pins("Examples/EditFolder/Package.resolved")
        #expect(qie.count > 10, "found only \(qie.count) pins in Package.resolved")
        let fix = "copy Package.resolved to Examples/EditFolder/ and run `swift package resolve --package-path Examples/EditFolder`"
        for (identity, state) in example.sorted(by: { $0.key < $1.key }) {
            #expect(qie[identity] != nil, "the example pins \(identity), which qie does not; \(fix)")
            if let pinned = qie[identity] {
                #expect(state == pinned, "the example pins \(identity) at \(state), qie at \(pinned); \(fix)")
            }
        }
        let missing = Set(qie.keys).subtracting(example.keys).subtracting(Self.rootOnly).sorted()
        #expect(missing.isEmpty, "the example's Package.resolved lacks \(missing.joined(separator: ", ")); \(fix)")
    }
}
