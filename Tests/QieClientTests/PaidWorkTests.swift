import Foundation
import QieClient
import QieCore
import QieEmulator
import QiePipeline
import QieProviders
import QieStore
import Synchronization
import Testing

/// What paid work must survive: answers that may have been billed, costs
/// that make no sense, keys on the wire, records others could read.
@Suite("Paid work: uncertain jobs, reported costs, plain http, private records")
struct PaidWorkTests {
    @Test("A 500 after sending leaves the job uncertain: its estimate stays spent, no run sends it again unless asked")
    func uncertainJob() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            let options = runsync(base)
            var configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: options)
            configuration.maxCost = Decimal(string: "0.03")
            emulator.inject([.status(500)])
            let first = try await EditRun(configuration).run(environment: testEnvironment())
            #expect(first.batch.failed == 1 && emulator.submissions(to: .runpodQwenImageEdit2511) == 1)

            let ledger = try Ledger(folder: root + "/out")
            let job = try #require(try ledger.jobs().first)
            #expect(job.state == .uncertain && job.attempts == 1)
            #expect(job.error?.contains("HTTP 500") == true && job.error?.contains("not sent again") == true)
            // Its estimate counts: a budget of $0.03 has $0.01 left.
            #expect(try ledger.money() == RunMoney(billed: 0, atRisk: Decimal(string: "0.02")!, earlier: 0, unpriced: 0))
            let status = try await EditRun.status(folder: root + "/out")
            #expect(status.uncertain.map(\.input) == [root + "/in/a.jpg"])

            // Resumed: not sent, and the message says how to send it.
            let events = EventLog()
            let second = try await EditRun.resume(folder: root + "/out", trust: ResumeTrust(baseURL: base)).run(environment: testEnvironment(), events: events.record)
            #expect(second.batch.failed == 1 && emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            let reason = events.failures.first?.reason(naming: \.name) ?? ""
            #expect(reason.contains("uncertain") && reason.contains("retryUncertain"), "\(reason)")

            // Asked: sent once more, and done.
            var retry = try await EditRun.resume(folder: root + "/out", trust: ResumeTrust(baseURL: base))
            retry.configuration.retryUncertain = true
            retry.configuration.maxCost = Decimal(string: "0.05")
            let third = try await retry.run(environment: testEnvironment())
            #expect(third.batch.written == 1 && emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            #expect(try ledger.jobs().first?.attempts == 2)
        }
    }

    @Test("A /run job past the timeout is cancelled once at the endpoint: queued, nothing is billed and the next run sends it; running, it may have been billed")
    func cancelledAtTimeout() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            let runpod = ProviderProfile.runpodQwenImageEdit2511
            var options = testOptions(runpod, base: base)
            options.flow = .polling
            options.timeouts.overall = 1
            var configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: options)
            configuration.maxCost = Decimal(string: "0.05")
            // No worker takes the job: it is still queued when the run gives up on it.
            emulator.inject([.staysQueued])
            let first = try await EditRun(configuration).run(environment: testEnvironment())
            #expect(first.batch.failed == 1 && emulator.submissions(to: runpod) == 1)
            #expect(emulator.cancels(of: runpod) == 1)
            let ledger = try Ledger(folder: root + "/out")
            let job = try #require(try ledger.jobs().first)
            #expect(job.state == .cancelled && job.requestID != nil)
            #expect(job.error?.contains("before it ran, so nothing was billed") == true, "\(job.error ?? "")")
            #expect(try ledger.money() == RunMoney())
            let status = try await EditRun.status(folder: root + "/out")
            #expect(status.cancelled.map(\.input) == [root + "/in/a.jpg"])

            // Nothing was billed: the next run sends it again, and it is done.
            configuration.options.timeouts.overall = 1800
            let second = try await EditRun(configuration).run(environment: testEnvironment())
            #expect(second.batch.written == 1 && emulator.submissions(to: runpod) == 2 && emulator.cancels(of: runpod) == 1)

            // Given up while it runs: cancelled too late to know, so its money is at risk.
            try write(120, 160, to: root + "/in/b.jpg")
            configuration.options.timeouts.overall = 1
            emulator.inject([.delayed(seconds: 600)])
            let third = try await EditRun(configuration).run(environment: testEnvironment())
            #expect(third.batch.failed == 1 && emulator.submissions(to: runpod) == 3 && emulator.cancels(of: runpod) == 2)
            let late = try #require(try ledger.jobs().first { $0.inputPath.hasSuffix("b.jpg") })
            #expect(late.state == .uncertain, "\(late.state)")
            #expect(late.error?.contains("may have been billed") == true, "\(late.error ?? "")")
            #expect(try ledger.money() == RunMoney(billed: Decimal(string: "0.02")!, atRisk: Decimal(string: "0.02")!, earlier: 0, unpriced: 0))
        }
    }

    @Test("A negative reported cost is ignored with a warning in the sidecar; the estimate stands")
    func negativeCost() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            let options = runsync(base)
            emulator.inject([.reportedCost("-5")])
            let summary = try await EditRun(EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: options))
                .run(environment: testEnvironment())
            #expect(summary.batch.written == 1 && summary.spent == Decimal(string: "0.02"))
            let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/a.json"))) as? [String: Any]
            #expect(sidecar?["reportedCostUSD"] == nil)
            let warnings = sidecar?["warnings"] as? [String] ?? []
            #expect(warnings.first?.contains("reported a cost of -5, which is not an amount >= 0") == true, "\(warnings)")
        }
    }

    @Test("A billed job whose results were lost is fetched again from its recorded link, never sent again; an expired one says so and stays spent")
    func recordedResults() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try write(120, 160, to: root + "/in/b.jpg")
        try await withEmulator { emulator, base in
            let options = runsync(base)
            var configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: options)
            configuration.concurrency = 1
            _ = try await EditRun(configuration).run(environment: testEnvironment())
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            // As if each result's download had failed after it was recorded:
            // a's URL still works, b's points at a file the endpoint no longer has.
            let ledger = try Ledger(folder: root + "/out")
            for job in try ledger.jobs() {
                let expired = job.inputPath.hasSuffix("b.jpg")
                try ledger.update(try #require(job.id)) { row in
                    row.state = .lost
                    row.error = "download failed"
                    if expired { row.resultURLs = "[\"\(base)/files/gone.jpg\"]" }
                }
            }
            try FileManager.default.removeItem(atPath: root + "/out/a.jpg")

            // Resumed as it is: both fetched from their links, neither paid for again.
            let events = EventLog()
            let second = try await EditRun(configuration).run(environment: testEnvironment(), events: events.record)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2, "a recorded result was paid for again")
            #expect(second.batch.written == 1 && second.batch.failed == 1)
            #expect(second.spent == nil, "nothing was billed by this run")
            #expect(FileManager.default.fileExists(atPath: root + "/out/a.jpg"))
            let reason = events.failures.first?.reason(naming: \.name) ?? ""
            #expect(reason.contains("paid for") && reason.contains("results were lost") && reason.contains("retryFailed"), "\(reason)")
            let lost = try #require(try ledger.jobs().first { $0.inputPath.hasSuffix("b.jpg") })
            #expect(lost.state == .lost && lost.resultURLList.isEmpty)
            #expect(try ledger.money() == RunMoney(billed: Decimal(string: "0.04")!, atRisk: 0, earlier: 0, unpriced: 0))

            // Only when asked is b sent again; its first payment stays counted.
            var again = configuration
            again.retryFailed = true
            _ = try await EditRun(again).run(environment: testEnvironment())
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 3)
            #expect(try ledger.jobs().allSatisfy { $0.state == .completed })
            #expect(try ledger.money() == RunMoney(billed: Decimal(string: "0.04")!, atRisk: 0, earlier: Decimal(string: "0.02")!, unpriced: 0))
        }
    }

    @Test("A plain-http base URL to another machine is refused before the key is read out; loopback and https pass")
    func insecureBaseURL() async throws {
        var options = EditOptions(endpoint: "runpod")
        options.prompt = "x"
        options.baseURL = "http://api.example.com"
        let error = await #expect(throws: EditError.self) {
            try await Editor.with(options, environment: testEnvironment()) { editor in
                _ = try await editor.edit(EditInput(image: .data(Data([0xFF, 0xD8]))))
            }
        }
        let message = error?.reason(naming: \.name) ?? ""
        #expect(message.contains("plain http to api.example.com") && message.contains("allowInsecureHTTP"), "\(message)")
        #expect(!message.contains("test-key"))
        options.baseURL = "http://user:secret@127.0.0.1:9"
        let userInfo = await #expect(throws: EditError.self) {
            try await Editor.with(options, environment: testEnvironment()) { editor in
                _ = try await editor.edit(EditInput(image: .data(Data([0xFF, 0xD8]))))
            }
        }
        let userInfoReason = userInfo?.reason(naming: \.name) ?? ""
        #expect(userInfoReason.contains("user name or password") && !userInfoReason.contains("secret"), "\(userInfoReason)")
        #expect(NetworkAddress.isLoopback(host: "127.0.0.1") && NetworkAddress.isLoopback(host: "[::1]"))
        #expect(NetworkAddress.isLoopback(host: "localhost") && !NetworkAddress.isLoopback(host: "127.0.0.1.example.com"))
    }

    @Test("The output folder is 0700; the ledger, sidecars and report are 0600")
    func privateRecords() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { _, base in
            let options = testOptions(.runpodQwenImageEdit2511, base: base)
            _ = try await EditRun(EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: options))
                .run(environment: testEnvironment())
        }
        func mode(_ name: String) throws -> Int {
            let path = name.isEmpty ? root + "/out" : root + "/out/" + name
            return (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
        }
        #expect(try mode("") == 0o700)
        for name in [Ledger.fileName, "a.json", "report.json", "report.html"] {
            let found = try mode(name)
            #expect(found == 0o600, "\(name): \(String(found, radix: 8))")
        }
    }

    @Test("Over RunPod's 10 MB /run limit, the images are encoded smaller to fit and the sidecar names how; what cannot fit is never sent")
    func payloadLimit() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(400, 300, to: root + "/in/a.jpg")
        // Two references of noise, as PNG: about 18 MB once base64-encoded.
        for name in ["r1", "r2"] { try writeNoise(1500, 1500, to: root + "/refs/\(name).png") }
        try await withEmulator { emulator, base in
            let options = testOptions(.runpodQwenImageEdit2511, base: base)  // the default flow: /run
            let run = try await runFolder(root, options: options) { $0.references = [root + "/refs/r1.png", root + "/refs/r2.png"] }
            #expect(run.summary.batch.written == 1, "\(run.failures)")
            let bodies = emulator.bodies(sentTo: .runpodQwenImageEdit2511)
            #expect(bodies.count == 1 && emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            #expect((bodies.first?.count ?? .max) <= 10_000_000)
            let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/a.json"))) as? [String: Any]
            #expect((sidecar?["requestEncoding"] as? String)?.hasPrefix("JPEG quality ") == true, "\(String(describing: sidecar?["requestEncoding"]))")

            // Noise too large for any encoding qie tries: refused before sending, and it says what to do.
            for name in ["r1", "r2"] { try writeNoise(3600, 3600, to: root + "/refs/\(name).png") }
            let refused = try await runFolder(root, options: options, output: "refused") {
                $0.references = [root + "/refs/r1.png", root + "/refs/r2.png"]
            }
            let reason = refused.failures["a.jpg"] ?? ""
            #expect(reason.contains("not sent") && reason.contains("limit of 10000000 bytes for the poll flow") && reason.contains("references"), "\(reason)")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1, "nothing more was sent")
        }
    }

    @Test("A planted ledger naming a foreign base URL, a callback URL or files outside the folders is refused, saying how to go on")
    func plantedLedger() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            _ = try await runFolder(root, options: runsync(base))
            let ledger = try Ledger(folder: root + "/out")
            let trusted = ResumeTrust(baseURL: base, folders: [], environment: [:])
            // What a stranger with write access to the folder could store.
            func plant(_ change: (inout EditRunConfiguration) -> Void) async throws -> EditError? {
                var configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: runsync(base))
                change(&configuration)
                let text = String(decoding: try JSONEncoder().encode(configuration), as: UTF8.self)
                try ledger.recordRun(configuration: text, version: EditRunConfiguration.currentVersion, arguments: [], directory: root)
                do {
                    _ = try await EditRun.resume(folder: root + "/out", trust: trusted)
                    return nil
                } catch {
                    return error
                }
            }
            #expect(try await plant { _ in } == nil, "the emulator's address, given again, is trusted")

            let foreign = try #require(try await plant { $0.options.baseURL = "https://collector.example/v2" })
            guard case .unconfirmedAddress(_, .baseURL, "https://collector.example/v2", let documented, _) = foreign else {
                Issue.record("\(foreign)")
                return
            }
            #expect(documented == ProviderProfile.runpodQwenImageEdit2511.baseURL)
            let message = foreign.message(naming: { $0 == .baseURL ? "--base-url" : $0.name })
            #expect(message.contains("give it again: --base-url https://collector.example/v2 (or set QIE_RUNPOD_BASE_URL)"), "\(message)")
            // Given again now (on the command line or in the variable), it is the user's own choice.
            var named = trusted
            named.environment = ["QIE_RUNPOD_BASE_URL": "https://collector.example/v2"]
            named.baseURL = nil
            await #expect(throws: Never.self) { _ = try await EditRun.resume(folder: root + "/out", trust: named) }

            let callback = try #require(try await plant {
                $0.options.flow = .synchronous
                $0.options.callback = CallbackOptions(url: "https://collector.example/hook", listen: "127.0.0.1:9")
            })
            #expect(callback.description.contains("callbackURL https://collector.example/hook"), "\(callback)")

            for planted: (inout EditRunConfiguration) -> Void in [
                { $0.inputs = ["/etc"] }, { $0.references = ["/etc/passwd"] }, { $0.manifest = root + "/../../etc/prompts.csv" },
                { $0.inputs = [root + "/in/../../elsewhere"] },
            ] {
                let outside = try #require(try await plant(planted))
                guard case .untrustedInput(_, let path, _) = outside else { Issue.record("\(outside)"); continue }
                #expect(!path.hasPrefix(root), "\(path)")
                #expect(outside.description.contains("start the edit again with those inputs"))
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1, "a refused resume sends nothing")
        }
    }

    @Test("Text from an endpoint loses its control characters and is cut to length")
    func sanitized() {
        #expect(Sanitized.text("bad\u{1B}[2J\nnews\u{202E}txt.exe") == "bad [2J news txt.exe")
        #expect(Sanitized.text(String(repeating: "a", count: 600)).count == 501)
        #expect(Sanitized.isClean("sync-123") && !Sanitized.isClean("id\r\nX-Injected: 1"))
    }
}

/// RunPod 2511 on the emulator at `base`, answered by `runsync`.
func runsync(_ base: String) -> EditOptions {
    var options = testOptions(.runpodQwenImageEdit2511, base: base)
    options.flow = .synchronous
    return options
}

/// The failures a run reported, in order.
final class EventLog: Sendable {
    private let events = Mutex<[EditRunEvent]>([])
    var record: @Sendable (EditRunEvent) -> Void { { [self] event in self.events.withLock { $0.append(event) } } }
    var failures: [EditError] {
        events.withLock { $0.compactMap { if case .failed(_, let error) = $0 { error } else { nil } } }
    }
    /// Each failure and input problem as `PATH: reason`.
    var failureLines: [String] {
        events.withLock {
            $0.compactMap { event in
                switch event {
                case .failed(let job, let error): "\(job.input.relativePath): \(error.reason(naming: \.name))"
                case .inputProblem(let problem): "\(problem.path): \(problem.reason)"
                default: nil
                }
            }
        }
    }
}

/// Writes a PNG of random pixels (which compresses badly in any format).
func writeNoise(_ width: Int, _ height: Int, to path: String) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    pixels.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for index in words.indices {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            words[index] = state ^ (state >> 29)
        }
    }
    try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .png)).write(to: URL(fileURLWithPath: path))
}
