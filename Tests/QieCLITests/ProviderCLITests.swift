import Foundation
import QieImaging
import QieTestSupport
import Testing

/// A new temporary folder.
func folder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("qie-cli-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A JPEG of `width` x `height` at `path`.
func writeImage(_ width: Int, _ height: Int, to path: String, format: OutputFormat = .jpeg) throws {
    let pixels = [UInt8]((0..<(width * height)).flatMap { i in [UInt8(i % 200), 40, 90] })
    try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: format)).write(to: URL(fileURLWithPath: path))
}

@Suite("qie providers, plan and cost", .serialized)
struct ProviderCLITests {
    @Test("qie providers lists every endpoint with its key variable and price")
    func providers() throws {
        let run = try QieBinary.run(["providers"])
        #expect(run.status == 0)
        for text in [
            "runpod-qwen-image-edit-2511", "runpod-qwen-image-edit ", "runflow-qwen-image-edit-2511",
            "oxen-qwen-image-edit-2511", "lumenfall-qwen-image-edit-2511", "$RUNPOD_API_KEY", "$RUNFLOW_API_KEY",
            "$OXEN_API_KEY", "$LUMENFALL_API_KEY", "$0.02 per image", "$0.03 per output megapixel", "jpeg as \"jpg\"",
        ] {
            #expect(run.stdout.contains(text), "missing \(text)")
        }
    }

    @Test("qie plan shows target, padding, request field and restore for each image")
    func plan() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeImage(400, 300, to: root + "/a.jpg")
        let run = try QieBinary.run(["plan", root + "/a.jpg", "--provider", "runpod"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains(
            "a.jpg: 400x300 -> 1536x1080 contain (resize to 1440x1080, pad top 0 right 48 bottom 0 left 48; 6.2% padding); sends size=1536*1080; restore: crop 1440x1080+48+0 of a 1536x1080 result, resize to 400x300"))

        let refused = try QieBinary.run(["plan", root + "/a.jpg", "--provider", "runpod", "--size", "1000x1000"])
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("does not take size 1000x1000; it accepts sizes 1024*1024"))
    }

    @Test("qie cost prices a folder per file with a total, from headers only")
    func cost() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeImage(800, 1000, to: root + "/p.jpg")
        try writeImage(1000, 800, to: root + "/l.jpg")
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/broken.jpg"))
        let runpod = try QieBinary.run(["cost", root, "--provider", "runpod", "--num-images", "2"])
        #expect(runpod.status == 1)  // broken.jpg
        #expect(runpod.stderr.contains("broken.jpg: not an image"))
        let lines = runpod.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasSuffix("l.jpg\t1000x800\t0.80\t1280x1024\t1.31072\t2\t$0.04") })
        #expect(lines.contains { $0.hasPrefix("total\t2 files") && $0.hasSuffix("\t$0.08") })

        let runflow = try QieBinary.run(["cost", root + "/p.jpg", "--provider", "runflow", "--json"])
        #expect(runflow.status == 0)
        let total = try #require(runflow.stdout.split(separator: "\n").last)
        let object = try JSONSerialization.jsonObject(with: Data(total.utf8)) as? [String: Any]
        #expect(object?["files"] as? Int == 1)

        let oxen = try QieBinary.run(["cost", root + "/p.jpg", "--provider", "oxen"])
        #expect(oxen.stdout.contains("\tunknown"))
        let priced = try QieBinary.run(["cost", root + "/p.jpg", "--provider", "oxen", "--price-per-image", "0.05"])
        #expect(priced.stdout.contains("$0.05"))
    }

    @Test("qie prepare --provider writes planned images and redacted requests; secrets never appear")
    func prepareForProvider() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeImage(600, 300, to: root + "/wide.jpg")
        var environment = ProcessInfo.processInfo.environment
        environment["LUMENFALL_API_KEY"] = "lf-SECRET-123"
        let (status, output) = try runToEnd(
            QieBinary.url.path,
            [
                "prepare", root + "/wide.jpg", "--provider", "lumenfall", "--out", root + "/out", "--emit-requests",
                "--prompt", "Add snow", "--result-format", "avif",
            ], environment: environment)
        #expect(status == 0, "\(output)")
        #expect(!output.contains("SECRET"))
        let info = try ImageProbe.probe(file: root + "/out/wide.jpg")
        #expect(info.width == 1365 && info.height == 768)
        let request = String(decoding: try Data(contentsOf: URL(fileURLWithPath: root + "/out/wide.jpg.request.http")), as: UTF8.self)
        #expect(request.hasPrefix("POST https://api.lumenfall.ai/openai/v1/images/edits HTTP/1.1\r\nAuthorization: Bearer ***\r\n"))
        #expect(!request.contains("SECRET"))
        #expect(request.contains("name=\"size\"\r\n\r\n1365x768\r\n"))
        #expect(request.contains("name=\"output_format\"\r\n\r\navif\r\n"))
        #expect(request.contains("name=\"image\"; filename=\"wide.jpg\"\r\nContent-Type: image/jpeg"))
    }
}

/// Presses Ctrl-C on a running `qie edit` twice, the second once the first
/// was heard (two at once may arrive as one); everything it printed, once it ended.
func interruptTwice(_ process: Process, output: Pipe) -> String {
    kill(process.processIdentifier, SIGINT)
    var heard = ""
    while !heard.contains("interrupted") {
        let chunk = output.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        heard += String(decoding: chunk, as: UTF8.self)
    }
    if process.isRunning { kill(process.processIdentifier, SIGINT) }
    heard += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return heard
}

/// `qie emulate` running in the background for a test, logging each request.
final class EmulatorProcess: QieServer {
    /// With `latencyMax`, each submission's drawn latency is logged as it arrives (`latency SECONDS`).
    /// `faults` are played one per submission, in order (`--fault`).
    /// With `recordBodies`, every accepted submission's body is written to that folder.
    init(
        environment extra: [String: String] = [:], latency: Double = 0, latencyMax: Double? = nil, effect: String = "none",
        faults: [String] = [], recordBodies: String? = nil
    ) throws {
        try super.init(
            ["emulate", "--port", "0", "--api-key", "cli-key", "--latency", String(latency), "--effect", effect, "--log-requests"]
                + (latencyMax.map { ["--latency-max", String($0)] } ?? []) + faults.flatMap { ["--fault", $0] }
                + (recordBodies.map { ["--record-bodies", $0] } ?? []),
            environment: extra)
    }
}

/// Starts `qie` in the background with extra environment variables; output
/// and errors go together to `output`, or nowhere.
func startQie(_ arguments: [String], environment extra: [String: String], output: Pipe? = nil) throws -> Process {
    let process = Process()
    process.executableURL = QieBinary.url
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
    process.standardOutput = output ?? FileHandle.nullDevice
    process.standardError = output ?? FileHandle.nullDevice
    try process.run()
    return process
}

/// Runs `qie` with extra environment variables; output and errors together.
func runQie(_ arguments: [String], environment extra: [String: String]) throws -> (status: Int32, output: String) {
    let output = Pipe()
    let process = try startQie(arguments, environment: extra, output: output)
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}

/// A local port free at the time of asking (bound and released by Python).
func freeLocalPort() throws -> Int {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return try #require(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)))
}

@Suite("qie edit and qie emulate", .serialized)
struct EditCLITests {
    @Test("qie edit against qie emulate: key from the environment, restored outputs, sidecars; a missing key stops before any work")
    func editAgainstEmulator() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(500, 300, to: root + "/in/a.jpg")

        let emulator = try EmulatorProcess()
        func edit(key: String?) throws -> (Int32, String) {
            try runQie(
                [
                    "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out",
                    "--restore", "exact", "--format", "png", "--base-url", emulator.address,
                ], environment: key.map { ["RUNPOD_API_KEY": $0] } ?? [:])
        }

        let (missingStatus, missing) = try edit(key: nil)
        #expect(missingStatus == 2)
        #expect(missing.contains("needs an API key in RUNPOD_API_KEY"))
        #expect(!FileManager.default.fileExists(atPath: root + "/out/a.png"))

        let (status, text) = try edit(key: "cli-key")
        #expect(status == 0, "\(text)")
        #expect(text.contains("edited 1 of 1 files"))
        #expect(!text.contains("cli-key"))
        let info = try ImageProbe.probe(file: root + "/out/a.png")
        #expect(info.width == 500 && info.height == 300 && info.format == .png)
        #expect(FileManager.default.fileExists(atPath: root + "/out/a.json"))
    }

    // Every endpoint and flow runs in process in EditRunFlowTests; these
    // end-to-end cases check the command line's own flags reach the library.
    @Test(
        "qie edit end to end: the requested format, the input's exact size, a sidecar with flow, job ids and hash",
        arguments: [
            ("runpod-qwen-image-edit", ["--format", "avif", "--negative-prompt", "blur"], "avif"),
            ("runflow", ["--flow", "callback", "--format", "png", "--metadata", "batch=cli"], "png"),
            ("lumenfall", ["--response-format", "b64_json", "--format", "avif", "--num-images", "2"], "avif"),
        ])
    func everyEndpoint(provider: String, options: [String], format: String) throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(640, 360, to: root + "/in/wide.jpg")
        try writeImage(300, 450, to: root + "/in/tall.jpg")
        let secret = "whsec-cli-test"
        let emulator = try EmulatorProcess(environment: ["RUNFLOW_SIGNING_SECRET": secret], latency: 0.3)
        var arguments = [
            "edit", root + "/in", "--provider", provider, "--prompt", "make it dusk", "--out", root + "/out",
            "--restore", "exact", "--base-url", emulator.address, "--poll-interval", "0.1",
        ] + options
        if options.contains("callback") {
            arguments += ["--callback-url", "http://127.0.0.1:\(try freeLocalPort())/runflow"]
        }
        let keys = ["RUNPOD_API_KEY", "RUNFLOW_API_KEY", "OXEN_API_KEY", "LUMENFALL_API_KEY"]
        var environment = Dictionary(uniqueKeysWithValues: keys.map { ($0, "cli-key") })
        environment["RUNFLOW_SIGNING_SECRET"] = secret
        let (status, output) = try runQie(arguments, environment: environment)
        #expect(status == 0, "\(output)")
        #expect(!output.contains("cli-key") && !output.contains(secret))
        let ext = format == "jpeg" ? "jpg" : format
        let copies = options.contains("--num-images") ? ["-1", "-2"] : [""]
        for (name, width, height) in [("wide", 640, 360), ("tall", 300, 450)] {
            for copy in copies {
                let info = try ImageProbe.probe(file: root + "/out/\(name)\(copy).\(ext)")
                #expect(info.format.rawValue == format && info.width == width && info.height == height, "\(name)\(copy)")
            }
            let sidecarData = try Data(contentsOf: URL(fileURLWithPath: root + "/out/\(name).json"))
            let sidecar = try #require(JSONSerialization.jsonObject(with: sidecarData) as? [String: Any])
            #expect((sidecar["endpoint"] as? String)?.hasPrefix(provider) == true)
            #expect(sidecar["prompt"] as? String == "make it dusk" && sidecar["restored"] as? String == "exact")
            #expect((sidecar["inputSHA256"] as? String)?.count == 64)
            #expect((sidecar["requestIDs"] as? [String])?.isEmpty == false || provider == "lumenfall")
            #expect(sidecar["submissions"] as? Int == copies.count || provider == "lumenfall")
            if let flow = options.firstIndex(of: "--flow").map({ options[$0 + 1] }) {
                #expect(sidecar["flow"] as? String == flow)
            }
            #expect(!String(decoding: sidecarData, as: UTF8.self).contains("cli-key"))
        }
    }

    @Test("qie edit refuses a flow the endpoint lacks and a callback flow without a URL, before any work")
    func flowChecks() throws {
        let (status, output) = try runQie(
            ["edit", "/nonexistent", "--provider", "lumenfall", "--prompt", "x", "--out", "/tmp/none", "--flow", "poll"],
            environment: [:])
        #expect(status == 64 && output.contains("lumenfall-qwen-image-edit-2511 does not offer --flow poll; it offers sync"))
        let (callbackStatus, callback) = try runQie(
            ["edit", "/nonexistent", "--provider", "runflow", "--prompt", "x", "--out", "/tmp/none", "--flow", "callback"],
            environment: [:])
        #expect(callbackStatus == 64 && callback.contains("--flow callback needs --callback-url"))
        let (remoteStatus, remote) = try runQie(
            [
                "edit", "/nonexistent", "--provider", "runflow", "--prompt", "x", "--out", "/tmp/none", "--flow", "callback",
                "--callback-url", "https://hooks.example.com/qie",
            ], environment: [:])
        #expect(remoteStatus == 64 && remote.contains("say where to listen with --callback-listen HOST:PORT"))
    }

    @Test("Ctrl-C lets the edit in flight finish and starts no more; a second Ctrl-C names the accepted job left behind")
    func interrupt() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        for name in ["a", "b", "c"] { try writeImage(320, 240, to: root + "/in/\(name).jpg") }
        // The first run's edit ends 10 s after it was accepted, the second
        // run's never: each is still on the wire when its Ctrl-C lands.
        let emulator = try EmulatorProcess(faults: ["delayed:10", "delayed:3600"])

        func start(_ out: String) throws -> (Process, Pipe) {
            let pipe = Pipe()
            let process = try startQie(
                [
                    "edit", root + "/in", "--provider", "runflow", "--prompt", "x", "--out", root + out, "--concurrency",
                    "1", "--base-url", emulator.address, "--poll-interval", "0.2",
                ], environment: ["RUNFLOW_API_KEY": "cli-key"], output: pipe)
            return (process, pipe)
        }

        let submitted = "POST /v1/models/alibaba/qwen-image-edit-2511/runs -> 201"
        let (gentle, gentleOutput) = try start("/once")
        #expect(emulator.waitForLog(submitted))
        kill(gentle.processIdentifier, SIGINT)
        let text = String(decoding: gentleOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        gentle.waitUntilExit()
        #expect(gentle.terminationStatus == 130, "\(text)")
        #expect(text.contains("interrupted: finishing the edits in flight"))
        let written = try FileManager.default.contentsOfDirectory(atPath: root + "/once").filter { $0.hasSuffix(".png") }
        #expect(written == ["a.png"], "\(text)")

        // The run polls a job only once its acceptance is recorded: a poll is
        // the event after which a Ctrl-C finds the job among the accepted.
        let polled = "GET /v1/runs/run_"
        let pollsBefore = emulator.count(of: polled)
        let (hard, hardOutput) = try start("/twice")
        #expect(emulator.waitForLog(submitted, count: 2))
        #expect(emulator.waitForLog(polled, count: pollsBefore + 1))
        let stopped = interruptTwice(hard, output: hardOutput)
        #expect(hard.terminationStatus == 130)
        #expect(stopped.contains("a.jpg: job run_") && stopped.contains("was accepted; its result was not fetched"), "\(stopped)")
    }

    @Test("A second Ctrl-C cancels accepted jobs at an endpoint that can: a queued one is not billed, a running one may be; each copy is named apart")
    func interruptCancels() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(320, 240, to: root + "/in/a.jpg")
        // RunPod has no count field: two copies are two jobs, neither ending
        // while the test runs: one no worker takes, one running for an hour.
        let emulator = try EmulatorProcess(faults: ["stays-queued", "delayed:3600"])
        let pipe = Pipe()
        let process = try startQie(
            [
                "edit", root + "/in", "--provider", "runpod", "--flow", "poll", "--prompt", "x", "--out", root + "/out",
                "--num-images", "2", "--base-url", emulator.address, "--poll-interval", "0.2",
            ], environment: ["RUNPOD_API_KEY": "cli-key"], output: pipe)
        // Each job is polled only once its acceptance is recorded: two job ids polled.
        func polledJobs(_ printed: String) -> Set<String> {
            let lines = printed.split(separator: "\n").filter { $0.hasPrefix("GET /v2/qwen-image-edit-2511/status/") && $0.contains(" -> ") }
            return Set(lines.compactMap { $0.split(separator: "/status/").last?.split(separator: " ").first.map(String.init) })
        }
        emulator.waitForOutput(until: { polledJobs($0).count >= 2 }, orEndOf: process)
        let heard = interruptTwice(process, output: pipe)
        let jobs = polledJobs(emulator.output)
        #expect(jobs.count == 2, "\(emulator.output)")
        #expect(process.terminationStatus == 130, "\(heard)")
        #expect(heard.contains("stopping now"), "\(heard)")
        for job in jobs { #expect(heard.contains("job \(job) at"), "\(heard)") }
        #expect(heard.contains("a.jpg (copy 1): job") && heard.contains("a.jpg (copy 2): job"), "\(heard)")
        // Each job cancelled once; the queued one never ran, the running one may have been billed.
        let cancels = emulator.output.split(separator: "\n").filter { $0.hasPrefix("POST /v2/qwen-image-edit-2511/cancel/") }
        #expect(cancels.count == 2, "\(emulator.output)")
        #expect(heard.contains("was cancelled before it ran; nothing was billed"), "\(heard)")
        #expect(heard.contains("was cancelled too late to know whether it ran; it may have been billed"), "\(heard)")

        // The ledger says the same, and the money: $0.02 at risk, nothing spent.
        let (_, status) = try runQie(["status", root + "/out"], environment: [:])
        #expect(status.contains("1 uncertain") && status.contains("1 cancelled"), "\(status)")
        #expect(status.contains("spent: $0 ") && status.contains("at risk: $0.02"), "\(status)")
        #expect(status.contains("cancelled (not billed; the next run sends it again)"), "\(status)")
    }

    @Test("A RunPod job on /run past --timeout is cancelled once at the endpoint; the ledger says cancelled, nothing is spent, and the next run sends it")
    func timeoutCancels() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(320, 240, to: root + "/in/a.jpg")
        let emulator = try EmulatorProcess(faults: ["stays-queued"])
        let arguments = [
            "edit", root + "/in", "--provider", "runpod", "--flow", "poll", "--prompt", "x", "--out", root + "/out",
            "--base-url", emulator.address, "--poll-interval", "0.2", "--timeout", "1",
        ]
        let (code, output) = try runQie(arguments, environment: ["RUNPOD_API_KEY": "cli-key"])
        #expect(code == 1, "\(output)")
        let cancels = emulator.output.split(separator: "\n").filter { $0.hasPrefix("POST /v2/qwen-image-edit-2511/cancel/") }
        #expect(cancels.count == 1 && cancels[0].contains(" -> 200"), "\(emulator.output)")
        let (_, status) = try runQie(["status", root + "/out", "--json"], environment: [:])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any], "\(status)")
        let job = try #require((json["jobs"] as? [[String: Any]])?.first)
        #expect(job["state"] as? String == "cancelled", "\(status)")
        #expect((job["error"] as? String)?.contains("before it ran, so nothing was billed") == true, "\(status)")
        #expect(json["spentUSD"] as? String == "0" && json["atRiskUSD"] as? String == "0", "\(status)")

        // Nothing was billed: the next run sends it again (the emulator answers normally now).
        var again = arguments
        again.removeLast(2)
        let (second, secondOutput) = try runQie(again, environment: ["RUNPOD_API_KEY": "cli-key"])
        #expect(second == 0, "\(secondOutput)")
        #expect(emulator.count(of: "POST /v2/qwen-image-edit-2511/run ") == 2, "\(emulator.output)")
        #expect(FileManager.default.fileExists(atPath: root + "/out/a.jpg"))
    }

    @Test("A second run into the same folder is refused while the first is running, and allowed once it was killed")
    func oneRunPerFolder() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(120, 90, to: root + "/in/a.jpg")
        let emulator = try EmulatorProcess(latency: 3)
        let arguments = [
            "edit", root + "/in", "--provider", "runflow", "--prompt", "x", "--out", root + "/out",
            "--base-url", emulator.address, "--poll-interval", "0.2",
        ]
        let first = try startQie(arguments, environment: ["RUNFLOW_API_KEY": "cli-key"])
        #expect(emulator.waitForLog("POST /v1/models/alibaba/qwen-image-edit-2511/runs -> 201"))
        // Polled only once its acceptance is in the ledger: killed after that,
        // the job is resumed (polled), not left uncertain.
        #expect(emulator.waitForLog("GET /v1/runs/run_"))
        // Frozen while it holds the folder: it is running for as long as the check takes.
        kill(first.processIdentifier, SIGSTOP)
        let (status, output) = try runQie(arguments, environment: ["RUNFLOW_API_KEY": "cli-key"])
        #expect(status == 1)
        #expect(output.contains("another qie edit (process \(first.processIdentifier)) is writing into this folder"), "\(output)")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let (after, text) = try runQie(arguments, environment: ["RUNFLOW_API_KEY": "cli-key"])
        #expect(after == 0, "\(text)")
        #expect(emulator.count(of: "POST /v1/models/alibaba/qwen-image-edit-2511/runs -> 201") == 1)
    }

    /// A provider's asynchronous default flow under SIGKILL: its key
    /// variable, and the emulator's log line for an accepted submission.
    struct KillCase: Sendable, CustomStringConvertible {
        var provider: String
        var keyVariable: String
        var accepted: String
        var kills: Int
        /// The results' extension: the endpoint's default format.
        var ext: String
        /// The emulated latency, long enough that every kill lands on a running run.
        var latency: Double
        var description: String { provider }
    }

    @Test(
        "Killed with SIGKILL at random moments in the default flow, then resumed: every image done once, no accepted job sent twice, a job caught sending left uncertain until asked",
        arguments: [
            KillCase(provider: "runflow", keyVariable: "RUNFLOW_API_KEY", accepted: "POST /v1/models/alibaba/qwen-image-edit-2511/runs -> 201", kills: 4, ext: "png", latency: 1.5),
            KillCase(provider: "runpod", keyVariable: "RUNPOD_API_KEY", accepted: "POST /v2/qwen-image-edit-2511/run -> 200", kills: 8, ext: "jpg", latency: 1.5),
        ])
    func killAndResume(_ kase: KillCase) throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        let count = 24
        for index in 1...count { try writeImage(96 + index, 64, to: root + "/in/img-\(index).jpg") }
        let emulator = try EmulatorProcess(latency: kase.latency)
        let environment = [kase.keyVariable: "cli-key"]
        let arguments = [
            "edit", root + "/in", "--provider", kase.provider, "--prompt", "night", "--out", root + "/out",
            "--concurrency", "4", "--base-url", emulator.address, "--poll-interval", "0.1", "--restore", "exact",
        ]

        /// The ledger's jobs as `qie status --json` reports them.
        func jobs() throws -> [[String: Any]] {
            let status = try QieBinary.run(["status", root + "/out", "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
            return try #require(object["jobs"] as? [[String: Any]])
        }

        var recordedIDs: [String: String] = [:]  // job key -> request id seen at a kill
        var caughtInFlight = 0  // jobs on the wire or accepted and not yet finished when killed
        // Each kill lands just after the endpoint accepted one to four more
        // submissions (an event, not a moment): those jobs are on the wire.
        var generator = SeededGenerator(seed: SeededGenerator.seed(printedAs: "killAndResume(\(kase.provider))"))
        for _ in 0..<kase.kills {
            let before = emulator.count(of: kase.accepted)
            let process = try startQie(arguments, environment: environment)
            let target = before + 1 + Int(generator.next() % 4)
            let accepted = kase.accepted
            emulator.waitForOutput(until: { $0.components(separatedBy: accepted).count - 1 >= target }, orEndOf: process)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .exit {
                // The run ended before this kill (the last kills leave little to
                // do): it must have ended well, and there is nothing left to kill.
                #expect(process.terminationStatus == 0 || process.terminationStatus == 1, "qie edit ended with \(process.terminationStatus)")
                break
            }
            for job in try jobs() {
                let key = job["key"] as? String ?? ""
                if ["sending", "accepted", "answered"].contains(job["state"] as? String) { caughtInFlight += 1 }
                if let id = job["requestID"] as? String {
                    if let earlier = recordedIDs[key] { #expect(earlier == id, "job \(key) changed its request id") }
                    recordedIDs[key] = id
                }
            }
        }
        #expect(caughtInFlight > 0, "no kill landed while a job was in flight")
        // Jobs a kill caught between sending and recording the id: they may
        // have reached the endpoint, so a plain resume does not send them.
        let caughtSending = try jobs().filter { ["sending", "uncertain"].contains($0["state"] as? String) }.count
        // The ledger names the emulator, not the endpoint's documented
        // address: nothing is sent there until the address is given again.
        let (refused, refusal) = try runQie(["resume", root + "/out"], environment: environment)
        #expect(refused == 1 && refusal.contains("give it again: --base-url \(emulator.address)"), "\(refusal)")
        let (status, output) = try runQie(["resume", root + "/out", "--base-url", emulator.address], environment: environment)
        #expect(status == (caughtSending == 0 ? 0 : 1), "\(output)")
        #expect(output.contains("resuming into") && output.contains("at \(emulator.address)"), "\(output)")
        #expect(emulator.waitForLog(kase.accepted, count: count - caughtSending))
        let beforeRetry = emulator.count(of: kase.accepted)
        #expect(beforeRetry <= count, "\(beforeRetry) submissions for \(count) jobs: one was sent twice")
        if caughtSending > 0 {
            #expect(output.contains("--retry-uncertain"), "\(output)")
            let (retried, text) = try runQie(
                ["resume", root + "/out", "--retry-uncertain", "--base-url", emulator.address], environment: environment)
            #expect(retried == 0, "\(text)")
        }

        let final = try jobs()
        #expect(final.count == count && final.allSatisfy { $0["state"] as? String == "completed" })
        for job in final {
            let key = job["key"] as? String ?? ""
            if let earlier = recordedIDs[key] { #expect(job["requestID"] as? String == earlier, "job \(key) was sent again") }
        }
        for index in 1...count {
            let info = try ImageProbe.probe(file: root + "/out/img-\(index).\(kase.ext)")
            #expect(info.width == 96 + index && info.height == 64)
        }
        // The emulator's own count: one accepted submission per job, plus at
        // most one for each job caught sending and sent again when asked.
        let submissions = emulator.count(of: kase.accepted)
        #expect(
            submissions >= count && submissions <= count + caughtSending,
            "\(submissions) submissions, \(caughtSending) caught sending")
        print("\(kase.provider): \(kase.kills) kills, \(caughtInFlight) caught in flight, \(caughtSending) caught sending, \(submissions - count) extra submissions")
    }

    @Test("report.html opens in headless Chromium and shows each before/after pair")
    func reportScreenshot() throws {
        let chromium = "/usr/bin/chromium"
        try #require(
            FileManager.default.isExecutableFile(atPath: chromium),
            "Chromium is needed to look at the report: scripts/ensure-deps.sh chromium (make test runs it)")
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        let colours: [(String, [UInt8])] = [("red", [230, 30, 30]), ("green", [30, 190, 60]), ("blue", [40, 60, 220])]
        for (name, rgb) in colours {
            let pixels = [UInt8]((0..<(300 * 200)).flatMap { _ in rgb })
            try Image(pixels: pixels, size: PixelSize(width: 300, height: 200), channels: 3)
                .encoded(EncodeOptions(format: .png)).write(to: URL(fileURLWithPath: root + "/in/\(name).png"))
        }
        let emulator = try EmulatorProcess()
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "runpod", "--prompt", "keep the colour", "--out", root + "/out",
                "--restore", "exact", "--base-url", emulator.address, "--concurrency", "1",
            ], environment: ["RUNPOD_API_KEY": "cli-key"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("report: \(root)/out/report.html"))
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/report.json"))) as? [String: Any])
        let entries = try #require(report["entries"] as? [[String: Any]])
        #expect(entries.count == 3 && entries.allSatisfy { $0["before"] is String && $0["after"] is String })
        // Small thumbnails, not the full images.
        for entry in entries {
            let thumb = try ImageProbe.probe(file: root + "/out/" + (entry["after"] as? String ?? ""))
            #expect(max(thumb.width, thumb.height) <= 256)
        }

        let shot = root + "/shot.png"
        let browser = Process()
        browser.executableURL = URL(fileURLWithPath: chromium)
        browser.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
            "--user-data-dir=" + root + "/chromium-profile", "--window-size=1000,700", "--screenshot=" + shot,
            "file://" + root + "/out/report.html",
        ]
        browser.standardOutput = FileHandle.nullDevice
        browser.standardError = FileHandle.nullDevice
        try browser.run()
        browser.waitUntilExit()
        let image = try Image.decode(file: shot)
        #expect(image.width == 1000 && image.height == 700)
        // Count each colour in the "before" column and in the "after" column.
        var seen: [String: (before: Int, after: Int)] = [:]
        for y in stride(from: 0, to: image.height, by: 4) {
            for x in stride(from: 0, to: 460, by: 4) {
                let pixel = try image.pixel(x: x, y: y)
                for (name, rgb) in colours
                where zip(pixel, rgb).allSatisfy({ abs(Int($0) - Int($1)) < 40 }) {
                    if x < 231 { seen[name, default: (0, 0)].before += 1 } else { seen[name, default: (0, 0)].after += 1 }
                }
            }
        }
        // A 200x133 thumbnail sampled every 4 pixels is about 1,600 samples.
        for (name, _) in colours {
            #expect((seen[name]?.before ?? 0) > 1_000 && (seen[name]?.after ?? 0) > 1_000, "\(name): \(String(describing: seen[name]))")
        }
    }
}
