import Foundation
import QieClient
import QieEmulator
import QiePipeline
import QieProviders
import Testing

/// An endpoint's event stream is read within caps: a line or an event over
/// its cap closes the stream, and the jobs waiting on it are polled.
@Suite("Event streams are bounded: a line or an event over its cap closes the stream and jobs are polled", .hangGuard)
struct BoundedEventStreamTests {
    @Test("The parser keeps a line and an event up to their caps, and throws at the first byte past either")
    func parserCaps() throws {
        let limits = EventStreamLimits(maxLineBytes: 16, maxEventBytes: 40)
        // At the caps exactly: 16-byte lines (`data: ` and 10 bytes) and a
        // 40-byte event (its data lines, each counted with its newline: 11 + 11 + 11 + 7).
        var parser = EventStreamParser(limits: limits)
        let fits = "data: 0123456789\ndata: 0123456789\ndata: 0123456789\ndata: 012345\n\n"
        #expect(try parser.feed(Array(fits.utf8)).map(\.data.utf8.count) == [39])
        // An event of many short lines goes over the event cap, not the line cap.
        var events = EventStreamParser(limits: limits)
        let overEvent = #expect(throws: EventStreamParser.Overflow.self) {
            _ = try events.feed(Array(String(repeating: "data: 0123456789\n", count: 5).utf8))
        }
        #expect(overEvent == EventStreamParser.Overflow(part: .event, limit: 40))
        // A line with no end: the parser throws at byte 17, holding no more,
        // however much is still to come.
        var lines = EventStreamParser(limits: limits)
        let overLine = #expect(throws: EventStreamParser.Overflow.self) {
            _ = try lines.feed([UInt8](repeating: UInt8(ascii: "x"), count: 10_000_000))
        }
        #expect(overLine == EventStreamParser.Overflow(part: .line, limit: 16))
        // Comments and unknown fields count against the line cap only.
        var comments = EventStreamParser(limits: limits)
        let noise = String(repeating: ": keep-alive 123\r\nid: 1234567890\r\n", count: 100) + "data: ok\r\n\r\n"
        #expect(try comments.feed(Array(noise.utf8)) == [.init(name: "message", data: "ok")])
    }

    @Test("A listener whose stream sends an event over its cap stops reading, closes its signals with the cap, and opens no stream again")
    func listenerStops() async throws {
        try await withTestClient { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.oxenQwenImageEdit2511
            let signals = JobSignals()
            let events = try #require(RequestBuilder.events(for: profile, apiKey: "test-key", baseURL: base))
            let limits = EventStreamLimits(maxLineBytes: 1 << 20, maxEventBytes: 256 * 1024)
            let listener = EventStreamListener(client: client, request: events, profile: profile, signals: signals, limits: limits)
            // A job whose end comes after an event of 256 MiB: the listener is
            // held until its stream is open, and returns of its own accord.
            emulator.inject([.oversizedEvent(bytes: 256 << 20, inOneLine: false)])
            emulator.hold()
            async let listened: Void = listener.run()
            await emulator.waitForOpenedEventStreams(1, of: profile)
            let accepted = try await client.send(try build(profile, base: base, flow: .serverSentEvents), to: profile)
            guard case .pending(let id, _) = accepted else { Issue.record("\(accepted)"); return }
            emulator.release()
            await listened
            let reason = try #require(signals.closedReason)
            #expect(reason == "\(profile.id): the event stream sent an event over the 262144-byte limit (maxEventBytes); it was closed and jobs are polled instead")
            #expect(await signals.wait(for: id, upTo: 3600) == nil, "a closed wait ends at once")
            await emulator.waitForEndedEventStreams(1, of: profile)
            // It stopped reading at the cap: what the connection took is the
            // cap and the sockets' buffers, not the 256 MiB sent its way.
            #expect(emulator.eventStreamBytes < 32 << 20, "\(emulator.eventStreamBytes) bytes taken")
            #expect(emulator.openEventStreams == 0)
        } }
    }

    @Test("An edit on Oxen's event stream completes by polling when the stream sends an event, or a line, over its cap; the warning names it")
    func editFallsBackToPolling() async throws {
        for (inOneLine, limits, named) in [
            (false, EventStreamLimits(maxLineBytes: 1 << 20, maxEventBytes: 256 * 1024), "an event over the 262144-byte limit (maxEventBytes)"),
            (true, EventStreamLimits(maxLineBytes: 16 * 1024, maxEventBytes: 4 << 20), "a line over the 16384-byte limit (maxEventLineBytes)"),
        ] {
            // The clock never moves: the job is polled because the stream
            // closed, not because a fallback poll came due (30 s of that clock away).
            let clock = ManualClock()
            try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
                let profile = ProviderProfile.oxenQwenImageEdit2511
                var options = testOptions(profile, base: base)
                options.flow = .serverSentEvents
                options.timeouts.pollInterval = nil
                options.maxEventBytes = limits.maxEventBytes
                options.maxEventLineBytes = limits.maxLineBytes
                emulator.inject([.oversizedEvent(bytes: 256 << 20, inOneLine: inOneLine)])
                // The job ends (and its oversized event is sent) once the stream is open.
                emulator.hold()
                async let edited = Editor.with(options, environment: testEnvironment(), client: client) { editor in
                    try await editor.edit(EditInput(image: .data(try photo(300, 200))))
                }
                await emulator.waitForOpenedEventStreams(1, of: profile)
                emulator.release()
                let result = try await edited
                #expect(result.images.count == 1 && result.submissions == 1)
                #expect(result.polls == 1 && emulator.polls(of: profile) == 1)
                #expect(
                    result.warnings == ["\(profile.id): the event stream sent \(named); it was closed and jobs are polled instead"],
                    "\(result.warnings)")
                await emulator.waitForEndedEventStreams(1, of: profile)
                #expect(emulator.eventStreamBytes < 32 << 20, "\(emulator.eventStreamBytes) bytes taken")
            } }
        }
    }

    @Test("The caps are settings: below 1 KiB is refused, naming the setting")
    func capsAreSettings() throws {
        var options = EditOptions(endpoint: ProviderProfile.oxenQwenImageEdit2511.id)
        options.prompt = "make it night"
        options.maxEventBytes = 100
        let error = try #require(throws: SettingError.self) { try options.validate() }
        #expect(error.description == "maxEventBytes must be at least 1024 bytes; got 100")
        options.maxEventBytes = 4 << 20
        options.maxEventLineBytes = 0
        #expect(throws: SettingError.self) { try options.validate() }
        // Stored runs from before the caps read them as their defaults.
        let stored = try JSONDecoder().decode(EditOptions.self, from: Data(#"{"endpoint":"oxen-qwen-image-edit-2511"}"#.utf8))
        #expect(stored.maxEventBytes == 4 << 20 && stored.maxEventLineBytes == 1 << 20)
    }
}
