import Foundation
import QieEmulator
import QiePipeline
import QieReport
import QieStore
import QieTestSupport
import Synchronization
import Testing

@Suite("Folder runs in process: results, ledger, resume, budgets, prompts per image", .serialized, .hangGuard)
struct EditRunTests {
    @Test("Each input is edited once, restored to its own size, converted, and described in a sidecar")
    func editAndRestore() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(400, 300, to: root + "/in/wide.jpg")
        try write(300, 500, to: root + "/in/sub/tall.jpg")
        try Data("broken".utf8).write(to: URL(fileURLWithPath: root + "/in/broken.jpg"))
        try await withEmulator { emulator, base in
            var options = testOptions(.runpodQwenImageEdit2511, base: base)
            options.seed = 42
            options.restore = .exact
            options.format = .png
            let run = try await runFolder(root, options: options)
            let summary = run.summary.batch
            #expect(summary.written == 2 && summary.failed == 1 && summary.action == "edited")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            let wide = try ImageProbe.probe(file: root + "/out/wide.png")
            #expect(wide.format == .png && wide.width == 400 && wide.height == 300)
            let tall = try ImageProbe.probe(file: root + "/out/sub/tall.png")
            #expect(tall.width == 300 && tall.height == 500)
            let text = try Data(contentsOf: URL(fileURLWithPath: root + "/out/wide.json"))
            let sidecar = try JSONSerialization.jsonObject(with: text) as? [String: Any]
            #expect(sidecar?["endpoint"] as? String == "runpod-qwen-image-edit-2511")
            #expect(sidecar?["prompt"] as? String == "make it night")
            #expect(sidecar?["seed"] as? Int == 42)
            #expect(sidecar?["reportedCostUSD"] as? String == "0.02")
            #expect((sidecar?["requestIDs"] as? [String])?.first?.hasPrefix("sync-") == true)
            #expect(!String(decoding: text, as: UTF8.self).contains("test-key"))
            #expect(sidecar?["inputSHA256"] as? String == (try sha256sum(root + "/in/wide.jpg")))
            // Folder runs poll where the endpoint can (RunPod's /run and /status).
            #expect(sidecar?["flow"] as? String == "poll" && sidecar?["submissions"] as? Int == 1)
            let timings = sidecar?["timings"] as? [String: Double]
            #expect(timings.map { ["prepare", "endpoint", "fetch", "finish", "total"].allSatisfy($0.keys.contains) } == true)
            // The failure is data: the damaged input, at the stage that found it.
            let broken = run.events.compactMap { event -> EditError? in
                if case .failed(let job, let error) = event, job.input.relativePath == "broken.jpg" { return error }
                return nil
            }
            guard case .input(let error)? = broken.first else { Issue.record("broken.jpg did not fail as an input"); return }
            #expect(error.kind == .notAnImage)
            #expect(run.failures["broken.jpg"]?.contains("not an image") == true)
            #expect(run.summary.report == root + "/out/report.html")

            // The report's after-thumbnails: each result as written, shrunk
            // to at most 256 px (made beside it, from the same pixels).
            let thumbs = root + "/out/report-thumbs"
            let after = try FileManager.default.contentsOfDirectory(atPath: thumbs).filter { $0.hasSuffix("-after.jpg") }
            #expect(after.count == 2)
            var shapes: Set<String> = []
            for name in after {
                let thumbnail = try Image.decode(data: try Data(contentsOf: URL(fileURLWithPath: thumbs + "/" + name)))
                let output = try Image.decode(file: root + (thumbnail.width > thumbnail.height ? "/out/wide.png" : "/out/sub/tall.png"))
                shapes.insert("\(thumbnail.width)x\(thumbnail.height)")
                let averaged = boxAverage(
                    try output.pixels(), width: output.width, height: output.height, channels: output.channels,
                    to: (thumbnail.width, thumbnail.height))
                // Encoded as the report's thumbnails are (JPEG quality 80), the two are the same image.
                let expected = try Image.decode(
                    data: try Image(pixels: averaged, size: thumbnail.size, channels: output.channels)
                        .encoded(RunReport.thumbnailPreview.encode))
                let samples = try thumbnail.pixels()
                try #require(samples.count == averaged.count)
                let largest = zip(samples, try expected.pixels()).map { abs(Int($0) - Int($1)) }.max() ?? .max
                #expect(largest <= 2, "\(name): largest difference \(largest)")
            }
            #expect(shapes == ["256x192", "154x256"])
        }
    }

    @Test("The report's before-thumbnails fit inside 256 px and, as the results' previews, never enlarge a small input")
    func beforeThumbnails() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (name, width, height) in [("small", 100, 80), ("wide", 400, 300), ("tall", 300, 500)] {
            try write(width, height, to: root + "/\(name).jpg")
        }
        let expected = ["small": PixelSize(width: 100, height: 80), "wide": PixelSize(width: 256, height: 192),
                        "tall": PixelSize(width: 154, height: 256)]
        for (name, size) in expected {
            let path = root + "/\(name).jpg"
            #expect(try Image.decode(data: try RunReport.thumbnail(file: path)).size == size, "\(name) from its file")
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(try Image.decode(data: try RunReport.thumbnail(data: bytes)).size == size, "\(name) from memory")
        }
    }

    @Test("Events: started, each job started, sent with its id, done, cost with the running total")
    func events() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["a", "b"] { try write(200, 150, to: root + "/in/\(name).jpg") }
        try await withEmulator { _, base in
            let run = try await runFolder(root, options: testOptions(.runflowQwenImageEdit2511, base: base)) { $0.concurrency = 1 }
            guard case .started(let total, let endpoint)? = run.events.first else { Issue.record("no started event"); return }
            #expect(total == 2 && endpoint == "runflow-qwen-image-edit-2511")
            var order: [String] = []
            var spent: [Decimal] = []
            for event in run.events {
                switch event {
                case .jobStarted(let job): order.append("start \(job.input.relativePath)")
                case .sent(let job, let id):
                    #expect(id.hasPrefix("run_"))
                    order.append("sent \(job.input.relativePath)")
                case .done(let job, let output):
                    #expect(output.paths.count == 1 && output.sidecar.hasSuffix(".json"))
                    order.append("done \(job.input.relativePath)")
                case .cost(_, let amount, let total):
                    #expect(amount > 0)
                    spent.append(total)
                default: break
                }
            }
            // Both start (b is prepared while a is on the wire); with one place
            // on the wire, one job is sent, and the other once the first's
            // results are in (the first may still be writing them: done
            // comes after its own sent, in either order with the second's).
            #expect(Set(order.prefix(2)) == ["start a.jpg", "start b.jpg"])
            let wire = order.dropFirst(2)
            let sent = wire.filter { $0.hasPrefix("sent ") }.map { String($0.dropFirst(5)) }
            #expect(wire.count == 4 && Set(sent) == ["a.jpg", "b.jpg"] && wire.first == "sent \(sent[0])")
            for name in sent {
                #expect((wire.firstIndex(of: "sent \(name)") ?? .max) < (wire.firstIndex(of: "done \(name)") ?? -1), "\(wire)")
            }
            #expect(spent.count == 2 && spent[1] == spent[0] * 2 && run.summary.spent == spent[1])
        }
    }

    @Test("num_images where the endpoint has no such field repeats the request; a wrong key fails each file clearly")
    func repeatsAndRejections() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(256, 256, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            var options = testOptions(.runpodQwenImageEdit, base: base)
            options.numImages = 2
            options.format = .avif
            let run = try await runFolder(root, options: options)
            // Each repeated request is a job of its own.
            #expect(run.summary.batch.written == 2 && run.summary.batch.total == 2)
            #expect(emulator.submissions(to: .runpodQwenImageEdit) == 2)
            #expect(try ImageProbe.probe(file: root + "/out/a-1.avif").format == .avif)
            #expect(try ImageProbe.probe(file: root + "/out/a-2.avif").format == .avif)

            let rejected = try await runFolder(
                root, options: testOptions(.lumenfallQwenImageEdit2511, base: base), environment: testEnvironment(key: "sk-WRONG"))
            #expect(rejected.summary.batch.failed == 1)
            #expect(
                rejected.failures["a.jpg"]
                    == "lumenfall-qwen-image-edit-2511 answered HTTP 401: Unauthorized: missing or invalid bearer token")
        }
    }

    @Test("A second run does nothing again; a changed prompt, seed or output format makes new jobs")
    func rerunsAndChanges() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["a", "b", "c"] { try write(200, 150, to: root + "/in/\(name).jpg") }
        try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            var options = testOptions(profile, base: base)
            options.seed = 1
            let first = try await runFolder(root, options: options)
            #expect(first.summary.batch.written == 3 && emulator.submissions(to: profile) == 3)

            let again = try await runFolder(root, options: options)
            #expect(again.summary.batch.earlier == 3 && again.summary.batch.written == 0 && again.summary.succeeded)
            #expect(emulator.submissions(to: profile) == 3)
            guard case .earlier(_, let path)? = again.events.first(where: { if case .earlier = $0 { true } else { false } }) else {
                Issue.record("not reported as earlier")
                return
            }
            #expect(path.hasPrefix(root + "/out/"))

            options.prompt = "make it snow"
            _ = try await runFolder(root, options: options)
            #expect(emulator.submissions(to: profile) == 6)
            options.seed = 2
            _ = try await runFolder(root, options: options)
            #expect(emulator.submissions(to: profile) == 9)
            options.format = .webp
            _ = try await runFolder(root, options: options)
            #expect(emulator.submissions(to: profile) == 12)
            let jobs = try Ledger(folder: root + "/out").jobs()
            #expect(jobs.count == 12 && jobs.allSatisfy { $0.state == .completed && $0.attempts == 1 })
            #expect(Set(jobs.map(\.key)).count == 12)
        }
    }

    @Test("A job killed after its answer came back is fetched from the recorded URL on resume, not sent again")
    func resumeFromRecordedURLs() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(200, 150, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            for profile in [ProviderProfile.runpodQwenImageEdit2511, .lumenfallQwenImageEdit2511] {
                _ = try await runFolder(root, options: testOptions(profile, base: base))
                let ledger = try Ledger(folder: root + "/out")
                let job = try #require(try ledger.jobs().first { $0.endpoint == profile.id })
                #expect(!job.resultURLList.isEmpty)
                // As if killed between hearing the answer and writing the result:
                try ledger.update(job.id!) { $0.state = .answered }
                try FileManager.default.removeItem(atPath: job.outputPaths[0])
                let again = try await runFolder(root, options: testOptions(profile, base: base))
                #expect(again.summary.batch.written == 1, "\(profile.id)")
                #expect(emulator.submissions(to: profile) == 1, "\(profile.id)")
                #expect(FileManager.default.fileExists(atPath: job.outputPaths[0]))
                #expect(try ledger.jobs().first { $0.endpoint == profile.id }?.state == .completed)
            }
        }
    }

    @Test("A budget: no job is sent that would pass it; the rest are held, not failed")
    func budget() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for index in 1...5 { try write(120, 90, to: root + "/in/\(index).jpg") }
        try await withEmulator { emulator, base in
            // $0.02 per image: $0.05 pays for two, never a third.
            let run = try await runFolder(root, options: testOptions(.runpodQwenImageEdit2511, base: base)) {
                $0.maxCost = Decimal(string: "0.05")
                $0.concurrency = 1
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            let batch = run.summary.batch
            #expect(batch.written == 2 && batch.held == 3 && batch.failed == 0 && !run.summary.succeeded)
            // Jobs prepared ahead are refused (held, with the amounts); the
            // rest are never started once the budget is reached.
            let held = run.events.compactMap { if case .held(_, let error) = $0 { error } else { nil } }
            #expect((1...2).contains(held.count))
            for error in held {
                guard case .overBudget(let refusal) = error else { Issue.record("\(error)"); continue }
                // The two sent: done, or accepted and still being written (in flight).
                #expect(refusal.limit == Decimal(string: "0.05")! && refusal.estimate == Decimal(string: "0.02")!)
                #expect(refusal.spent + refusal.inFlight == Decimal(string: "0.04")!, "\(refusal)")
            }
            guard let first = held.first else { return }
            #expect(first.description.contains("would pass maxCost $0.05 ($0.0"), "\(first)")
            #expect(run.summary.budget?.limit == Decimal(string: "0.05"))
            #expect(try Ledger(folder: root + "/out").summary().money.billed == Decimal(string: "0.04"))
        }
    }

    @Test("Images are prepared ahead but never more than `concurrency` are on the wire; a stop withdraws them unsent")
    func prepareAhead() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for index in 1...6 { try write(160, 120, to: root + "/in/\(index).jpg") }
        try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            var options = testOptions(profile, base: base)
            options.flow = .synchronous  // the submissions last until answered: their overlap is measured
            var configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: options)
            configuration.concurrency = 2
            // Stopped when the first answer names its job: both edits on the
            // wire finish; the two prepared behind them are withdrawn unsent
            // when a place frees. The answers are held until both edits are
            // on the wire, however the machine spaces their sending out.
            let stop = BatchCancellation()
            let events = Mutex<[EditRunEvent]>([])
            emulator.hold()
            async let stopped = EditRun(configuration).run(environment: testEnvironment(), stop: stop) { event in
                events.withLock { $0.append(event) }
                if case .sent = event { stop.cancel() }
            }
            await emulator.waitForSubmissions(2, to: profile)
            emulator.release()
            let first = try await stopped
            let seen = events.withLock { $0 }
            let started = seen.compactMap { if case .jobStarted(let job) = $0 { job.input.relativePath } else { nil } }
            let withdrawn = seen.compactMap { if case .withdrawn(let job) = $0 { job.input.relativePath } else { nil } }
            let sent = seen.compactMap { if case .sent(let job, _) = $0 { job.input.relativePath } else { nil } }
            #expect(started.count == 4, "two on the wire and two prepared ahead: \(started)")
            #expect(withdrawn.count == 2 && Set(withdrawn).isDisjoint(with: sent))
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            #expect(emulator.mostConcurrentSubmissions(to: .runpodQwenImageEdit2511) == 2)
            let batch = first.batch
            #expect(first.stopped && batch.written == 2 && batch.notStarted == 4 && batch.failed == 0)

            // The withdrawn and never-started jobs are done by the resumed
            // run, each sent once; the third and fourth wait for a place,
            // prepared, while the first two are on the wire (held there
            // until both have arrived).
            let resumed = try await EditRun.resume(folder: root + "/out", trust: ResumeTrust(baseURL: base))
            emulator.hold()
            async let resumedRun = resumed.run(environment: testEnvironment())
            await emulator.waitForSubmissions(4, to: profile)
            emulator.release()
            let summary = try await resumedRun
            #expect(summary.succeeded && summary.batch.written == 4 && summary.batch.earlier == 2)
            #expect(emulator.submissions(to: profile) == 6)
            #expect(emulator.mostConcurrentSubmissions(to: profile) == 2)
            // Every sidecar records how long its job waited for a place.
            let queued = try FileManager.default.contentsOfDirectory(atPath: root + "/out")
                .filter { $0.hasSuffix(".json") && $0 != "report.json" }
                .compactMap { name -> Double? in
                    let data = try Data(contentsOf: URL(fileURLWithPath: root + "/out/" + name))
                    let record = try JSONDecoder().decode(EditRecord.self, from: data)
                    return record.timings.queued
                }
            #expect(queued.count == 6 && queued.allSatisfy { $0 >= 0 }, "queued seconds: \(queued)")
        }
    }

    @Test("The ledger records states, request ids, costs and the run's configuration, and never the key")
    func ledgerContents() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(300, 200, to: root + "/in/photo.jpg")
        try await withEmulator { _, base in
            _ = try await runFolder(root, options: testOptions(.runflowQwenImageEdit2511, base: base))
            let ledger = try Ledger(folder: root + "/out")
            let job = try #require(try ledger.jobs().first)
            #expect(job.state == .completed && job.requestID?.hasPrefix("run_") == true && job.attempts == 1)
            #expect(job.inputSHA256 == (try sha256sum(root + "/in/photo.jpg")))
            #expect(job.estimatedCost != nil && job.outputPaths == [root + "/out/photo.png"])
            let run = try #require(try ledger.lastRun())
            #expect(run.configurationVersion == EditRunConfiguration.currentVersion)
            #expect(run.configuration?.contains("\"endpoint\":\"runflow-qwen-image-edit-2511\"") == true)
            for file in try FileManager.default.contentsOfDirectory(atPath: root + "/out") where file.hasPrefix(".qie-ledger") {
                // The write-ahead log goes once the ledger is closed, into the ledger file read here too.
                guard let bytes = try? Data(contentsOf: URL(fileURLWithPath: root + "/out/" + file)) else { continue }
                #expect(bytes.range(of: Data("test-key".utf8)) == nil, "\(file)")
            }
        }
    }

    @Test("resume(folder:) reads the stored configuration back and runs it: nothing is sent again")
    func resumeFromConfiguration() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(200, 150, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            var options = testOptions(.runpodQwenImageEdit2511, base: base)
            options.size = .size(PixelSize(width: 1024, height: 1024))
            options.restore = .exact
            options.fields.safetyChecker = nil
            let first = try await runFolder(root, options: options) { $0.maxCost = 3 }
            #expect(first.summary.batch.written == 1)
            let resumed = try await EditRun.resume(folder: root + "/out", trust: ResumeTrust(baseURL: base))
            #expect(resumed.configuration.options == options)
            #expect(resumed.configuration.maxCost == 3 && resumed.configuration.inputs == [root + "/in"])
            let summary = try await resumed.run(environment: testEnvironment())
            #expect(summary.batch.earlier == 1 && emulator.submissions(to: .runpodQwenImageEdit2511) == 1)

            // Where the folder stands, from the library: one job done, nothing in flight or failed.
            let status = try await EditRun.status(folder: root + "/out")
            #expect(status.summary.jobs == 1 && status.summary.byState["completed"] == 1)
            #expect(status.inFlight.isEmpty && status.failed.isEmpty && status.lastRun != nil)

            // A folder without a ledger, and a ledger from a newer qie, are refused with what to do.
            await #expect(throws: EditError.self) { try await EditRun.resume(folder: root + "/in") }
            do {
                _ = try await EditRun.status(folder: root + "/in")
                Issue.record("a folder without a ledger has a status")
            } catch {
                guard case EditError.noLedger = error else { Issue.record("\(error)"); return }
            }
            let ledger = try Ledger(folder: root + "/out")
            try ledger.recordRun(configuration: "{}", version: EditRunConfiguration.currentVersion + 1, arguments: [], directory: root)
            do {
                _ = try await EditRun.resume(folder: root + "/out")
                Issue.record("a newer configuration was accepted")
            } catch let error as EditError {
                guard case .newerRun(_, let version) = error else { Issue.record("\(error)"); return }
                #expect(version == EditRunConfiguration.currentVersion + 1)
                #expect(error.description.contains("use a newer qie"))
            }
        }
    }

    @Test("A ledger written before configurations were stored: resume says so; the same settings find every job done")
    func legacyLedger() async throws {
        // The fixture was written by qie before this change, from /tmp/qie-legacy
        // (job keys hold the inputs' absolute paths), with three runs:
        //   qie edit in --provider runpod --size 1024x1024 --seed 7 --format webp --restore exact --prompt "Make it dusk" --out out
        //   qie edit in --provider runpod-edit --num-images 2 --negative-prompt blur --prompt "Make it snow" --background black --out out
        //   qie edit in --provider runflow --guidance-scale 4 --aspect-ratio 16:9 --prompt "Add a moon" --out out
        let root = "/tmp/qie-legacy"
        let fixture = try #require(Bundle.module.path(forResource: "Fixtures/legacy-ledger", ofType: nil))
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture + "/in", toPath: root + "/in")
        try FileManager.default.copyItem(atPath: fixture + "/ledger.sqlite", toPath: root + "/out/" + Ledger.fileName)
        defer { try? FileManager.default.removeItem(atPath: root) }

        do {
            _ = try await EditRun.resume(folder: root + "/out")
            Issue.record("a legacy ledger resumed without its configuration")
        } catch {
            guard case .legacyRun(_, let arguments, let directory) = error else { Issue.record("\(error)"); return }
            #expect(arguments.first == "edit" && arguments.contains("runflow") && directory == root)
            #expect(error.description.contains("run that command again"))
        }
        // A front end that knows the command line reads it back; the run is then validated and held to the trust given.
        let read = try await EditRun.resume(folder: root + "/out", trust: ResumeTrust(folders: [root])) { arguments, directory in
            guard let provider = arguments.firstIndex(of: "--provider"), let prompt = arguments.firstIndex(of: "--prompt") else { return nil }
            var options = EditOptions(endpoint: arguments[provider + 1])
            options.prompt = arguments[prompt + 1]
            return EditRunConfiguration(inputs: ["in"], output: "out", options: options, workingDirectory: directory)
        }
        #expect(read.configuration.options.endpoint == "runflow" && read.configuration.options.prompt == "Add a moon")
        #expect(read.configuration.commandLine?.first == "edit" && read.configuration.workingDirectory == root)
        do {
            _ = try await EditRun.resume(folder: root + "/out") { _, _ in nil }
            Issue.record("a command line its reader did not know was resumed")
        } catch {
            guard case .legacyRun = error else { Issue.record("\(error)"); return }
        }
        do {
            _ = try await EditRun.resume(folder: root + "/out") { _, _ in throw CocoaError(.fileReadCorruptFile) }
            Issue.record("a command line that cannot be read was resumed")
        } catch {
            #expect(error.description.contains("cannot be read"), "\(error)")
        }
        try await withEmulator { emulator, base in
            func run(_ endpoint: String, _ configure: (inout EditOptions) -> Void) async throws -> EditRunSummary {
                var options = EditOptions(endpoint: endpoint)
                options.baseURL = base
                configure(&options)
                let configuration = EditRunConfiguration(inputs: ["in"], output: "out", options: options, workingDirectory: root)
                return try await EditRun(configuration).run(environment: testEnvironment())
            }
            let first = try await run("runpod") {
                $0.size = .size(PixelSize(width: 1024, height: 1024))
                $0.seed = 7
                $0.format = .webp
                $0.restore = .exact
                $0.prompt = "Make it dusk"
            }
            let second = try await run("runpod-edit") {
                $0.numImages = 2
                $0.negativePrompt = "blur"
                $0.prompt = "Make it snow"
                $0.background = .colour(.black)
            }
            let third = try await run("runflow") {
                $0.fields.guidanceScale = 4
                $0.size = .aspectRatio(AspectRatio(16, 9))
                $0.prompt = "Add a moon"
            }
            #expect(first.batch.earlier == 2 && second.batch.earlier == 4 && third.batch.earlier == 2)
            for profile in ProviderCatalog.all { #expect(emulator.submissions(to: profile) == 0, "\(profile.id)") }
        }
    }

    @Test("Job keys spell sizes as earlier versions did, so their ledgers keep matching")
    func sizeIdentity() {
        let sizes: [SizeRequest] = [
            .automatic, .size(PixelSize(width: 1024, height: 1280)), .aspectRatio(AspectRatio(16, 9)),
            .tier("1K", aspectRatio: AspectRatio(4, 3)), .tier("2K", aspectRatio: nil),
        ]
        for size in sizes { #expect(size.jobKeySpelling == "\(size)") }
    }

    @Test("Prompts per image from a JSON Lines manifest with references, a CSV manifest, and NAME.txt")
    func prompts() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/one.jpg")
        try write(160, 120, to: root + "/in/two.jpg")
        try write(160, 120, to: root + "/in/three.jpg")
        try write(100, 100, to: root + "/refs/logo.jpg", colour: (10, 250))
        try Data("add a red hat\n".utf8).write(to: URL(fileURLWithPath: root + "/in/three.txt"))
        let csv = root + "/prompts.csv"
        try Data("file,prompt,seed\nin/one.jpg,\"make it winter, with snow\",7\n".utf8).write(to: URL(fileURLWithPath: csv))
        let jsonl = root + "/prompts.jsonl"
        try Data(
            (#"{"file": "in/one.jpg", "prompt": "make it winter, with snow", "seed": 7}"# + "\n"
                + #"{"file": "in/two.jpg", "prompt": "put the logo on the wall", "images": ["refs/logo.jpg"]}"#).utf8
        ).write(to: URL(fileURLWithPath: jsonl))
        let manifest = try PromptManifest(file: csv)
        let lines = try PromptManifest(file: jsonl)
        #expect(manifest.request(for: root + "/in/one.jpg") == InputRequest(prompt: "make it winter, with snow", seed: 7))
        #expect(lines.request(for: root + "/in/two.jpg")?.references == [root + "/refs/logo.jpg"])
        #expect(manifest.request(for: root + "/in/three.jpg")?.prompt == "add a red hat")

        try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            let run = try await runFolder(root, options: testOptions(profile, base: base, prompt: nil)) { $0.manifest = jsonl }
            // three.txt is not an image: it is three.jpg's prompt, nothing is sent for it.
            #expect(run.summary.batch.written == 3 && run.summary.batch.total == 3)
            var sent: [String: (Int?, Int)] = [:]
            for body in emulator.bodies(sentTo: profile) {
                let input = try #require((try JSONSerialization.jsonObject(with: body) as? [String: Any])?["input"] as? [String: Any])
                sent[input["prompt"] as? String ?? ""] = (input["seed"] as? Int, (input["images"] as? [String])?.count ?? 0)
            }
            #expect(sent["make it winter, with snow"]?.0 == 7 && sent["make it winter, with snow"]?.1 == 1)
            #expect(sent["put the logo on the wall"]?.1 == 2)
            #expect(sent["add a red hat"]?.1 == 1)
        }
    }

    @Test("Without any prompt the run stops before any work, and a file without one fails with what to give")
    func missingPrompts() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/one.jpg")
        try write(160, 120, to: root + "/in/two.jpg")
        try Data("add a hat".utf8).write(to: URL(fileURLWithPath: root + "/in/two.txt"))
        try await withEmulator { emulator, base in
            let options = testOptions(.runpodQwenImageEdit2511, base: base, prompt: nil)
            let run = try await runFolder(root, options: options)
            #expect(run.summary.batch.written == 1 && run.summary.batch.failed == 1)
            #expect(run.failures["one.jpg"] == "no prompt: give prompt, a manifest row or a text file one.txt next to it")
            try FileManager.default.removeItem(atPath: root + "/in/two.txt")
            await #expect(throws: EditError.self) { _ = try await runFolder(root, options: options) }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
        }
    }

    @Test("Inputs named like another's numbered results or like qie's own files get outputs of their own")
    func outputNames() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["a.jpg", "a-2.jpg", "report.jpg", "report-thumbs/x.jpg"] { try write(120, 90, to: root + "/in/" + name) }
        try await withEmulator { emulator, base in
            var options = testOptions(.lumenfallQwenImageEdit2511, base: base)
            options.numImages = 2
            let run = try await runFolder(root, options: options)
            #expect(run.summary.batch.written == 4 && emulator.submissions(to: .lumenfallQwenImageEdit2511) == 4)
            let written = run.done.flatMap { $0.paths + [$0.sidecar] }.map { String($0.dropFirst(root.count + 5)) }
            // Lumenfall returns PNG.
            #expect(Set(written) == [
                "a-1.png", "a-2.png", "a.json", "a-2.jpg-1.png", "a-2.jpg-2.png", "a-2.jpg.json",
                "report.jpg-1.png", "report.jpg-2.png", "report.jpg.json",
                "report-thumbs-input/x-1.png", "report-thumbs-input/x-2.png", "report-thumbs-input/x.json",
            ])
            for path in written { #expect(FileManager.default.fileExists(atPath: root + "/out/" + path), "\(path)") }
            // The report is qie's, and lists all four inputs.
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/report.json"))) as? [String: Any]
            #expect((report?["entries"] as? [Any])?.count == 4, "\(String(describing: report?.keys))")
        }
    }

    @Test("Manifest errors name the file and the line")
    func manifestErrors() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cases: [(String, String, String)] = [
            ("a.csv", "name,text\nx.jpg,hello\n", "a.csv:1 needs a header row with file and prompt columns"),
            ("b.csv", "file,prompt,seed\nx.jpg,hello,seven\n", "b.csv:2 has a seed that is not an integer: seven"),
            ("c.jsonl", "{\"file\": \"x.jpg\", \"prompt\": \"a\"}\nnot json\n", "c.jsonl:2 is not a JSON object"),
            ("d.csv", "file,prompt\nx.jpg,\n", "d.csv:2 has no prompt for x.jpg"),
            ("e.csv", "file,prompt\nx.jpg,a\nx.jpg,b\n", "e.csv:3 names x.jpg a second time"),
        ]
        for (name, text, expected) in cases {
            try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/" + name))
            do {
                _ = try PromptManifest(file: root + "/" + name)
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
            }
        }
    }

    @Test("estimate(): each file's plan and cost and the total, from headers, with no key and nothing sent")
    func estimate() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(400, 300, to: root + "/in/a.jpg")
        try write(300, 400, to: root + "/in/b.jpg")
        try Data("notes".utf8).write(to: URL(fileURLWithPath: root + "/in/notes.md"))
        var options = EditOptions(endpoint: "runpod-edit")
        options.prompt = "make it night"
        options.numImages = 3
        let configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: options)
        let estimate = try EditRun(configuration).estimate()
        #expect(estimate.planned == 2 && estimate.requests == 6 && estimate.failed == 0)
        #expect(estimate.items.filter(\.skipped).map(\.input.relativePath) == ["notes.md"])
        let a = try #require(estimate.items.first { $0.input.relativePath == "a.jpg" })
        let plan = try a.plan.get()
        // $0.02 per output megapixel, three requests.
        let megapixels = Decimal(plan.expectedOutput.width * plan.expectedOutput.height) / 1_000_000
        #expect(a.cost == megapixels * Decimal(string: "0.02")! * 3)
        #expect(estimate.total == estimate.items.compactMap(\.cost).reduce(0, +))
        #expect(!FileManager.default.fileExists(atPath: root + "/out"))
    }

    @Test("validate() refuses with typed data that names settings, never a front end's flags")
    func validation() throws {
        var options = EditOptions(endpoint: "oxen")
        options.prompt = "x"
        var configuration = EditRunConfiguration(inputs: ["in"], output: "out", options: options)
        configuration.maxCost = 5
        #expect(throws: SettingError(.maxCost, .needs([.pricePerImage, .pricePerMegapixel], why: "oxen-qwen-image-edit-2511 publishes no price"))) {
            try configuration.validate()
        }
        configuration.maxCost = nil
        configuration.options.flow = .callback
        #expect(throws: SettingError(.flow, value: "callback", .notOffered(by: "oxen-qwen-image-edit-2511", offered: ["sync", "poll", "sse"]))) {
            try configuration.validate()
        }
        configuration.options = EditOptions(endpoint: "runpod")
        configuration.options.negativePrompt = "blur"
        do {
            try configuration.validate()
            Issue.record("a field the endpoint lacks was accepted")
        } catch {
            #expect(error.setting == .negativePrompt)
            #expect(error.description == "runpod-qwen-image-edit-2511 does not take negativePrompt; it takes seed, format and the size")
            #expect(!error.description.contains("--"))
        }
        configuration.options = EditOptions(endpoint: "runpod-edit")
        configuration.references = ["ref.png"]
        #expect(throws: SettingError.self) { try configuration.validate() }
        configuration.references = []
        configuration.options.size = .size(PixelSize(width: 10, height: 10))
        configuration.options = EditOptions(endpoint: "runpod")
        configuration.options.size = .size(PixelSize(width: 1000, height: 1000))
        do {
            try configuration.validate()
            Issue.record("an unsupported size was accepted")
        } catch {
            #expect(error.setting == .size)
            #expect(error.description.hasPrefix("runpod-qwen-image-edit-2511 does not take size 1000x1000; it accepts sizes 1024*1024"))
        }
    }
}

@Suite("Every endpoint and flow through a folder run, in process", .hangGuard)
struct EditRunFlowTests {
    @Test(
        "The requested format, the input's exact size, a sidecar with flow, job ids and hash",
        arguments: [
            ("runpod-qwen-image-edit-2511", OutputFormat.webp, nil, 1),
            ("runpod-qwen-image-edit", .avif, nil, 1),
            ("runflow", .jpeg, ProviderProfile.Flow.polling, 1),
            ("runflow", .png, .callback, 1),
            ("oxen", .jpeg, nil, 1),
            ("oxen", .gif, .polling, 1),
            ("oxen", .gif, .serverSentEvents, 1),
            ("lumenfall", .avif, nil, 2),
        ] as [(String, OutputFormat, ProviderProfile.Flow?, Int)])
    func everyEndpoint(endpoint: String, format: OutputFormat, flow: ProviderProfile.Flow?, images: Int) async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(640, 360, to: root + "/in/wide.jpg")
        try write(300, 450, to: root + "/in/tall.jpg")
        let secret = "whsec-run-test"
        try await withEmulator(signingSecret: secret) { emulator, base in
            var options = EditOptions(endpoint: endpoint)
            options.prompt = "make it dusk"
            options.baseURL = base
            options.restore = .exact
            options.format = format
            options.flow = flow
            options.numImages = images
            options.timeouts.pollInterval = 0.1
            if flow == .callback { options.callback = CallbackOptions(url: "http://127.0.0.1:\(try freePort())/runflow") }
            if endpoint == "lumenfall" { options.fields.responseFormat = "b64_json" }
            var environment = testEnvironment(key: "run-key")
            environment["RUNFLOW_SIGNING_SECRET"] = secret
            let profile = try ProviderCatalog.profile(named: endpoint)
            let emulatorKey = "test-key"
            environment[profile.auth.keyVariable] = emulatorKey
            let run = try await runFolder(root, options: options, environment: environment)
            #expect(run.summary.succeeded, "\(run.failures)")
            let copies = profile.field(for: .numImages) == nil && images > 1 ? (1...images).map { "-\($0)" } : [""]
            let results = profile.field(for: .numImages) != nil && images > 1 ? (1...images).map { "-\($0)" } : [""]
            for (name, width, height) in [("wide", 640, 360), ("tall", 300, 450)] {
                for copy in copies {
                    for result in results {
                        let info = try ImageProbe.probe(file: root + "/out/\(name)\(copy)\(result).\(format.fileExtension)")
                        #expect(info.format.rawValue == format.rawValue && info.displaySize == PixelSize(width: width, height: height))
                    }
                    let data = try Data(contentsOf: URL(fileURLWithPath: root + "/out/\(name)\(copy).json"))
                    let sidecar = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
                    #expect(sidecar["endpoint"] as? String == profile.id)
                    #expect(sidecar["flow"] as? String == (flow ?? profile.defaultRunFlow).rawValue)
                    #expect(sidecar["restored"] as? String == "exact" && (sidecar["inputSHA256"] as? String)?.count == 64)
                    #expect(sidecar["submissions"] as? Int == 1)
                    #expect((sidecar["requestIDs"] as? [String])?.isEmpty == false || endpoint == "lumenfall")
                    #expect(!String(decoding: data, as: UTF8.self).contains(emulatorKey))
                }
            }
            #expect(emulator.submissions(to: profile) == 2 * copies.count)
            if flow == .callback {
                // A callback is recorded once the listener has answered it,
                // which may be after the run has already used its payload.
                await emulator.waitForCallbacks(emulator.submissions(to: profile), from: profile)
                #expect(emulator.callbacks().allSatisfy { $0.status == 200 } && !emulator.callbacks().isEmpty)
            }
        }
    }
}
