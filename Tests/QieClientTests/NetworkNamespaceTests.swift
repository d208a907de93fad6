import Foundation
import Testing

/// Runs `command` and returns its exit status, standard output and error
/// (the error through a file, so neither pipe fills while the other is read).
private func run(_ command: String, _ arguments: [String]) throws -> (status: Int32, stdout: Data, stderr: String) {
    let errors = FileManager.default.temporaryDirectory.appendingPathComponent("qie-stderr-\(UUID().uuidString)")
    guard FileManager.default.createFile(atPath: errors.path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
    defer { try? FileManager.default.removeItem(at: errors) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [command] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = try FileHandle(forWritingTo: errors)
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, stdout, String(decoding: try Data(contentsOf: errors), as: UTF8.self))
}

/// Result addresses that lead to a private network, played with real
/// sockets inside a network namespace of the test's own (`unshare -n -m`,
/// which needs root): there `lo` also carries 10.0.0.1 (private, where a
/// trap server would hand out a valid result) and 203.0.113.5 (public, where
/// the endpoint and the rightful result server are), and the hosts file
/// says `results.test` is 10.0.0.1. Nothing can leave the namespace. The
/// edits run in `qie-network-probe`, built with the tests.
@Suite("Result addresses in a network namespace: private ones refused, names connected to as checked", .hangGuard)
struct NetworkNamespaceTests {
    @Test("Results on 012.0.0.1, redirected to 10.0.0.1, or on a name resolving there are refused and the private server gets nothing; a name rebound after its check is connected to as checked")
    func privateResults() throws {
        let unshare = try run("unshare", ["-n", "-m", "true"])
        try #require(
            unshare.status == 0,
            "these tests need `unshare -n -m` (util-linux, run as root) to make a network namespace of their own; it failed: \(unshare.stderr)")
        let probe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qie-network-probe")
        try #require(FileManager.default.isExecutableFile(atPath: probe.path), "\(probe.path) is not built (swift build --build-tests builds it)")
        let hosts = FileManager.default.temporaryDirectory.appendingPathComponent("qie-hosts-\(UUID().uuidString)")
        try Data("127.0.0.1 localhost\n10.0.0.1 results.test\n".utf8).write(to: hosts)
        defer { try? FileManager.default.removeItem(at: hosts) }
        let script = """
            set -e
            ip link set lo up
            ip addr add 10.0.0.1/8 dev lo
            ip addr add 203.0.113.5/32 dev lo
            mount --bind "$1" /etc/hosts
            exec "$2"
            """
        let played = try run("unshare", ["-n", "-m", "sh", "-c", script, "sh", hosts.path, probe.path])
        try #require(played.status == 0, "the probe failed (\(played.status)): \(played.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: played.stdout) as? [[String: Any]])
        var scenarios: [String: [String: Any]] = [:]
        for entry in report { scenarios[entry["scenario"] as? String ?? ""] = entry }
        func outcome(_ name: String) throws -> (error: String, images: Int, trap: Int, rightful: Int, fetched: Int, asked: [String]) {
            let entry = try #require(scenarios[name], "no \(name) in \(report)")
            return (
                entry["error"] as? String ?? "", entry["images"] as? Int ?? 0, entry["trapConnections"] as? Int ?? -1,
                entry["publicConnections"] as? Int ?? -1, entry["emulatorResultRequests"] as? Int ?? -1,
                entry["resolverQuestions"] as? [String] ?? []
            )
        }

        // 012.0.0.1 is 10.0.0.1 to the system's resolver: refused as written, before any lookup.
        let literal = try outcome("ambiguous-literal")
        #expect(literal.error.contains("012.0.0.1 is an ambiguous IPv4 address; write it as four decimal numbers"), "\(literal.error)")
        #expect(literal.trap == 0 && literal.images == 0 && literal.asked.isEmpty)

        // The endpoint's own result (public) redirects to 10.0.0.1: that hop is refused.
        let redirect = try outcome("redirect-to-private")
        #expect(redirect.error.contains("10.0.0.1 is a private address"), "\(redirect.error)")
        #expect(redirect.fetched == 1 && redirect.trap == 0 && redirect.images == 0)

        // A name whose answer is, or includes, 10.0.0.1 is refused; neither address is connected to.
        for name in ["name-resolving-private", "name-resolving-public-and-private"] {
            let resolved = try outcome(name)
            #expect(resolved.error.contains("results.test is a private address (10.0.0.1)"), "\(name): \(resolved.error)")
            #expect(resolved.trap == 0 && resolved.rightful == 0 && resolved.images == 0, "\(name)")
            #expect(resolved.asked == ["results.test"], "\(name)")
        }

        // Public to the check, private to every later question (and to the
        // hosts file): the one connection goes to the checked address.
        let rebinding = try outcome("rebinding")
        #expect(rebinding.error.isEmpty && rebinding.images == 1, "\(rebinding.error)")
        #expect(rebinding.rightful == 1 && rebinding.trap == 0, "connections: 203.0.113.5 \(rebinding.rightful), 10.0.0.1 \(rebinding.trap)")
        #expect(rebinding.asked == ["results.test"], "resolved once: \(rebinding.asked)")
    }
}
