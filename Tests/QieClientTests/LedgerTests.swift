import Foundation
import QieClient
import QieEmulator
import QieImaging
import QiePipeline
import QieProviders
import Synchronization
import Testing

@Suite("The run ledger: resume, budgets, prompts per image", .serialized)
struct LedgerTests {
    /// Runs a batch of `root/in` into `root/out` with the folder's ledger.
    private func run(
        _ root: String, base: String, profile: ProviderProfile = .runpodQwenImageEdit2511, prompt: String = "make it night",
        seed: Int? = 1, maxCost: Decimal? = nil, manifest: PromptManifest = PromptManifest(), format: OutputFormat? = nil,
        references: [String] = [], concurrency: Int = 2
    ) async throws -> (BatchSummary, [PrepareResult], Ledger) {
        let (files, _) = InputWalker().walk([root + "/in"])
        var settings = EditSettings(
            target: ProviderTarget(profile: profile), request: EditRequest(prompt: prompt, images: [], seed: seed),
            references: references, outputFormat: format, concurrency: concurrency, baseURL: base, apiKey: "test-key",
            wait: WaitPolicy(firstInterval: 0.05, maxInterval: 0.2, timeout: 30))
        settings.prompts = manifest
        settings.maxCost = maxCost
        let output = try OutputFolder(path: root + "/out")
        let ledger = try Ledger(folder: root + "/out")
        let budget = maxCost.map { Budget(limit: $0, spent: 0) }
        let results = Mutex<[PrepareResult]>([])
        let summary = try await withTestClient { client in
            try await EditBatch(inputs: files, output: output, settings: settings)
                .run(client: client, ledger: ledger, budget: budget) { result in results.withLock { $0.append(result) } }
        }
        return (summary, results.withLock { $0 }, ledger)
    }

    @Test("A second run does nothing again; a changed prompt, seed or output format makes new jobs")
    func rerunsAndChanges() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["a", "b", "c"] { try write(200, 150, to: root + "/in/\(name).jpg") }
        try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            let (first, _, ledger) = try await run(root, base: base)
            #expect(first.written == 3 && emulator.submissions(to: profile) == 3)

            let (again, results, _) = try await run(root, base: base)
            #expect(again.earlier == 3 && again.written == 0 && again.succeeded)
            #expect(emulator.submissions(to: profile) == 3)
            guard case .earlier(let path)? = results.first?.outcome else { Issue.record("not reported as earlier"); return }
            #expect(path.hasPrefix(root + "/out/"))

            _ = try await run(root, base: base, prompt: "make it snow")
            #expect(emulator.submissions(to: profile) == 6)
            _ = try await run(root, base: base, prompt: "make it snow", seed: 2)
            #expect(emulator.submissions(to: profile) == 9)
            _ = try await run(root, base: base, prompt: "make it snow", seed: 2, format: .webp)
            #expect(emulator.submissions(to: profile) == 12)
            let jobs = try ledger.jobs()
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
                let (_, _, ledger) = try await run(root, base: base, profile: profile)
                let job = try #require(try ledger.jobs().first { $0.endpoint == profile.id })
                #expect(!job.resultURLList.isEmpty)
                // As if killed between hearing the answer and writing the result:
                try ledger.update(job.id!) { $0.state = .submitted }
                try FileManager.default.removeItem(atPath: job.outputPaths[0])
                let (again, _, _) = try await run(root, base: base, profile: profile)
                #expect(again.written == 1, "\(profile.id)")
                #expect(emulator.submissions(to: profile) == 1, "\(profile.id)")
                #expect(FileManager.default.fileExists(atPath: job.outputPaths[0]))
                #expect(try ledger.jobs().first { $0.endpoint == profile.id }?.state == .completed)
            }
        }
    }

    @Test("--max-cost: no job is sent that would pass the budget; the rest are held, not failed")
    func budget() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for index in 1...5 { try write(120, 90, to: root + "/in/\(index).jpg") }
        try await withEmulator { emulator, base in
            // $0.02 per image: $0.05 pays for two, never a third.
            let (summary, results, ledger) = try await run(root, base: base, maxCost: Decimal(string: "0.05")!, concurrency: 1)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            #expect(summary.written == 2 && summary.held == 3 && summary.failed == 0 && !summary.succeeded)
            let held = results.compactMap { if case .held(let reason) = $0.outcome { reason } else { nil } }
            #expect(held.count == 1 && held[0].contains("would pass --max-cost $0.05 ($0.04 spent"))
            #expect(try ledger.summary().spentUSD == Decimal(string: "0.04"))
        }
    }

    @Test("The ledger records states, request ids and costs, and never the key")
    func ledgerContents() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(300, 200, to: root + "/in/photo.jpg")
        try await withEmulator { _, base in
            let (_, _, ledger) = try await run(root, base: base, profile: .runflowQwenImageEdit2511)
            let job = try #require(try ledger.jobs().first)
            #expect(job.state == .completed && job.requestID?.hasPrefix("run_") == true && job.attempts == 1)
            #expect(job.inputSHA256 == (try sha256sum(root + "/in/photo.jpg")))
            #expect(job.estimatedCost != nil && job.outputPaths == [root + "/out/photo.png"])
            for file in try FileManager.default.contentsOfDirectory(atPath: root + "/out") where file.hasPrefix(".qie-ledger") {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: root + "/out/" + file))
                #expect(bytes.range(of: Data("test-key".utf8)) == nil, "\(file)")
            }
        }
    }

    @Test("Prompts per image from a CSV manifest, a JSON Lines manifest with references, and NAME.txt")
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
        try Data(#"{"file": "in/two.jpg", "prompt": "put the logo on the wall", "images": ["refs/logo.jpg"]}"#.utf8)
            .write(to: URL(fileURLWithPath: jsonl))
        var manifest = try PromptManifest(file: csv)
        let lines = try PromptManifest(file: jsonl)
        #expect(manifest.request(for: root + "/in/one.jpg") == InputRequest(prompt: "make it winter, with snow", seed: 7))
        #expect(lines.request(for: root + "/in/two.jpg")?.references == [root + "/refs/logo.jpg"])
        #expect(manifest.request(for: root + "/in/three.jpg")?.prompt == "add a red hat")
        manifest.merge(lines)

        try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            let (summary, _, _) = try await run(root, base: base, prompt: "", seed: nil, manifest: manifest)
            // three.txt is not an image: walked, skipped, nothing sent for it.
            #expect(summary.written == 3)
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
}

