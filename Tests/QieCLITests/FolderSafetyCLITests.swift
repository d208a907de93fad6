import Foundation
import QieTestSupport
import Testing

/// Everything below `folder`, every file's bytes as text (lossy), to search
/// for what must not be there: request bodies, the ledger and its journal,
/// sidecars, the report.
private func everything(under folder: String) -> String {
    var text = ""
    let enumerator = FileManager.default.enumerator(atPath: folder)
    while let name = enumerator?.nextObject() as? String {
        if let data = FileManager.default.contents(atPath: folder + "/" + name) { text += String(decoding: data, as: UTF8.self) }
    }
    return text
}

/// A new folder holding `in/a.jpg` (200x150), for a run to edit.
private func folderWithImage() throws -> String {
    let root = try folder()
    try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
    try writeImage(200, 150, to: root + "/in/a.jpg")
    return root
}

@Suite("The PostgreSQL password stays out of everything", .serialized)
struct PostgresSecretsCLITests {
    @Test("--ledger=URL with its password: none of it in qie_runs, qie status (text, JSON), the report, the sidecars or the output")
    func passwordStaysOut() throws {
        let root = try folderWithImage()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ledger = try PostgresServer.newDatabase()
        let password = try #require(URLComponents(string: ledger)?.password)
        let emulator = try EmulatorProcess()
        let environment = ["RUNPOD_API_KEY": "cli-key", "PGPASSWORD": ""]
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--base-url", emulator.address,
                "--ledger=" + ledger,
            ], environment: environment)
        #expect(status == 0, "\(output)")
        let stored = try PostgresServer.query(ledger, "SELECT arguments || ' ' || coalesce(configuration, '') FROM qie_runs")
        #expect(stored.contains("--ledger=postgres:\\/\\/qie@127.0.0.1"), "\(stored)")
        #expect(!stored.contains(password), "the password is in qie_runs")
        let text = try runQie(["status", root + "/out", "--ledger=" + ledger], environment: environment)
        let json = try runQie(["status", root + "/out", "--json", "--ledger", ledger], environment: environment)
        #expect(text.status == 0 && json.status == 0, "\(text.output) \(json.output)")
        #expect(text.output.contains("last run: qie edit"), "\(text.output)")
        for (what, shown) in [("output", output), ("status", text.output), ("status --json", json.output), ("files", everything(under: root + "/out"))] {
            #expect(!shown.contains(password), "the password is in \(what)")
        }
    }

    @Test("The password from a 0600 password file (PGPASSFILE) connects; one others can read is ignored with a warning")
    func passwordFile() throws {
        let root = try folderWithImage()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var components = try #require(URLComponents(string: try PostgresServer.newDatabase()))
        let password = try #require(components.password)
        let line = "127.0.0.1:\(try #require(components.port)):\(components.path.dropFirst()):\(try #require(components.user)):\(password)\n"
        try Data(line.utf8).write(to: URL(fileURLWithPath: root + "/pgpass"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: root + "/pgpass")
        components.password = nil
        let ledger = try #require(components.string)
        let emulator = try EmulatorProcess()
        let environment = ["RUNPOD_API_KEY": "cli-key", "PGPASSWORD": "", "PGPASSFILE": root + "/pgpass"]
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--base-url", emulator.address,
                "--ledger", ledger,
            ], environment: environment)
        #expect(status == 0, "\(output)")
        #expect(try runQie(["status", root + "/out", "--ledger", ledger], environment: environment).output.contains("1 job"))

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: root + "/pgpass")
        let refused = try runQie(["status", root + "/out", "--ledger", ledger], environment: environment)
        #expect(refused.status != 0)
        #expect(refused.output.contains("warning: password file \"\(root)/pgpass\" has group or world access"), "\(refused.output)")
        #expect(refused.output.contains("the server asks for a password and none was given") && !refused.output.contains(password), "\(refused.output)")
    }

    @Test("A server on another machine without sslmode is refused from the URL alone, in a network namespace with no way out")
    func otherMachinesNeedTLS() throws {
        /// `qie` inside a new, empty network namespace: nothing it does can reach any network.
        func isolated(_ arguments: [String]) throws -> QieRun {
            try QieBinary.run(arguments, environment: ["PGPASSWORD": "", "RUNPOD_API_KEY": "k"], launcher: ["/usr/bin/unshare", "-n"])
        }
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for url in ["postgres://qie@10.1.2.3/qie", "postgres://qie@10.1.2.3:5432/qie?sslmode=prefer"] {
            for arguments in [["status", root, "--ledger", url], ["serve", "--port", "0", "--state", url]] {
                let run = try isolated(arguments)
                #expect(run.status != 0, "\(arguments)")
                #expect(
                    run.stderr.contains("10.1.2.3 is not on this machine") && run.stderr.contains("sslmode=require")
                        && run.stderr.contains("TLS"), "\(arguments): \(run.stderr)")
            }
        }
        // Said explicitly, the URL passes, and the connection (with no network here) fails as a connection does.
        let plain = try isolated(["status", root, "--ledger", "postgres://qie@10.1.2.3/qie?sslmode=disable"])
        #expect(plain.status != 0 && plain.stderr.contains("cannot connect") && !plain.stderr.contains("sslmode"), "\(plain.stderr)")
    }
}
