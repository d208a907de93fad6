import Foundation
import QieImaging
import QieTestSupport
import Testing

@Suite("Workers on several machines share one run through PostgreSQL", .serialized)
struct WorkersCLITests {
    /// The run's jobs, as `qie status --ledger --json` reports them from the shared store.
    func jobs(_ out: String, ledger: String) throws -> [[String: Any]] {
        let status = try runQie(["status", out, "--json", "--ledger", ledger], environment: [:])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any], "\(status.output)")
        return try #require(object["jobs"] as? [[String: Any]])
    }

    @Test("Three workers on 300 images, two SIGKILLed at random moments: every image done once, no accepted job sent again, the budget kept")
    func threeWorkersTwoKilled() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        let count = 300
        for index in 1...count { try writeImage(40 + index % 97, 30 + index / 97, to: root + "/in/img-\(index).jpg") }
        let ledger = try PostgresServer.newDatabase()
        let emulator = try EmulatorProcess(latency: 0.4)
        let accepted = "POST /v2/qwen-image-edit-2511/run -> 200"
        // RunPod 2511 costs $0.02 an image. A job a killed worker was
        // sending may have been billed, and counts again when it is sent
        // again: the limit is the run's cost and up to twelve such jobs (two
        // killed workers, six on the wire each), so it may be reached and
        // must not be passed.
        let limit = Decimal(count + 12) * Decimal(string: "0.02")!
        let arguments = [
            "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--concurrency", "6",
            "--base-url", emulator.address, "--poll-interval", "0.1", "--restore", "exact", "--ledger", ledger,
            "--lease", "2", "--retry-uncertain", "--max-cost", "\(limit)",
        ]
        let environment = ["RUNPOD_API_KEY": "cli-key"]
        // The survivor's lines go to a file: a pipe left unread would fill and stall it.
        let log = root + "/survivor.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let survivor = Process()
        survivor.executableURL = QieBinary.url
        survivor.arguments = arguments
        survivor.environment = ProcessInfo.processInfo.environment.merging(["RUNPOD_API_KEY": "cli-key"]) { $1 }
        survivor.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        survivor.standardError = survivor.standardOutput
        try survivor.run()
        let doomed = try (0..<2).map { _ in try startQie(arguments, environment: environment) }

        // Killed one after the other, each once the endpoint has accepted a
        // chosen number more submissions (an event, not a moment); what each
        // was sending then (recorded, not yet accepted) is noted.
        var caughtSending = Set<String>()
        var generator = SeededGenerator(seed: SeededGenerator.seed(printedAs: "threeWorkersTwoKilled"))
        for process in doomed {
            let target = emulator.count(of: accepted) + 20 + Int(generator.next() % 80)
            emulator.waitForOutput(until: { $0.components(separatedBy: accepted).count - 1 >= target }, orEndOf: process)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            for job in try jobs(root + "/out", ledger: ledger)
            where job["state"] as? String == "sending" && (job["worker"] as? String)?.contains(":\(process.processIdentifier):") == true {
                caughtSending.insert(job["key"] as? String ?? "")
            }
        }
        survivor.waitUntilExit()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(survivor.terminationStatus == 0, "\(text.suffix(2000))")

        let final = try jobs(root + "/out", ledger: ledger)
        #expect(final.count == count)
        #expect(final.allSatisfy { $0["state"] as? String == "completed" }, "\(final.filter { $0["state"] as? String != "completed" })")
        // Each image written once, at its own size.
        for index in 1...count {
            let info = try ImageProbe.probe(file: root + "/out/img-\(index).jpg")
            #expect(info.width == 40 + index % 97 && info.height == 30 + index / 97)
        }
        let written = try FileManager.default.contentsOfDirectory(atPath: root + "/out").filter { $0.hasSuffix(".jpg") }
        #expect(written.count == count)
        // No accepted job sent again: a job has a second attempt only when a
        // kill caught it between recording the attempt and hearing back.
        var attempts = 0
        for job in final {
            let tries = job["attempts"] as? Int ?? 0
            attempts += tries
            if tries > 1 {
                #expect(tries == 2 && caughtSending.contains(job["key"] as? String ?? ""), "job \(job["key"] ?? "") tried \(tries) times")
            }
        }
        let submissions = emulator.count(of: accepted)
        #expect(submissions >= count && submissions <= count + caughtSending.count, "\(submissions) submissions, \(caughtSending.count) caught sending")
        #expect(submissions <= attempts)
        // The budget: what the store holds as committed never passed the limit.
        let status = try runQie(["status", root + "/out", "--ledger", ledger], environment: [:])
        func amount(_ prefix: String) throws -> Decimal {
            guard let line = status.output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return 0 }
            return try #require(Decimal(string: String(line.dropFirst(prefix.count).prefix { $0 != " " })))
        }
        let committed = try amount("spent: $") + amount("at risk: $") + amount("earlier attempts: $")
        #expect(committed <= limit, "\(status.output)")
        #expect(committed == Decimal(count + caughtSending.count) * Decimal(string: "0.02")!, "\(status.output)")
        #expect(!status.output.contains(URLComponents(string: ledger)?.password ?? "?"), "the store's password was shown")
        print("workers: 2 of 3 killed, \(caughtSending.count) caught sending, \(submissions - count) extra submissions")
    }
}
