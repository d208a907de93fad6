import Foundation
import QieImaging
import Testing

/// What a user sees of money through the real binary: budgets that hold
/// across runs when results are lost, and `qie status` naming it alike in
/// text and JSON.
@Suite("Money through the command line: lost results stay spent, across runs and in status")
struct MoneyCLITests {
    @Test("Two runs with --max-cost 0.05 into one folder whose every result is lost send two edits, not four; status shows them paid, text and JSON alike")
    func lostResultsAcrossRuns() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        for index in 1...10 { try writeImage(80 + index, 60, to: root + "/in/img-\(index).jpg") }
        // Every answer's result link is dead by the time it is fetched.
        let emulator = try EmulatorProcess(faults: Array(repeating: "expired-result", count: 10))
        let accepted = "POST /v2/qwen-image-edit-2511/runsync -> 200"
        let environment = ["RUNPOD_API_KEY": "cli-key"]
        let arguments = [
            "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--flow", "sync",
            "--base-url", emulator.address, "--max-cost", "0.05", "--concurrency", "1",
        ]
        let (first, firstOutput) = try runQie(arguments, environment: environment)
        #expect(first == 1, "\(firstOutput)")
        #expect(emulator.count(of: accepted) == 2, "\(firstOutput)")
        #expect(firstOutput.contains("results were lost"), "\(firstOutput)")
        // The second run counts the first run's lost money: nothing more fits.
        let (second, secondOutput) = try runQie(arguments, environment: environment)
        #expect(second == 1, "\(secondOutput)")
        #expect(emulator.count(of: accepted) == 2, "a second run sent more: \(secondOutput)")

        let (_, text) = try runQie(["status", root + "/out"], environment: [:])
        // Jobs past the budget were never started: those prepared ahead wait, pending.
        #expect(text.contains("2 pending, 2 lost"), "\(text)")
        #expect(text.contains("spent: $0.04 over 2 submissions, 2 of them paid with their results lost"), "\(text)")
        #expect(text.contains("lost (paid $0.02, results lost; --retry-failed sends it again, paying again)"), "\(text)")
        let (_, json) = try runQie(["status", root + "/out", "--json"], environment: [:])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
        #expect(object["spentUSD"] as? String == "0.04" && object["atRiskUSD"] as? String == "0")
        #expect(object["byState"] as? [String: Int] == ["lost": 2, "pending": 2])
        let jobs = try #require(object["jobs"] as? [[String: Any]])
        let lost = jobs.filter { $0["state"] as? String == "lost" }
        #expect(lost.count == 2 && lost.allSatisfy { $0["charge"] as? String == "billed" && $0["costUSD"] as? String == "0.02" })
        // Every state the text names is a state the JSON names.
        for job in jobs { #expect(text.contains(job["state"] as? String ?? "?")) }
    }

    @Test("A job sent without a usable answer is money at risk in status, text and JSON alike")
    func uncertainIsAtRisk() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(90, 60, to: root + "/in/a.jpg")
        try writeImage(91, 60, to: root + "/in/b.jpg")
        let emulator = try EmulatorProcess(faults: ["status:500"])
        let (status, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "runpod", "--prompt", "night", "--out", root + "/out", "--flow", "sync",
                "--base-url", emulator.address, "--concurrency", "1",
            ], environment: ["RUNPOD_API_KEY": "cli-key"])
        #expect(status == 1, "\(output)")
        let (_, text) = try runQie(["status", root + "/out"], environment: [:])
        #expect(text.contains("1 completed, 1 uncertain"), "\(text)")
        #expect(text.contains("spent: $0.02 over 2 submissions"), "\(text)")
        #expect(text.contains("at risk: $0.02 (1 sent without a usable answer: may have been billed)"), "\(text)")
        #expect(text.contains("uncertain (may have been billed; --retry-uncertain sends it again)"), "\(text)")
        let (_, json) = try runQie(["status", root + "/out", "--json"], environment: [:])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
        #expect(object["spentUSD"] as? String == "0.02" && object["atRiskUSD"] as? String == "0.02")
        let jobs = try #require(object["jobs"] as? [[String: Any]])
        #expect(Set(jobs.compactMap { $0["state"] as? String }) == ["completed", "uncertain"])
        #expect(jobs.contains { $0["state"] as? String == "uncertain" && $0["charge"] as? String == "at-risk" })
    }
}
