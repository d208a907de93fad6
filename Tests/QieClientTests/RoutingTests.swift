import Foundation
import QieClient
import QieCore
import QieEmulator
import QieFiles
import QiePipeline
import QieProviders
import QieStore
import Synchronization
import Testing

/// Routing among endpoints of one release: each image priced on each, sent
/// to the one ranked first, and to the next only when nothing was billed.
@Suite("Routing across endpoints by price, without paying twice")
struct RoutingTests {
    static let runpod = ProviderProfile.runpodQwenImageEdit2511
    static let runflow = ProviderProfile.runflowQwenImageEdit2511

    /// Options routing between RunPod and Runflow at the emulator.
    static func routed(_ base: String, policy: Routing.Policy = .cheapest) -> EditOptions {
        var options = testOptions(runpod, base: base)
        options.routing = Routing(endpoints: ["runpod", "runflow"], policy: policy)
        return options
    }

    @Test("Endpoints of different releases, unknown or listed twice are refused before anything is read")
    func refusedRoutes() throws {
        #expect(throws: SettingError.self) { try Routing(endpoints: ["runpod", "runpod-edit"]).profiles() }
        do {
            _ = try Routing(endpoints: ["runpod", "runpod-edit"]).profiles()
        } catch {
            #expect(error.description.contains("mixes model releases") && error.description.contains("runpod-qwen-image-edit runs qwen-image-edit"))
        }
        do {
            _ = try Routing(endpoints: ["runpod", "runpod-2511"]).profiles()
            Issue.record("an endpoint listed twice was taken")
        } catch {
            #expect(error.description.contains("listed twice"))
        }
        #expect(throws: SettingError.self) { try Routing(endpoints: ["runpod", "nowhere"]).profiles() }
        var options = EditOptions(endpoint: "runpod")
        options.prompt = "night"
        options.routing = Routing(endpoints: ["runpod", "runflow"])
        options.flow = .callback
        #expect(throws: SettingError.self) { try options.validate() }
    }

    @Test("Offers rank by price (ties as listed, unpriced after), as listed, or by measured duration; an endpoint that cannot take the size comes last")
    func ranking() throws {
        var options = EditOptions(endpoint: "runpod")
        options.routing = Routing(endpoints: ["oxen", "runflow", "runpod"], policy: .cheapest)
        let size = PixelSize(width: 1600, height: 1200)
        // RunPod: $0.02 a 1536x1080 image; Runflow: $0.03 per megapixel of about 1 MP; Oxen: no price.
        #expect(try options.offers(for: size).map(\.profile.id) == [Self.runpod.id, Self.runflow.id, "oxen-qwen-image-edit-2511"])
        let offers = try options.offers(for: size)
        #expect(offers[0].cost == Decimal(string: "0.02"))
        #expect(offers[1].cost.map { $0 > Decimal(string: "0.02")! } == true)
        #expect(offers[2].cost == nil && offers[2].isPlanned)

        options.routing?.policy = .order
        #expect(try options.offers(for: size).map(\.profile.id) == ["oxen-qwen-image-edit-2511", Self.runflow.id, Self.runpod.id])

        // Fastest: the unmeasured first (so each is measured), then by mean duration.
        options.routing?.policy = .fastest
        let measured = [Self.runpod.id: 3.0, Self.runflow.id: 1.0, "oxen-qwen-image-edit-2511": 9.0]
        #expect(try options.offers(for: size, meanDurations: measured).map(\.profile.id) == [Self.runflow.id, Self.runpod.id, "oxen-qwen-image-edit-2511"])
        #expect(try options.offers(for: size, meanDurations: [Self.runflow.id: 1.0]).map(\.profile.id).first == "oxen-qwen-image-edit-2511")

        // A size RunPod's list does not have: it cannot take the image, so Runflow is picked.
        options.routing?.policy = .cheapest
        options.size = .size(PixelSize(width: 512, height: 512))
        let small = try options.offers(for: size)
        #expect(small.map(\.profile.id) == [Self.runflow.id, "oxen-qwen-image-edit-2511", Self.runpod.id])
        #expect(!small[2].isPlanned)
    }

    @Test("The routed total is each image's cheapest price; each endpoint alone shows what routing saves against it")
    func costReport() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(1600, 1200, to: root + "/in/photo.jpg")
        try write(300, 200, to: root + "/in/small.jpg")
        try write(200, 900, to: root + "/in/tall.jpg")
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: root + "/in/broken.jpg"))
        let files = InputWalker().walk([root + "/in"]).files
        var options = EditOptions(endpoint: "runpod")
        options.routing = Routing(endpoints: ["runpod", "runflow"], policy: .cheapest)
        // With a price per megapixel of Runflow's own, the small image is cheaper there.
        options.size = .automatic
        let report = try CostReport(files, options: options)
        #expect(report.total.failed == 1 && report.total.files == 3)
        var minimum = Decimal(0)
        for file in report.files where file.status == .planned {
            let prices = file.offers.compactMap { $0.costUSD.flatMap { Decimal(string: $0) } }
            #expect(prices.count == 2)
            let cheapest = try #require(prices.min())
            #expect(file.costUSD.flatMap { Decimal(string: $0) } == cheapest, "\(file.path)")
            #expect(file.endpoint == file.offers.first { $0.costUSD.flatMap { Decimal(string: $0) } == cheapest }?.endpoint)
            minimum += cheapest
        }
        #expect(report.total.costUSD.flatMap { Decimal(string: $0) } == minimum)
        let alone = report.total.endpoints
        #expect(alone.map(\.endpoint) == [Self.runpod.id, Self.runflow.id])
        for one in alone {
            let total = try #require(one.costUSD.flatMap { Decimal(string: $0) })
            #expect(one.savingUSD.flatMap { Decimal(string: $0) } == total - minimum)
            #expect(total >= minimum)
        }
        // Encoded as documented: amounts as decimal text.
        let line = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report.total)) as? [String: Any]
        #expect(line?["total"] as? Bool == true && line?["route"] as? String == "cheapest" && line?["costUSD"] is String)
    }

    @Test("A routed run sends each image to its cheapest endpoint; one refused before acceptance goes to the next, and the ledger, sidecar and status name where it ran")
    func fallsBackWhenRefused() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try write(120, 160, to: root + "/in/b.jpg")
        try await withEmulator { emulator, base in
            // RunPod is the cheaper for both; the first request it gets is refused (422).
            emulator.inject([.status(422)])
            let record = try await runFolder(root, options: Self.routed(base))
            #expect(record.summary.batch.written == 2, "\(record.failures)")
            #expect(emulator.submissions(to: Self.runpod) == 2 && emulator.submissions(to: Self.runflow) == 1)
            let fallbacks = record.events.compactMap { event -> (String, String, String)? in
                guard case .routed(_, let to, let after?) = event else { return nil }
                return (after.endpoint, after.reason, to)
            }
            #expect(fallbacks.count == 1, "\(record.events.compactMap { if case .routed(_, let to, let after) = $0 { "\(to) \(String(describing: after))" } else { nil } })")
            #expect(fallbacks.first?.0 == Self.runpod.id && fallbacks.first?.2 == Self.runflow.id)
            #expect(fallbacks.first?.1.contains("422") == true, "\(fallbacks)")

            // Where each ran: the sidecar and the ledger agree, and the money is each one's price.
            let ledger = try Ledger(folder: root + "/out")
            let jobs = try ledger.jobs()
            #expect(Set(jobs.map(\.endpoint)) == [Self.runpod.id, Self.runflow.id])
            for output in record.done {
                let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output.sidecar))) as? [String: Any]
                let job = try #require(jobs.first { output.paths.first.map($0.outputPaths.contains) == true })
                #expect(sidecar?["endpoint"] as? String == job.endpoint)
            }
            let runflowJob = try #require(jobs.first { $0.endpoint == Self.runflow.id })
            #expect(runflowJob.attempts == 2 && runflowJob.state == .completed)
            let runflowCost = try #require(runflowJob.cost)
            #expect(try ledger.money().billed == Decimal(string: "0.02")! + runflowCost)
            #expect(try ledger.money().atRisk == 0)

            // Run again: both done, nothing sent anywhere.
            let again = try await runFolder(root, options: Self.routed(base))
            #expect(again.summary.batch.earlier == 2)
            #expect(emulator.submissions(to: Self.runpod) == 2 && emulator.submissions(to: Self.runflow) == 1)
        }
    }

    @Test("A failure that may have been billed, or a job the endpoint took and failed, never goes to the next endpoint")
    func neverFallsBackAfterAcceptance() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            emulator.inject([.status(500)])
            let first = try await runFolder(root, options: Self.routed(base), output: "uncertain")
            #expect(first.summary.batch.failed == 1)
            #expect(emulator.submissions(to: Self.runpod) == 1 && emulator.submissions(to: Self.runflow) == 0)
            let ledger = try Ledger(folder: root + "/uncertain")
            #expect(try ledger.jobs().first?.state == .uncertain)
            #expect(try ledger.money().atRisk == Decimal(string: "0.02"))

            emulator.inject([.jobFailure("out of memory")])
            let second = try await runFolder(root, options: Self.routed(base), output: "lost")
            #expect(second.summary.batch.failed == 1)
            #expect(emulator.submissions(to: Self.runpod) == 2 && emulator.submissions(to: Self.runflow) == 0)
            let lost = try Ledger(folder: root + "/lost")
            #expect(try lost.jobs().first?.state == .lost && lost.jobs().first?.endpoint == Self.runpod.id)
        }
    }

    @Test("A routed job accepted and left waiting is picked up where it went: asked about there, never sent anywhere again")
    func resumeKeepsTheEndpoint() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            // Refused by RunPod, taken by Runflow (which has no cancel), then the run is stopped at once.
            emulator.inject([.status(422), .delayed(seconds: 1)])
            let stop = BatchCancellation()
            let configuration = EditRunConfiguration(inputs: [root + "/in"], output: root + "/out", options: Self.routed(base))
            let first = try await EditRun(configuration).run(environment: testEnvironment(), stop: stop) { event in
                if case .sent = event { stop.stopNow() }
            }
            #expect(first.batch.written == 0)
            let ledger = try Ledger(folder: root + "/out")
            let waiting = try #require(try ledger.jobs().first)
            #expect(waiting.endpoint == Self.runflow.id && [.accepted, .answered].contains(waiting.state), "\(waiting.state)")

            let second = try await runFolder(root, options: Self.routed(base))
            #expect(second.summary.batch.written == 1, "\(second.failures)")
            #expect(emulator.submissions(to: Self.runpod) == 1 && emulator.submissions(to: Self.runflow) == 1)
            #expect(try ledger.jobs().first?.endpoint == Self.runflow.id)
            #expect(second.done.first?.result.endpoint == Self.runflow.id)
        }
    }
}
