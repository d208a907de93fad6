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

/// The permission bits of what `path` names itself (a link as a link).
private func mode(_ path: String) throws -> Int {
    try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
}

private func link(_ path: String, to target: String) throws {
    try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
}

/// Runs `qie` that is expected to stop at once (a refusal); one still
/// running after a minute (it did not refuse) is stopped, and so reported.
private func runBriefly(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let output = Pipe()
    let process = try startQie(arguments, environment: ["RUNPOD_API_KEY": "k"], output: output)
    if !waitForExit(process, seconds: 60) { process.terminate() }
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationReason == .uncaughtSignal ? -1 : process.terminationStatus, text)
}

/// A new folder holding `in/a.jpg` (200x150), for a run to edit.
private func folderWithImage() throws -> String {
    let root = try folder()
    try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
    try writeImage(200, 150, to: root + "/in/a.jpg")
    return root
}

private func makeFolders(_ paths: String...) throws {
    for path in paths { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
}

@Suite("What qie reads stays inside the inputs; its own files are never opened through a link", .serialized)
struct FolderSafetyCLITests {
    @Test("A link among the inputs leading elsewhere is skipped with a warning: its content reaches no request, ledger, sidecar or report; --follow-links reads it")
    func linksStayInside() throws {
        let root = try folderWithImage()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try makeFolders(root + "/private", root + "/bodies")
        let secret = "SECRET-\(UUID().uuidString)"
        try Data(secret.utf8).write(to: URL(fileURLWithPath: root + "/private/secret.txt"))
        try link(root + "/in/a.txt", to: root + "/private/secret.txt")
        try writeImage(120, 90, to: root + "/private/away.jpg")
        try link(root + "/in/away.jpg", to: root + "/private/away.jpg")
        // A link that stays inside is followed as before.
        try makeFolders(root + "/in/sub")
        try writeImage(80, 60, to: root + "/in/sub/b.jpg")
        try link(root + "/in/b-again.jpg", to: "sub/b.jpg")

        let emulator = try EmulatorProcess(recordBodies: root + "/bodies")
        func edit(_ out: String, _ extra: [String] = []) throws -> (status: Int32, output: String) {
            try runQie(
                ["edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/" + out, "--base-url", emulator.address]
                    + extra, environment: ["RUNPOD_API_KEY": "cli-key"])
        }
        let (status, output) = try edit("out")
        #expect(status == 0, "\(output)")
        for name in ["a.txt", "away.jpg"] {
            #expect(
                output.contains("warning \(root)/in/\(name) is a link to ")
                    && output.contains("outside the inputs given; skipped (--follow-links follows it)"), "\(output)")
        }
        #expect(output.contains("edited 2 of 2 files"), "a.jpg and b-again.jpg (sub/b.jpg once): \(output)")
        #expect(!FileManager.default.fileExists(atPath: root + "/out/away.jpg"))
        let sent = everything(under: root + "/bodies")
        #expect(sent.contains("\"night\""), "the run's own prompt went instead")
        #expect(!sent.contains(secret), "the linked file reached the endpoint")
        #expect(!everything(under: root + "/out").contains(secret), "the linked file reached the ledger, a sidecar or the report")
        #expect(!output.contains(secret))

        // qie prepare and qie probe walk the same way.
        let probe = try QieBinary.run(["probe", root + "/in"])
        #expect(probe.stderr.contains("warning \(root)/in/away.jpg is a link to "), "\(probe.stderr)")
        #expect(!probe.stdout.contains("away.jpg"), "\(probe.stdout)")
        let prepare = try QieBinary.run(["prepare", root + "/in", "--size", "64x64", "--out", root + "/prepared"])
        #expect(prepare.stderr.contains("warning \(root)/in/away.jpg is a link to "), "\(prepare.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/prepared/away.jpg"))
        let probeFollowing = try QieBinary.run(["probe", root + "/in", "--follow-links"])
        #expect(probeFollowing.stdout.contains("away.jpg: jpeg 120x90"), "\(probeFollowing.stdout)")

        // Asked to, the run follows them: the linked prompt is sent.
        let (followed, followedOutput) = try edit("out-following", ["--follow-links"])
        #expect(followed == 0, "\(followedOutput)")
        #expect(!followedOutput.contains("is a link to"))
        #expect(everything(under: root + "/bodies").contains(secret), "--follow-links reads the linked prompt")
        #expect(FileManager.default.fileExists(atPath: root + "/out-following/away.jpg"))
    }

    @Test("A manifest's reference is judged by where it leads (.., absolute, a link), refused with the manifest's line")
    func manifestReferences() throws {
        let root = try folderWithImage()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try makeFolders(root + "/private")
        try writeImage(120, 90, to: root + "/private/logo.jpg")
        try writeImage(120, 90, to: root + "/in/own-logo.jpg")
        try link(root + "/in/logo.jpg", to: root + "/private/logo.jpg")
        let header = "file,prompt,seed,negative_prompt,images\n"
        for (reference, leads) in [("../private/logo.jpg", false), (root + "/private/logo.jpg", false), ("logo.jpg", true)] {
            try Data((header + "a.jpg,make it night,,,own-logo.jpg\n").utf8).write(to: URL(fileURLWithPath: root + "/in/ok.csv"))
            try Data((header + "own-logo.jpg,make it night,,,own-logo.jpg\na.jpg,make it night,,,\(reference)\n").utf8).write(
                to: URL(fileURLWithPath: root + "/in/m.csv"))
            let run = try QieBinary.run([
                "edit", root + "/in", "--provider", "runpod", "--manifest", root + "/in/m.csv", "--out", root + "/out", "--dry-run",
            ])
            #expect(run.status == 2, "\(reference): \(run.stderr)")
            #expect(run.stderr.contains("m.csv:3 names the reference"), "\(reference): \(run.stderr)")
            #expect(run.stderr.contains("--allow-outside-references allows it"), "\(run.stderr)")
            #expect(run.stderr.contains("it leads to") == leads, "\(run.stderr)")
            let allowed = try QieBinary.run([
                "edit", root + "/in", "--provider", "runpod", "--manifest", root + "/in/m.csv", "--out", root + "/out", "--dry-run",
                "--allow-outside-references",
            ])
            #expect(allowed.status == 0, "\(reference): \(allowed.stderr)")
        }
        let inside = try QieBinary.run([
            "edit", root + "/in", "--provider", "runpod", "--manifest", root + "/in/ok.csv", "--out", root + "/out", "--dry-run",
        ])
        #expect(inside.status == 0, "\(inside.stderr)")
    }

    @Test("qie's own files planted as links are refused by name, never written through; records are 0600 in a folder qie did not make")
    func ownFilesNeverThroughLinks() throws {
        let root = try folderWithImage()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bashrc = root + "/bashrc"
        try Data("# mine\n".utf8).write(to: URL(fileURLWithPath: bashrc))
        let emulator = try EmulatorProcess()
        func edit(_ out: String) throws -> (status: Int32, output: String) {
            try runQie(
                ["edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/" + out, "--base-url", emulator.address],
                environment: ["RUNPOD_API_KEY": "cli-key"])
        }
        func untouched() throws -> Bool { try String(contentsOfFile: bashrc, encoding: .utf8) == "# mine\n" }

        for (out, planted, target) in [
            ("ledger", ".qie-ledger.sqlite", bashrc), ("dangling", ".qie-ledger.sqlite", root + "/created.sqlite"),
            ("wal", ".qie-ledger.sqlite-wal", bashrc), ("lock", ".qie-lock", bashrc),
        ] {
            try makeFolders(root + "/" + out)
            try link(root + "/\(out)/\(planted)", to: target)
            let (status, output) = try edit(out)
            #expect(status != 0, "\(planted): \(output)")
            #expect(output.contains("\(root)/\(out)/\(planted): is a symbolic link"), "\(planted): \(output)")
            #expect(try untouched(), "\(planted) was written through")
            #expect(!FileManager.default.fileExists(atPath: root + "/created.sqlite"))
            #expect(!FileManager.default.fileExists(atPath: bashrc + "-wal") && !FileManager.default.fileExists(atPath: bashrc + "-journal"))
        }

        // A sidecar's name as a link: that job fails naming it; nothing is written through it.
        try makeFolders(root + "/sidecar")
        try link(root + "/sidecar/a.json", to: bashrc)
        let (sidecarStatus, sidecarOutput) = try edit("sidecar")
        #expect(sidecarStatus == 1, "\(sidecarOutput)")
        #expect(sidecarOutput.contains("\(root)/sidecar/a.json: is a symbolic link"), "\(sidecarOutput)")
        #expect(try untouched())

        // In a folder the user made (0755, any umask), the records holding prompts are 0600,
        // and a ledger an earlier version left readable by others is made 0600.
        try makeFolders(root + "/made")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root + "/made")
        let (status, output) = try edit("made")
        #expect(status == 0, "\(output)")
        let records = [".qie-ledger.sqlite", "a.json", "report.json", "report.html"]
        for name in records + [".qie-ledger.sqlite-wal", ".qie-ledger.sqlite-shm"]
        where FileManager.default.fileExists(atPath: root + "/made/" + name) {
            #expect(try mode(root + "/made/" + name) == 0o600, "\(name)")
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: root + "/made/.qie-ledger.sqlite")
        let (again, againOutput) = try edit("made")
        #expect(again == 0, "\(againOutput)")
        #expect(try mode(root + "/made/.qie-ledger.sqlite") == 0o600)

        // The gateway's state: its database and its files folder, the same way.
        for (state, planted) in [("state-db", "gateway.sqlite"), ("state-files", "files")] {
            try makeFolders(root + "/" + state, root + "/elsewhere")
            try link(root + "/\(state)/\(planted)", to: planted == "files" ? root + "/elsewhere" : bashrc)
            let (status, output) = try runBriefly(["serve", "--port", "0", "--provider", "runpod", "--state", root + "/" + state])
            #expect(status != 0, "\(planted): \(output)")
            #expect(output.contains("\(root)/\(state)/\(planted)") && output.contains("link"), "\(planted): \(output)")
            #expect(try untouched())
        }
    }
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
