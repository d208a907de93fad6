import Foundation
import QieEmulator
import QiePipeline
import Synchronization
import Testing

@Suite("One edit in memory: bytes in, converted and restored bytes out", .serialized, .hangGuard)
struct EditorTests {
    @Test("Bytes in, bytes out: planned, sent, fetched, converted and restored to the input's own size")
    func bytesInBytesOut() async throws {
        try await withEmulator { emulator, base in
            var options = testOptions(.runpodQwenImageEdit2511, base: base, prompt: "make it blue")
            options.restore = .exact
            options.format = .webp
            let input = try photo(400, 300)
            let result = try await Editor.with(options, environment: testEnvironment()) { editor in
                try await editor.edit(EditInput(image: .data(input), seed: 5))
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            #expect(result.images.count == 1 && result.images[0].format == .webp)
            let info = try ImageProbe.probe(data: result.images[0].data)
            #expect(info.format == .webp && info.displaySize == PixelSize(width: 400, height: 300))
            #expect(result.images[0].size == PixelSize(width: 400, height: 300))
            #expect(result.plan.target == PixelSize(width: 1536, height: 1080))
            #expect(result.source.displaySize == PixelSize(width: 400, height: 300))
            #expect(result.prompt == "make it blue" && result.seed == 5 && result.requestIDs.count == 1)
            #expect(result.reportedCost == Decimal(string: "0.02") && result.cost == Decimal(string: "0.02"))
            // What the endpoint received: the planned size, the prompt, the seed, one data URI.
            let body = try firstBody(emulator, .runpodQwenImageEdit2511)
            let sent = try #require(body["input"] as? [String: Any])
            #expect(sent["size"] as? String == "1536*1080" && sent["seed"] as? Int == 5)
            #expect((sent["images"] as? [String])?.first?.hasPrefix("data:image/jpeg;base64,") == true)
        }
    }

    @Test("n where the endpoint has no count field: that many requests at once, that many images back")
    func repeatedRequests() async throws {
        try await withEmulator { emulator, base in
            var options = testOptions(.runpodQwenImageEdit, base: base)
            options.numImages = 3
            // The answers are held until all three requests have arrived:
            // they overlap however the machine spaces their sending out.
            emulator.hold()
            async let edited = Editor.with(options, environment: testEnvironment()) { editor in
                try await editor.edit(EditInput(image: .data(try photo(300, 300))))
            }
            await emulator.waitForSubmissions(3, to: .runpodQwenImageEdit)
            emulator.release()
            let result = try await edited
            #expect(result.images.count == 3 && result.submissions == 3 && result.requestIDs.count == 3)
            #expect(emulator.submissions(to: .runpodQwenImageEdit) == 3)
            // Sent in parallel: the emulator was answering all three at once.
            #expect(emulator.mostConcurrentSubmissions(to: .runpodQwenImageEdit) == 3)
            // Each request asks for one image; the count field is not sent to an endpoint without one.
            for body in emulator.bodies(sentTo: .runpodQwenImageEdit) {
                let input = try #require((try JSONSerialization.jsonObject(with: body) as? [String: Any])?["input"] as? [String: Any])
                #expect(input["num_images"] == nil && input["n"] == nil)
            }
        }
    }

    @Test("An idempotency key: a retry returns the first result, concurrent duplicates wait, one submission")
    func idempotency() async throws {
        try await withEmulator { emulator, base in
            let options = testOptions(.runpodQwenImageEdit2511, base: base)
            let store = ObservedIdempotencyStore()
            let input = try photo(320, 240)
            // The first edit's answer is held until all four have claimed the
            // key: the three others come while it is on the wire.
            emulator.hold()
            let results = try await Editor.with(options, environment: testEnvironment()) { editor in
                try await withThrowingTaskGroup(of: EditResult.self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            try await editor.edit(EditInput(image: .data(input)), hooks: EditHooks(idempotency: (store, "retry-1")))
                        }
                    }
                    await store.waitForClaims(4)
                    await emulator.waitForSubmissions(1, to: .runpodQwenImageEdit2511)
                    emulator.release()
                    var all: [EditResult] = []
                    for try await result in group { all.append(result) }
                    all.append(try await editor.edit(EditInput(image: .data(input)), hooks: EditHooks(idempotency: (store, "retry-1"))))
                    return all
                }
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            #expect(results.count == 5 && Set(results.map(\.requestIDs)).count == 1)
            #expect(results.allSatisfy { $0.images[0].data == results[0].images[0].data })
        }
    }

    @Test("A failure that billed nothing frees the key (the retry runs); one that may have been billed is kept, not paid again")
    func idempotentFailures() async throws {
        try await withEmulator { emulator, base in
            let store = InMemoryIdempotencyStore()
            let options = testOptions(.runpodQwenImageEdit2511, base: base)
            try await Editor.with(options, environment: testEnvironment()) { editor in
                // Not an image: nothing sent, so the same key may run again.
                await #expect(throws: EditError.self) {
                    try await editor.edit(EditInput(image: .data(Data("not an image".utf8))), hooks: EditHooks(idempotency: (store, "k")))
                }
                let result = try await editor.edit(EditInput(image: .data(try photo(200, 200))), hooks: EditHooks(idempotency: (store, "k")))
                #expect(result.images.count == 1)
                // The endpoint refuses (a 4xx: nothing billed): the retry runs, and succeeds.
                emulator.inject([.status(400)])
                await #expect(throws: EditError.self) {
                    try await editor.edit(EditInput(image: .data(try photo(200, 200))), hooks: EditHooks(idempotency: (store, "j")))
                }
                let retried = try await editor.edit(EditInput(image: .data(try photo(200, 200))), hooks: EditHooks(idempotency: (store, "j")))
                #expect(retried.images.count == 1)
                // A 500 after sending may have been billed: the retry gets the same failure, as data.
                emulator.inject([.status(500)])
                let first = await #expect(throws: EditError.self) {
                    try await editor.edit(EditInput(image: .data(try photo(200, 200))), hooks: EditHooks(idempotency: (store, "m")))
                }
                let again = await #expect(throws: EditError.self) {
                    try await editor.edit(EditInput(image: .data(try photo(200, 200))), hooks: EditHooks(idempotency: (store, "m")))
                }
                #expect(first?.description == again?.description)
                guard case .endpoint(let client)? = again else { Issue.record("\(String(describing: again))"); return }
                #expect(client.status == 500 && client.kind == .uncertain)
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 4)
        }
    }

    @Test("A budget hook: the estimate is reserved before sending; over the limit nothing is sent")
    func budget() async throws {
        try await withEmulator { emulator, base in
            let budget = Budget(limit: Decimal(string: "0.03")!, spent: 0)
            let options = testOptions(.runpodQwenImageEdit2511, base: base)
            try await Editor.with(options, environment: testEnvironment()) { editor in
                let paid = try await editor.edit(EditInput(image: .data(try photo(200, 200))), hooks: EditHooks(budget: budget))
                #expect(paid.cost == Decimal(string: "0.02"))
                do {
                    _ = try await editor.edit(EditInput(image: .data(try photo(200, 200))), hooks: EditHooks(budget: budget))
                    Issue.record("an edit over the budget was sent")
                } catch let error as EditError {
                    guard case .overBudget(let refusal) = error else { Issue.record("\(error)"); return }
                    #expect(refusal.spent == Decimal(string: "0.02") && refusal.estimate == Decimal(string: "0.02"))
                }
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            #expect(budget.spent == Decimal(string: "0.02") && budget.inFlight == 0)
        }
    }

    @Test("No key, no prompt, a file that is not an image: typed errors, nothing sent")
    func refusals() async throws {
        try await withEmulator { emulator, base in
            let options = testOptions(.runflowQwenImageEdit2511, base: base, prompt: nil)
            do {
                _ = try await Editor.with(options, environment: [:]) { editor in
                    try await editor.edit(EditInput(image: .data(try photo(100, 100)), prompt: "x"))
                }
                Issue.record("an edit without a key was sent")
            } catch let error as EditError {
                guard case .missingKey(let endpoint, let variable) = error else { Issue.record("\(error)"); return }
                #expect(endpoint == "runflow-qwen-image-edit-2511" && variable == "RUNFLOW_API_KEY")
            }
            try await Editor.with(options, environment: testEnvironment()) { editor in
                do {
                    _ = try await editor.edit(EditInput(image: .data(try photo(100, 100))))
                    Issue.record("an edit without a prompt was sent")
                } catch let error as EditError {
                    guard case .noPrompt = error else { Issue.record("\(error)"); return }
                }
                let folder = try folder()
                defer { try? FileManager.default.removeItem(atPath: folder) }
                try Data("<html>".utf8).write(to: URL(fileURLWithPath: folder + "/page.png"))
                do {
                    _ = try await editor.edit(EditInput(image: .file(folder + "/page.png"), prompt: "x"))
                    Issue.record("a web page was sent as an image")
                } catch let error as EditError {
                    guard case .input(let imaging) = error else { Issue.record("\(error)"); return }
                    #expect(imaging.kind == .refusedFormat && imaging.file == folder + "/page.png")
                    #expect(error.description.hasPrefix(folder + "/page.png: "))
                }
            }
            #expect(emulator.submissions(to: .runflowQwenImageEdit2511) == 0)
        }
    }
}

/// The in-memory idempotency store, counting claims so a test can wait
/// until duplicates have come (they then wait for the first edit).
actor ObservedIdempotencyStore: IdempotencyStore {
    private let store = InMemoryIdempotencyStore()
    private var claims = 0
    private var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    func claim(_ key: String) async throws -> IdempotencyClaim {
        claims += 1
        watchers.removeAll { watcher in
            guard claims >= watcher.count else { return false }
            watcher.continuation.resume()
            return true
        }
        return try await store.claim(key)
    }

    func finish(_ key: String, _ outcome: IdempotencyOutcome) async { await store.finish(key, outcome) }

    func release(_ key: String) async { await store.release(key) }

    /// Returns once `count` claims have been made.
    func waitForClaims(_ count: Int) async {
        if claims >= count { return }
        await withCheckedContinuation { watchers.append((count, $0)) }
    }
}
