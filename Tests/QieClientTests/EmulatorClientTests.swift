import Foundation
import NIOCore
import QieClient
import QieEmulator
import QieImaging
import QieProviders
import Synchronization
import Testing

func photo(_ width: Int, _ height: Int) throws -> Data {
    let pixels = [UInt8]((0..<(width * height)).flatMap { i in [UInt8(i % 256), 120, 30] })
    return try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .jpeg))
}

func build(
    _ profile: ProviderProfile, base: String, key: String? = "test-key", request: EditRequest? = nil,
    size: SizeRequest = .automatic, flow: ProviderProfile.Flow? = nil
) throws -> BuiltRequest {
    let input = try photo(400, 300)
    let plan = try SizePlanner.plan(input: PixelSize(width: 400, height: 300), for: profile, request: size)
    let edit = request ?? EditRequest(prompt: "make it blue", images: [.bytes(input, format: .jpeg, filename: "in.jpg")])
    return try RequestBuilder.build(edit, plan: plan, for: profile, apiKey: key, baseURL: base, flow: flow)
}

@Suite("Client against the emulator", .serialized, .hangGuard)
struct EmulatorClientTests {
    @Test("Every synchronous endpoint: request accepted, result downloaded, at the endpoint's size")
    func roundTrip() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let cases: [(ProviderProfile, PixelSize, ImageFormat)] = [
                (.runpodQwenImageEdit2511, PixelSize(width: 1536, height: 1080), .jpeg),
                (.runpodQwenImageEdit, PixelSize(width: 400, height: 300), .jpeg),
                (.oxenQwenImageEdit2511, PixelSize(width: 1184, height: 880), .png),
                (.lumenfallQwenImageEdit2511, PixelSize(width: 1183, height: 887), .png),
            ]
            for (profile, size, format) in cases {
                let outcome = try await client.send(try build(profile, base: base), to: profile)
                guard case .completed(let images, _, _) = outcome, let first = images.first else {
                    Issue.record("\(profile.id): \(outcome)")
                    continue
                }
                let data = try await client.fetch(first, from: profile, checks: ResultChecks(endpoint: base))
                let info = try ImageProbe.probe(data: data)
                #expect(info.displaySize == size && info.format == format, "\(profile.id): \(info.displaySize) \(info.format)")
                #expect(emulator.submissions(to: profile) == 1)
            }
        } }
    }

    @Test("RunPod reports its cost; the body it received is the documented one")
    func runpodCost() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let outcome = try await client.send(try build(.runpodQwenImageEdit2511, base: base), to: .runpodQwenImageEdit2511)
            guard case .completed(_, let cost, let id) = outcome else { Issue.record("\(outcome)"); return }
            #expect(cost == Decimal(string: "0.02"))
            #expect(id?.hasPrefix("sync-") == true)
            let body = try #require(emulator.bodies(sentTo: .runpodQwenImageEdit2511).first)
            let input = (try JSONSerialization.jsonObject(with: body) as? [String: Any])?["input"] as? [String: Any]
            #expect(input?["size"] as? String == "1536*1080")
            #expect((input?["images"] as? [String])?.first?.hasPrefix("data:image/jpeg;base64,") == true)
        } }
    }

    @Test("Wrong key, unknown size and wrong enum are rejected like the endpoint, and not retried")
    func strictRejections() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let noKey = try await client.send(try build(.runpodQwenImageEdit2511, base: base, key: "wrong"), to: .runpodQwenImageEdit2511)
            #expect(noKey == .failed(
                message: "runpod-qwen-image-edit-2511 answered HTTP 401: Unauthorized: missing or invalid bearer token", requestID: nil))

            // A body the builder would never send, straight to the emulator.
            var bad = try build(.runpodQwenImageEdit2511, base: base)
            bad.body = .json(.object([("input", .object([("prompt", .string("x")), ("images", .array([])), ("size", .string("999*999"))]))]))
            let rejected = try await client.send(bad, to: .runpodQwenImageEdit2511)
            guard case .failed(let message, _) = rejected else { Issue.record("\(rejected)"); return }
            #expect(message.contains("HTTP 400"))

            var badSize = try build(.runpodQwenImageEdit2511, base: base)
            badSize.body = .json(.object([
                ("input", .object([("prompt", .string("x")), ("images", .array([.string(DataURI.make(try photo(8, 8), format: .jpeg))])), ("size", .string("999*999"))]))
            ]))
            let sizeOutcome = try await client.send(badSize, to: .runpodQwenImageEdit2511)
            #expect(sizeOutcome == .failed(
                message: "runpod-qwen-image-edit-2511 answered HTTP 400: size must be one of 1024*1024, 1024*1280, 1280*1024, 1280*1280, 1280*1536, 1536*1080",
                requestID: nil))
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 3)
        } }
    }

    @Test("503 and 429 with Retry-After (provably not processed) are retried; the job then succeeds")
    func retries() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            emulator.inject([.unavailable(retryAfter: 0), .tooManyRequests(retryAfter: 1)])
            let request = try build(.runpodQwenImageEdit2511, base: base)
            let start = clock.now()
            let outcome = try await advancingClock(clock) { try await client.send(request, to: .runpodQwenImageEdit2511) }
            guard case .completed = outcome else { Issue.record("\(outcome)"); return }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 3)
            // The 503 asked for no pause and the 429 for a second: the client waited just that, on its clock.
            #expect(clock.now().timeIntervalSince(start) == 1, "Retry-After was not honoured")
        } }
    }

    @Test("Retries give up after the policy's attempts with the endpoint's words")
    func givesUp() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            emulator.inject(Array(repeating: .unavailable(retryAfter: 0), count: 3))
            let outcome = try await client.send(try build(.lumenfallQwenImageEdit2511, base: base), to: .lumenfallQwenImageEdit2511)
            #expect(outcome == .failed(
                message: "lumenfall-qwen-image-edit-2511 answered HTTP 503: emulated failure (HTTP 503)", requestID: nil))
            #expect(emulator.submissions(to: .lumenfallQwenImageEdit2511) == 3)
        } }
    }

    @Test("Malformed JSON, an HTML page and an expired result URL give clear errors")
    func badResponses() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            emulator.inject([.malformedJSON])
            await #expect(throws: ClientError.self) {
                _ = try await client.send(try build(.runpodQwenImageEdit2511, base: base), to: .runpodQwenImageEdit2511)
            }
            emulator.inject([.htmlErrorPage])
            let html = try await client.send(try build(.runpodQwenImageEdit2511, base: base), to: .runpodQwenImageEdit2511)
            guard case .failed(let message, _) = html else { Issue.record("\(html)"); return }
            #expect(message.contains("HTTP 502: an HTML page"))

            emulator.inject([.expiredResult])
            let expired = try await client.send(try build(.runpodQwenImageEdit2511, base: base), to: .runpodQwenImageEdit2511)
            guard case .completed(let images, _, _) = expired, let first = images.first else { Issue.record("\(expired)"); return }
            let error = await #expect(throws: ClientError.self) { _ = try await client.fetch(first, from: .runpodQwenImageEdit2511, checks: ResultChecks(endpoint: base)) }
            #expect(error?.message.contains("answered HTTP 404 (expired or removed)") == true)
        } }
    }

    @Test(
        "A submission that may have been processed is never sent again: 500, 502 HTML, 503 without Retry-After, a dropped answer, an unreadable 200",
        arguments: [EmulatedFault.status(500), .htmlErrorPage, .status(503), .dropConnection, .malformedJSON])
    func uncertainSubmissions(_ fault: EmulatedFault) async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            emulator.inject([fault])
            let error = await #expect(throws: ClientError.self) {
                _ = try await client.perform(
                    try build(profile, base: base), on: profile,
                    poll: { RequestBuilder.poll(id: $0, for: profile, apiKey: "k", baseURL: base) })
            }
            #expect(error?.kind == .uncertain && error?.mayHaveBeenCharged == true, "\(String(describing: error))")
            #expect(error?.submissions == 1 && emulator.submissions(to: profile) == 1)
            #expect(error?.message.contains("not sent again") == true, "\(error?.message ?? "")")
        } }
    }

    @Test("RunPod's payload limit: an 11 MB body is refused on /run (10 MB) with 413, once")
    func payloadLimit() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            let input = try photo(400, 300)
            let large = EditRequest(
                prompt: String(repeating: "x", count: 11_000_000), images: [.bytes(input, format: .jpeg, filename: "in.jpg")])
            let outcome = try await client.send(try build(profile, base: base, request: large, flow: .polling), to: profile)
            guard case .failed(let message, _) = outcome else { Issue.record("\(outcome)"); return }
            #expect(message.contains("HTTP 413") && message.contains("exceeds 10 MB"), "\(message)")
            #expect(emulator.submissions(to: profile) == 1 && emulator.jobs(of: profile) == 0)
        } }
    }

    @Test("A refused connection is reported as a network error naming the host")
    func refusedConnection() async throws {
        try await withTestClient(connectTimeout: .milliseconds(300)) { client in
            let error = await #expect(throws: ClientError.self) {
                _ = try await client.send(try build(.runpodQwenImageEdit2511, base: "http://127.0.0.1:9"), to: .runpodQwenImageEdit2511)
            }
            // Refused before a byte was written: retried, and provably not billed.
            #expect(error?.kind == .network && error?.mayHaveBeenCharged == false)
            #expect(error?.message.contains("no answer from 127.0.0.1 after 3 attempts") == true)
            #expect(error?.message.contains("test-key") == false)
        }
    }

    @Test("Retry-After parses seconds and HTTP dates")
    func retryAfter() {
        #expect(RetryPolicy.parseRetryAfter("3") == 3)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(RetryPolicy.parseRetryAfter("Tue, 14 Nov 2023 22:13:30 GMT", now: now) == 10)
        #expect(RetryPolicy.parseRetryAfter("soon") == nil)
        let policy = RetryPolicy(baseDelay: 1, maxDelay: 4)
        for attempt in 1...6 { #expect(policy.delay(after: attempt, retryAfter: nil) <= 4) }
    }
}
