import Foundation
import QieImaging
import Testing

/// Routing through the real binary: `--provider a,b --route`, as `qie cost`,
/// `qie plan`, `--dry-run` and `qie edit` show and do it; and the checks the
/// command line leaves to the library, worded with its flags.
@Suite("qie routes across endpoints and leaves its checks to the library", .serialized)
struct RoutingCLITests {
    static let runpod = "runpod-qwen-image-edit-2511"
    static let runflow = "runflow-qwen-image-edit-2511"

    @Test("qie cost, plan and --dry-run show each image's pick and what routing saves against each endpoint alone")
    func costPlanDryRun() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(1600, 1200, to: root + "/in/photo.jpg")
        try writeImage(300, 200, to: root + "/in/small.jpg")

        let cost = try QieBinary.run(["cost", root + "/in", "--provider", "runpod,runflow", "--json"])
        #expect(cost.status == 0, "\(cost.stderr)")
        let lines = try cost.stdout.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(lines.count == 3)
        var minimum = Decimal(0)
        for file in lines.dropLast() {
            let offers = try #require(file["offers"] as? [[String: Any]])
            let prices = offers.compactMap { ($0["costUSD"] as? String).flatMap { Decimal(string: $0) } }
            let cheapest = try #require(prices.min())
            #expect((file["costUSD"] as? String).flatMap { Decimal(string: $0) } == cheapest)
            minimum += cheapest
        }
        let total = try #require(lines.last)
        #expect(total["total"] as? Bool == true && total["route"] as? String == "cheapest")
        #expect((total["costUSD"] as? String).flatMap { Decimal(string: $0) } == minimum)
        let alone = try #require(total["endpoints"] as? [[String: Any]])
        #expect(alone.map { $0["endpoint"] as? String } == [Self.runpod, Self.runflow])

        let text = try QieBinary.run(["cost", root + "/in", "--provider", "runpod,runflow"])
        #expect(text.stdout.contains("routed (cheapest) among \(Self.runpod), \(Self.runflow)"), "\(text.stdout)")
        #expect(text.stdout.contains("routing saves $"), "\(text.stdout)")

        // A size RunPod's list lacks: only Runflow takes it, and plan says so.
        let plan = try QieBinary.run(["plan", root + "/in/photo.jpg", "--provider", "runpod,runflow", "--size", "512x512"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("on \(Self.runflow): 1600x1200 -> 512x512"), "\(plan.stdout)")
        #expect(plan.stdout.contains("  \(Self.runpod): unknown, cannot take 1 file"), "\(plan.stdout)")
        #expect(plan.stdout.contains("  \(Self.runflow): $0.00786432; routing saves $0"), "\(plan.stdout)")

        let dry = try QieBinary.run([
            "edit", root + "/in", "--provider", "runpod,runflow", "--route", "order", "--prompt", "night", "--out", root + "/out",
            "--dry-run", "--json",
        ])
        #expect(dry.status == 0, "\(dry.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        #expect(report["route"] as? String == "order")
        #expect((report["files"] as? [[String: Any]])?.allSatisfy { $0["endpoint"] as? String == Self.runpod } == true)
        #expect((report["endpoints"] as? [[String: Any]])?.count == 2)
    }

    @Test("Routes that cannot be: mixed releases, --route with one endpoint, an unknown policy, a callback flow")
    func refusedRoutes() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeImage(300, 200, to: root + "/a.jpg")
        let mixed = try QieBinary.run(["cost", root + "/a.jpg", "--provider", "runpod,runpod-edit"])
        #expect(mixed.status != 0 && mixed.stderr.contains("mixes model releases"), "\(mixed.stderr)")
        let single = try QieBinary.run(["cost", root + "/a.jpg", "--provider", "runpod", "--route", "cheapest"])
        #expect(single.status != 0 && single.stderr.contains("--route needs several endpoints"), "\(single.stderr)")
        let policy = try QieBinary.run(["cost", root + "/a.jpg", "--provider", "runpod,runflow", "--route", "random"])
        #expect(policy.status != 0 && policy.stderr.contains("--route must be cheapest, fastest, order"), "\(policy.stderr)")
        let callback = try QieBinary.run([
            "edit", root + "/a.jpg", "--provider", "runpod,runflow", "--flow", "callback", "--callback-url", "http://127.0.0.1:9/cb",
            "--prompt", "x", "--out", root + "/out", "--dry-run",
        ])
        #expect(callback.status != 0 && callback.stderr.contains("--flow callback cannot be routed"), "\(callback.stderr)")
    }

    @Test("qie edit across two endpoints: one refused before taking the image sends it to the next, said on the terminal; status names where each ran")
    func editFallsBack() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try writeImage(320, 240, to: root + "/in/a.jpg")
        let emulator = try EmulatorProcess(faults: ["status:422"])
        let (code, output) = try runQie(
            [
                "edit", root + "/in", "--provider", "runpod,runflow", "--prompt", "night", "--out", root + "/out",
                "--base-url", emulator.address, "--poll-interval", "0.2",
            ], environment: ["RUNPOD_API_KEY": "cli-key", "RUNFLOW_API_KEY": "cli-key"])
        #expect(code == 0, "\(output)")
        #expect(output.contains("\(Self.runpod) refused it before taking it, so nothing was billed there"), "\(output)")
        #expect(output.contains("sent to \(Self.runflow)"), "\(output)")
        #expect(!output.contains("cli-key"))
        #expect(emulator.count(of: "POST /v2/qwen-image-edit-2511/run ") == 1, "\(emulator.output)")
        #expect(emulator.count(of: "POST /v1/models/alibaba/qwen-image-edit-2511/runs ") == 1, "\(emulator.output)")
        #expect(FileManager.default.fileExists(atPath: root + "/out/a.jpg"))

        let (_, status) = try runQie(["status", root + "/out", "--json"], environment: [:])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any], "\(status)")
        let job = try #require((json["jobs"] as? [[String: Any]])?.first)
        #expect(job["endpoint"] as? String == Self.runflow && job["state"] as? String == "completed", "\(status)")
        let sidecar = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/a.json"))) as? [String: Any])
        #expect(sidecar["endpoint"] as? String == Self.runflow)

        // Keys for every endpoint of the route are needed before anything is read.
        let (missing, text) = try runQie(
            ["edit", root + "/in", "--provider", "runpod,runflow", "--prompt", "x", "--out", root + "/other", "--base-url", emulator.address],
            environment: ["RUNPOD_API_KEY": "cli-key", "RUNFLOW_API_KEY": ""])
        #expect(missing == 2 && text.contains("RUNFLOW_API_KEY"), "\(text)")
    }

    @Test("Checks made by the library, worded with the command line's flags: prepare, plan, cost and emulate")
    func libraryChecks() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeImage(300, 200, to: root + "/a.jpg")
        let cases: [([String], String)] = [
            (["prepare", root + "/a.jpg", "--out", root + "/o", "--provider", "runpod", "--emit-requests"], "--prompt is missing"),
            (["prepare", root + "/a.jpg", "--out", root + "/o", "--lossless"], "--lossless goes with --format webp or avif"),
            (["prepare", root + "/a.jpg", "--out", root + "/o", "--concurrency", "0"], "--concurrency must be at least 1"),
            (["prepare", root + "/a.jpg", "--out", root + "/o", "--provider", "runpod", "--fit", "inside"], "--fit must be contain, cover or fill"),
            (["plan", root + "/a.jpg", "--provider", "runpod", "--fit", "outside"], "--fit must be contain, cover or fill"),
            (["cost", root + "/a.jpg", "--provider", "runpod", "--num-images", "0"], "--num-images must be at least 1"),
            (["emulate", "--port", "70000"], "--port must be 0 to 65535"),
            (["emulate", "--latency", "2", "--latency-max", "1"], "--latency-max must be at least the latency"),
            (["emulate", "--retention", "0"], "--retention must be positive"),
            // Not a flag's check, but the same promise: the message says what to do.
            (["prepare", root + "/a.jpg", "--out", root + "/missing/o"], "\(root)/missing, does not exist: create it first"),
        ]
        for (arguments, message) in cases {
            let result = try QieBinary.run(arguments)
            #expect(result.status != 0 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/o"))
    }
}
