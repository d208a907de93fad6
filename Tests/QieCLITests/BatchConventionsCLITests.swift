import Foundation
import QieImaging
import QieProviders
import Testing

/// A JSON object from text, or a recorded failure naming the text.
private func object(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
}

/// Every file under `folder`, relative to it, sorted.
private func files(under folder: String) -> [String] {
    let all = (try? FileManager.default.subpathsOfDirectory(atPath: folder)) ?? []
    return all.filter { path in
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: folder + "/" + path, isDirectory: &isFolder) && !isFolder.boolValue
    }.sorted()
}

/// What people who script sharp-cli, vipsthumbnail or ImageMagick expect:
/// JSON wherever there is text, names from a template, outputs already
/// there left alone.
@Suite("Batch-tool conventions: JSON, name templates, --skip-existing", .serialized)
struct BatchConventionsCLITests {
    @Test("qie providers --json: one object per endpoint, the same endpoints, keys and prices as the text")
    func providersJSON() throws {
        let run = try QieBinary.run(["providers", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]], "\(run.stdout)")
        let ids = list.compactMap { $0["id"] as? String }
        // Every endpoint of the catalog, in its order (a new host's included).
        #expect(ids == ProviderCatalog.all.map(\.id))
        #expect(ids.contains("runpod-qwen-image-edit-2511") && ids.contains("lumenfall-qwen-image-edit-2511"))
        let runpod = try #require(list.first)
        #expect((runpod["auth"] as? [String: Any])?["keyVariable"] as? String == "RUNPOD_API_KEY")
        #expect(runpod["price"] as? String == "$0.02 per image" && runpod["pricePublished"] as? Bool == true)
        #expect((runpod["flows"] as? [String])?.contains("poll") == true)
        #expect((runpod["aliases"] as? [String])?.contains("runpod") == true)
        let oxen = try #require(list.first { $0["id"] as? String == "oxen-qwen-image-edit-2511" })
        #expect(oxen["pricePublished"] as? Bool == false)
        let lumenfall = try #require(list.first { $0["id"] as? String == "lumenfall-qwen-image-edit-2511" })
        let fields = (lumenfall["fields"] as? [[String: Any]])?.compactMap { $0["setting"] as? String } ?? []
        #expect(fields.contains("responseFormat"), "\(fields)")
        // The text lists the same endpoints, key variables and prices.
        let text = try QieBinary.run(["providers"]).stdout
        for entry in list {
            let auth = entry["auth"] as? [String: Any]
            for value in [entry["id"] as? String, entry["price"] as? String, (auth?["keyVariable"] as? String).map { "$" + $0 }] {
                #expect(value.map(text.contains) == true, "the text lacks \(value ?? "?")")
            }
        }
    }

    @Test("qie edit --dry-run --json: one document with each file's plan, cost and output names, failures and skips; nothing written")
    func dryRunJSON() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in/sub", withIntermediateDirectories: true)
        try writeImage(400, 300, to: root + "/in/a.jpg")
        try writeImage(300, 400, to: root + "/in/sub/b.jpg")
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/in/broken.jpg"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: root + "/in/notes.md"))
        let run = try QieBinary.run([
            "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--dry-run", "--json",
            "--name", "{dir}/{stem}-night.{ext}", "--format", "webp",
        ])
        #expect(run.status == 1, "broken.jpg cannot be edited: \(run.stderr)")
        #expect(run.stderr.contains("broken.jpg"))
        let report = try object(run.stdout)
        #expect(report["format"] as? Int == 1 && report["endpoint"] as? String == "runpod-qwen-image-edit-2511")
        #expect(report["planned"] as? Int == 2 && report["failed"] as? Int == 1 && report["requests"] as? Int == 2)
        #expect(report["totalUSD"] as? String == "0.04" && report["unpriced"] as? Int == 0)
        let entries = try #require(report["files"] as? [[String: Any]])
        func entry(_ name: String) -> [String: Any]? { entries.first { ($0["input"] as? String)?.hasSuffix(name) == true } }
        #expect(entry("/a.jpg")?["status"] as? String == "planned")
        #expect(entry("/a.jpg")?["outputs"] as? [String] == ["a-night.webp"])
        #expect(entry("/a.jpg")?["costUSD"] as? String == "0.02" && entry("/a.jpg")?["prompt"] as? String == "night")
        let target = (entry("/a.jpg")?["plan"] as? [String: Any])?["target"] as? [String: Any]
        #expect(target?["width"] as? Int == 1536 && target?["height"] as? Int == 1080)
        #expect(entry("sub/b.jpg")?["outputs"] as? [String] == ["sub/b-night.webp"])
        #expect(entry("broken.jpg")?["status"] as? String == "failed")
        #expect((entry("broken.jpg")?["error"] as? String)?.contains("not an image") == true)
        #expect(entry("notes.md")?["status"] as? String == "skipped")
        #expect(!FileManager.default.fileExists(atPath: root + "/out"), "a dry run wrote the output folder")

        // The text names the same outputs.
        let text = try QieBinary.run([
            "edit", root + "/in/a.jpg", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--dry-run",
            "--name", "{stem}-night.{ext}",
        ])
        #expect(text.status == 0 && text.stdout.contains("a.jpg as a-night.jpg: 400x300 -> 1536x1080"), "\(text.stdout)")
    }

    @Test("--name templates: results named as asked, several with {index}; resume and status follow the recorded names; resume prints JSON only when asked")
    func editWithTemplate() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in/sub", withIntermediateDirectories: true)
        try writeImage(120, 90, to: root + "/in/a.jpg")
        try writeImage(90, 120, to: root + "/in/sub/b.jpg")
        let emulator = try EmulatorProcess()
        let environment = ["RUNPOD_API_KEY": "cli-key"]
        let edit = [
            "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--base-url", emulator.address,
            "--format", "png", "--num-images", "2", "--restore", "exact",
        ]

        // Two results per input need {index}: refused before anything is sent.
        let (refused, refusal) = try runQie(edit + ["--name", "{dir}/{stem}-night.{ext}"], environment: environment)
        #expect(refused == 2, "\(refusal)")
        #expect(refusal.contains("--name \"{dir}/{stem}-night.{ext}\" has no {index}"), "\(refusal)")
        #expect(emulator.count(of: " -> ") == 0)

        let run = try QieBinary.run(edit + ["--name", "{dir}/{stem}-night-{index}.{ext}", "--json"], environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(
            files(under: root + "/out").filter { !$0.hasPrefix("report") && !$0.hasPrefix(".qie") } == [
                "a-night-1.json", "a-night-1.png", "a-night-2.json", "a-night-2.png", "sub/b-night-1.json", "sub/b-night-1.png",
                "sub/b-night-2.json", "sub/b-night-2.png",
            ])
        let info = try ImageProbe.probe(file: root + "/out/sub/b-night-2.png")
        #expect(info.width == 90 && info.height == 120 && info.format == .png)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(run.stdout)")
        let outputs = try lines.dropLast().map { try object($0)["output"] as? String ?? "" }
        #expect(outputs.contains(root + "/out/sub/b-night-2.png"), "\(outputs)")

        // The ledger records each output: status and resume name them, whatever the template.
        let status = try QieBinary.run(["status", root + "/out", "--json"])
        let summary = try object(status.stdout)
        #expect(summary["format"] as? Int == 1 && summary["byState"] as? [String: Int] == ["completed": 4])
        let recorded = (summary["jobs"] as? [[String: Any]] ?? []).flatMap { $0["outputs"] as? [String] ?? [] }
        #expect(Set(recorded) == Set(["a-night-1", "a-night-2", "sub/b-night-1", "sub/b-night-2"].map { root + "/out/\($0).png" }))
        let text = try QieBinary.run(["status", root + "/out"])
        #expect(text.stdout.contains("4 jobs in \(root)/out: 4 completed"), "\(text.stdout)")

        // The first run printed JSON; a resume prints what it is asked for now.
        let resumed = try QieBinary.run(["resume", root + "/out", "--base-url", emulator.address], environment: environment)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("a.jpg -> \(root)/out/a-night-1.png (earlier run)"), "\(resumed.stdout)")
        #expect(resumed.stdout.contains("edited 0 of 4 files") && !resumed.stdout.contains("{"), "\(resumed.stdout)")
        let resumedJSON = try QieBinary.run(["resume", root + "/out", "--base-url", emulator.address, "--json"], environment: environment)
        let last = try object(String(resumedJSON.stdout.split(separator: "\n").last ?? ""))
        #expect(last["summary"] as? Bool == true && last["earlier"] as? Int == 4, "\(resumedJSON.stdout)")
        #expect(emulator.count(of: "POST /v2/qwen-image-edit-2511/run -> 200") == 4, "a resume sent again")
    }

    @Test("--name refuses names that meet (naming both files), that leave the output folder or are qie's own, before anything is sent")
    func templateRefusals() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for part in ["one", "two"] {
            try FileManager.default.createDirectory(atPath: root + "/\(part)", withIntermediateDirectories: true)
            try writeImage(100, 80, to: root + "/\(part)/x.jpg")
        }
        let emulator = try EmulatorProcess()
        let environment = ["RUNPOD_API_KEY": "cli-key"]
        let edit = [
            "edit", root + "/one", root + "/two", "--provider", "runpod", "--prompt", "night", "--out", root + "/out",
            "--base-url", emulator.address,
        ]
        let (met, meeting) = try runQie(edit + ["--name", "{stem}-night.{ext}"], environment: environment)
        #expect(met == 2, "\(meeting)")
        #expect(
            meeting.contains("gives both \(root)/one/x.jpg and \(root)/two/x.jpg the name x-night.{ext}")
                && meeting.contains("add a placeholder that tells them apart"), "\(meeting)")
        let (ownStatus, own) = try runQie(
            ["edit", root + "/one", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--name", "report.{ext}",
             "--base-url", emulator.address], environment: environment)
        #expect(ownStatus == 2 && own.contains("the name report.json, which is qie's own"), "\(own)")
        #expect(emulator.count(of: " -> ") == 0, "a request was sent")
        #expect(!FileManager.default.fileExists(atPath: root + "/out/report.json"))

        let refusals: [(String, String)] = [
            ("../{stem}.{ext}", "has a .. part: names stay inside the output folder"),
            ("/tmp/{stem}.{ext}", "starts with /"),
            ("{stem}-night.png", "must end with .{ext}"),
            ("{name}.{ext}", "names {name}, which is not a placeholder; use {dir}, {stem}, {ext}, {index}"),
        ]
        for (template, message) in refusals {
            let run = try QieBinary.run(edit + ["--name", template], environment: environment)
            #expect(run.status == 64 && run.stderr.contains(message), "\(template): \(run.stderr)")
        }
        #expect(emulator.count(of: " -> ") == 0, "a request was sent")
    }

    @Test("qie prepare --name writes the template's names; --skip-existing leaves outputs already there and says how many")
    func prepareTemplateAndSkip() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in/sub", withIntermediateDirectories: true)
        try writeImage(200, 100, to: root + "/in/a.jpg")
        try writeImage(100, 100, to: root + "/in/b.png", format: .png)
        try writeImage(100, 200, to: root + "/in/sub/c.jpg")
        let prepare = ["prepare", root + "/in", "--out", root + "/out", "--size", "64x64", "--name", "{dir}/{stem}-small.{ext}"]
        let first = try QieBinary.run(prepare)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(files(under: root + "/out") == ["a-small.jpg", "b-small.png", "sub/c-small.jpg"])

        // An output changed since, and a new input: only the new one is written.
        let kept = Data("mine, keep it".utf8)
        try kept.write(to: URL(fileURLWithPath: root + "/out/a-small.jpg"))
        try writeImage(50, 50, to: root + "/in/d.jpg")
        let second = try QieBinary.run(prepare + ["--skip-existing"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("prepared 1 of 4 files into \(root)/out"), "\(second.stdout)")
        #expect(second.stdout.contains("; 3 skipped (output exists)"), "\(second.stdout)")
        #expect(second.stdout.contains("skipped \(root)/in/a.jpg: \(root)/out/a-small.jpg exists"), "\(second.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: root + "/out/a-small.jpg")) == kept)
        #expect(try ImageProbe.probe(file: root + "/out/d-small.jpg").width == 64)

        let third = try QieBinary.run(prepare + ["--skip-existing", "--json"])
        let lines = third.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(third.stdout)")
        #expect(try lines.dropLast().allSatisfy { try object($0)["status"] as? String == "exists" })
        let summary = try object(lines.last ?? "")
        #expect(summary["existing"] as? Int == 4 && summary["written"] as? Int == 0)

        // Two inputs given one name: refused before any image is read, naming both.
        try FileManager.default.createDirectory(atPath: root + "/other", withIntermediateDirectories: true)
        try writeImage(40, 40, to: root + "/other/a.jpg")
        let met = try QieBinary.run(["prepare", root + "/in/a.jpg", root + "/other/a.jpg", "--out", root + "/met", "--name", "{stem}.{ext}"])
        #expect(met.status == 2, "\(met.stderr)")
        #expect(met.stderr.contains("gives both \(root)/in/a.jpg and \(root)/other/a.jpg the name a.{ext}"), "\(met.stderr)")
        #expect(files(under: root + "/met").isEmpty)
    }

    @Test("qie serve reads its state and keys from the environment: QIE_GATEWAY_STATE, else XDG_STATE_HOME; QIE_GATEWAY_KEYS; --state first")
    func serveFromEnvironment() throws {
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let named = try GatewayProcess(
            serving: [], environment: ["QIE_GATEWAY_STATE": work + "/named", "QIE_GATEWAY_KEYS": "first-key, second-key"])
        #expect(named.waitForLog("state: \(work)/named\n"), "\(named.output)")
        #expect(named.waitForLog("gateway keys: key-"), "\(named.output)")
        #expect(FileManager.default.fileExists(atPath: work + "/named/gateway.sqlite"))
        let keys = named.output.split(separator: "\n").first { $0.hasPrefix("gateway keys: ") } ?? ""
        #expect(keys.split(separator: ",").count == 2 && !named.output.contains("first-key"), "\(named.output)")

        let standard = try GatewayProcess(serving: [], environment: ["QIE_GATEWAY_STATE": "", "QIE_GATEWAY_KEYS": "", "XDG_STATE_HOME": work + "/xdg"])
        #expect(standard.waitForLog("state: \(work)/xdg/qie/serve\n"), "\(standard.output)")
        #expect(standard.waitForLog("no gateway keys: loopback clients only"), "\(standard.output)")

        let flag = try GatewayProcess(serving: ["--state", work + "/flag"], environment: ["QIE_GATEWAY_STATE": work + "/named"])
        #expect(flag.waitForLog("state: \(work)/flag\n"), "\(flag.output)")
    }
}
