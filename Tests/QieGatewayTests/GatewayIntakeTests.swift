import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import QieEmulator
import QieGateway
import QiePipeline
import QieTestSupport
import Synchronization
import Testing

/// What a gateway client can make the gateway read, hold and write, tried
/// over real sockets: nothing is read before a request has a place, bodies
/// and their parts are bounded, slow clients are cut off, log lines cannot
/// be forged, keys files mean one key per line, and result links are only
/// built from an address clients can reach.
@Suite("qie serve against its own clients: admission, limits, pace, logs, keys, links", .serialized)
struct GatewayIntakeTests {
    /// Runs `body` with a gateway listening on a free port of 127.0.0.1 over the emulator.
    func withLiveGateway(
        state: String = stateFolder(), clock: any QieClock = SystemClock(), logger: Logger = Logger(label: "qie-serve"),
        configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (EditEmulator, any TestClientProtocol, Int) async throws -> Void
    ) async throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        try await withEmulator { emulator, environment in
            var configuration = GatewayConfiguration(stateDirectory: state)
            configuration.port = 0
            configuration.options.timeouts.pollInterval = 0.05
            configure(&configuration)
            try await Gateway(configuration, environment: environment, logger: logger, clock: clock).withApplication { application in
                try await application.test(.live) { client in
                    let port = try #require(client.port)
                    try await body(emulator, client, port)
                }
            }
        }
    }

    func edit(_ client: some TestClientProtocol, _ form: Multipart, headers: HTTPFields = [:]) async throws -> TestResponse {
        var all = headers
        all[.contentType] = form.contentType
        return try await client.execute(uri: "/v1/images/edits", method: .post, headers: all, body: form.body)
    }

    /// A connection that has sent `form` whole as an edit, with `headers`
    /// (lines ending in CRLF) besides, and is left open for the answer.
    func sendWhole(_ form: Multipart, port: Int, headers: String = "") throws -> RawConnection {
        let connection = try RawConnection(port: port)
        try connection.send(
            "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n\(headers)Content-Type: \(form.contentType)\r\nContent-Length: \(form.bytes.count)\r\n\r\n")
        try connection.send(form.bytes)
        return connection
    }

    /// The uploads being read or kept in a state folder.
    func uploads(in state: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state)) ?? []).filter { $0.hasPrefix("upload-") }
    }

    @Test("A full gateway answers 429 with retry-after from the headers alone: the body is never read or spooled")
    func fullBeforeBody() async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x") }
        let state = stateFolder()
        try await withLiveGateway(state: state, configure: { $0.concurrency = 1; $0.queueLimit = 0 }) { emulator, client, port in
            emulator.hold()
            // Sent whole on a connection of its own, with no client's read
            // timeout: it waits as long as the emulator is held.
            let first = try sendWhole(form, port: port)
            await emulator.waitForSubmissions(1, to: .runpodQwenImageEdit2511)
            // Headers announcing 50 MB, and a few bytes of it: the answer comes without the rest.
            let connection = try RawConnection(port: port)
            try connection.send(
                "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(form.contentType)\r\nContent-Length: 50000000\r\n\r\n--\(form.boundary)\r\n")
            let (answer, _) = await connection.readResponseHead()
            let text = String(decoding: answer, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 429"), "\(text)")
            #expect(text.lowercased().contains("retry-after: 1"), "\(text)")
            #expect(uploads(in: state).count == 1, "only the running edit's upload is kept: \(uploads(in: state))")
            emulator.release()
            let (head, _) = await first.readResponseHead()
            #expect(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 200"), "\(String(decoding: head, as: UTF8.self))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
        }
    }

    @Test("stream=true: headers and a first line at once, a keep-alive comment while the endpoint works, then the events; a failure is an error event; each logged when its stream ends")
    func streamsWhileEditing() async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("stream", "true") }
        let log = CapturedLog()
        try await withLiveGateway(logger: log.logger, configure: { $0.streamKeepAlive = 0.05 }) { emulator, _, port in
            let runpod = ProviderProfile.runpodQwenImageEdit2511
            emulator.hold()
            let connection = try sendWhole(form, port: port)
            // The endpoint is held: what arrives now was sent before the edit ended.
            let (head, _) = await connection.readResponseHead()
            let text = String(decoding: head, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200") && text.lowercased().contains("content-type: text/event-stream"), "\(text)")
            #expect(text.lowercased().contains("x-accel-buffering: no"), "\(text)")
            let (alive, _) = await connection.read(until: ": keep-alive")
            #expect(String(decoding: alive, as: UTF8.self).contains(": keep-alive"))
            #expect(emulator.submissions(to: runpod) <= 1 && !log.all.contains { $0.contains("outcome=") })
            emulator.release()
            let (rest, _) = await connection.read(until: "\"qie\"")
            let events = String(decoding: rest, as: UTF8.self)
            #expect(events.contains("event: image_edit.completed") && events.contains("\"b64_json\""), "\(events.prefix(300))")
            await log.wait(for: "outcome=200")

            // A failure after the headers went out is an error event, in OpenAI's error shape.
            emulator.inject([.jobFailure("content flagged")])
            let failing = try sendWhole(form, port: port)
            let (failed, _) = await failing.read(until: "content flagged")
            let failure = String(decoding: failed, as: UTF8.self)
            #expect(failure.contains("event: error\ndata: {\"error\":"), "\(failure)")
            await log.wait(for: "outcome=502")
        }
    }

    @Test("stream=true with n=3 on an endpoint without n: each image's event is sent as that image is ready, the edit's account with the last")
    func streamsEachImageWhenReady() async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("n", "3"); $0.field("stream", "true") }
        try await withLiveGateway(configure: { $0.streamKeepAlive = 0.05 }) { emulator, _, port in
            emulator.hold()
            let connection = try sendWhole(form, port: port)
            // Three jobs, each done but held: the test lets them end one at a time.
            await emulator.waitForHeld(3)
            let end = "\"total_tokens\":0}}\n\n"
            var seen: [String] = []
            for round in 1...3 {
                #expect(emulator.releaseOne())
                let (data, closed) = await connection.read(until: end)
                let text = String(decoding: data, as: UTF8.self)
                #expect(!closed, "round \(round): \(text.suffix(300))")
                seen.append(text)
                // Exactly one new event, and the account only with the last.
                #expect(text.components(separatedBy: "event: image_edit.completed").count == 2, "round \(round): \(text.suffix(300))")
                #expect(text.contains("\"qie\":") == (round == 3), "round \(round)")
            }
            let body = String(decoding: RawConnection.chunkedBody(of: Data(seen.joined().utf8)), as: UTF8.self)
            let lines = body.split(separator: "\n").filter { $0.hasPrefix("data: {") }
            #expect(lines.count == 3)
            for line in lines {
                let event = try #require(try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any])
                let bytes = try #require(Data(base64Encoded: event["b64_json"] as? String ?? ""))
                let image = try Image.decode(data: bytes)
                #expect(image.width == 64 && image.height == 48)
                #expect((event["usage"] as? [String: Any])?["images"] as? Int == 1)
            }
            #expect(lines.last?.contains("\"cost_usd\":\"0.06\"") == true, "\(lines.last?.suffix(400) ?? "")")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 3)
        }
    }

    @Test("A client that goes away from an edit sent without an Idempotency-Key: its accepted job is cancelled at the endpoint, and the money held for it released")
    func clientGoneCancels() async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x") }
        let log = CapturedLog()
        try await withLiveGateway(logger: log.logger, configure: { $0.maxCostPerDay = Decimal(string: "0.02") }) { emulator, client, port in
            let runpod = ProviderProfile.runpodQwenImageEdit2511
            // The endpoint takes the job as one still to run, and no worker starts it.
            emulator.inject([.staysQueued])
            let connection = try sendWhole(form, port: port)
            // Accepted (its id recorded, then polled): the client goes away.
            await emulator.waitForPolls(1, of: runpod)
            connection.hangUp()
            await emulator.waitForCancels(1, of: runpod)
            await log.wait(for: "cancelled=1")
            #expect(log.all.contains { $0.contains("cancelled=1") && $0.contains("outcome=499 client_closed_request") }, "\(log.all)")
            #expect(!log.all.contains { $0.contains("at_risk_usd") }, "\(log.all)")
            // Nothing was billed: the day's whole budget takes the next edit.
            let next = try await edit(client, form)
            #expect(next.status == .ok, "\(String(buffer: next.body)) \(log.all)")
            #expect(emulator.submissions(to: runpod) == 2 && emulator.cancels(of: runpod) == 1)
        }
    }

    @Test("With an Idempotency-Key the edit goes on when its client goes away: the retry gets its answer, nothing is cancelled or sent again")
    func clientGoneKeepsKeyedEdit() async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x") }
        try await withLiveGateway { emulator, client, port in
            let runpod = ProviderProfile.runpodQwenImageEdit2511
            emulator.inject([.acceptedPending])
            emulator.hold()
            let connection = try sendWhole(form, port: port, headers: "Idempotency-Key: gone-1\r\n")
            await emulator.waitForPolls(1, of: runpod)
            connection.hangUp()
            emulator.release()
            let retry = try await edit(client, form, headers: [HTTPField.Name("Idempotency-Key")!: "gone-1"])
            #expect(retry.status == .ok)
            #expect(emulator.submissions(to: runpod) == 1 && emulator.cancels(of: runpod) == 0)
        }
    }

    @Test("Parts, part headers, text fields and request headers are bounded; each is refused before anything is sent")
    func bodyLimits() async throws {
        let input = try photo(64, 48)
        try await withLiveGateway { emulator, client, port in
            let manyParts = multipart { form in
                form.file("image", input)
                form.field("prompt", "x")
                for index in 0..<70 { form.field("extra_\(index)", "v") }
            }
            let parts = try await edit(client, manyParts)
            #expect(parts.status == .badRequest && (errorObject(parts)["message"] as? String)?.contains("more than 64 parts") == true)

            let longField = multipart { $0.file("image", input); $0.field("prompt", String(repeating: "a", count: 300 << 10)) }
            let field = try await edit(client, longField)
            #expect(field.status == .badRequest && (errorObject(field)["message"] as? String)?.contains("longer than 256 KiB") == true)

            // A part whose headers go on and on.
            var header = Multipart()
            header.file("image", input)
            let boundary = header.boundary
            var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"prompt\"\r\nX-Filler: ".utf8)
            body.append(Data(String(repeating: "b", count: 40 << 10).utf8))
            body.append(Data("\r\n\r\nx\r\n--\(boundary)--\r\n".utf8))
            let headers: HTTPFields = [.contentType: "multipart/form-data; boundary=\(boundary)"]
            let longHeader = try await client.execute(uri: "/v1/images/edits", method: .post, headers: headers, body: .init(data: body))
            #expect(longHeader.status == .badRequest && (errorObject(longHeader)["message"] as? String)?.contains("headers") == true)

            // An HTTP header of 70 KiB: refused by the server, never routed.
            let connection = try RawConnection(port: port)
            try connection.send("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: \(String(repeating: "c", count: 70 << 10))\r\n\r\n")
            let (answer, closed) = await connection.readToEnd()
            let text = String(decoding: answer, as: UTF8.self)
            #expect(closed && !text.hasPrefix("HTTP/1.1 200"), "\(text.prefix(200))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)
        }
    }

    @Test("A client that trickles its headers is cut off; one that trickles its body gets 408 and is cut off, and the log says so", .timeLimit(.minutes(2)))
    func slowClients() async throws {
        let clock = ManualClock(start: Date())
        let log = CapturedLog(level: .debug)
        let state = stateFolder()
        try await withLiveGateway(state: state, clock: clock, logger: log.logger) { emulator, _, port in
            // Each connection first has a request answered, so its pace is
            // watched from a moment the test knows to be past.
            let models = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            let headers = try RawConnection(port: port)
            try headers.send(models)
            #expect(String(decoding: await headers.readResponseHead().data, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            try headers.send("POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            clock.advance(by: 31)
            let (rest, closed) = await headers.readToEnd()
            #expect(closed, "headers begun 31 s ago and not ended: the connection stays open (\(rest.count) bytes)")

            let form = multipart { $0.file("image", try! photo(64, 48)); $0.field("prompt", "x") }
            let slow = try RawConnection(port: port)
            try slow.send(models)
            _ = await slow.readResponseHead()
            try slow.send(
                "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(form.contentType)\r\nContent-Length: 100000\r\n\r\n--\(form.boundary)\r\n")
            // Its pace is watched from its head on: the gateway says when it starts reading the body.
            await log.wait(for: "reading the body")
            clock.advance(by: 11)
            let (answer, cut) = await slow.readToEnd()
            #expect(cut, "a body at a few bytes in 11 s is not cut off")
            let text = String(decoding: answer, as: UTF8.self)
            #expect(text.isEmpty || text.hasPrefix("HTTP/1.1 408"), "\(text)")
            // The request's own line: its place and its upload are given back.
            await log.wait(for: "client_too_slow")
            #expect(log.all.contains { $0.contains("outcome=408 client_too_slow") }, "\(log.all)")
            #expect(uploads(in: state).isEmpty)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)
        }
    }

    @Test("Text log lines escape what a request carries: a model name with a newline writes one line, cut to 100 characters")
    func unforgeableLogs() async throws {
        let lines = Mutex<String>("")
        let logger = Logger(label: "qie-serve") { _ in GatewayLogHandler(format: .text) { text in lines.withLock { $0 += text } } }
        let input = try photo(64, 48)
        try await withLiveGateway(logger: logger) { _, client, _ in
            let forged = "nope\n2026-12-06T00:00:00Z info POST /v1/images/edits key=admin outcome=200 cost_usd=0"
            let form = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("model", forged) }
            let answer = try await edit(client, form)
            #expect(answer.status == .notFound || answer.status == .badRequest)
            let long = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("model", String(repeating: "m", count: 5000)) }
            _ = try await edit(client, long)
        }
        let written = lines.withLock { $0 }.split(separator: "\n")
        #expect(written.count == 2, "\(written)")
        #expect(written.allSatisfy { $0.contains("POST /v1/images/edits") && $0.count < 600 }, "\(written)")
        #expect(written.first?.contains(#"model="nope\n2026"#) == true, "\(written)")
        #expect(!written.contains { $0.hasPrefix("2026-12-06T00:00:00Z") })
    }

    @Test("A keys file means one key per line, commas included; a file without a key is refused")
    func keysFiles() throws {
        let keys = try GatewayKey.keys(file: "# the team's keys\n\nab,longsecret\n  second-key  \r\n", path: "keys.txt")
        #expect(keys.map(\.secret) == ["ab,longsecret", "second-key"])
        #expect(GatewayKey.keys(list: "one, two,,three").map(\.secret) == ["one", "two", "three"])
        #expect(throws: GatewayConfigurationError.keysFile(path: "keys.txt", reason: "holds no key (one key per line; blank lines and # comments are skipped)")) {
            try GatewayKey.keys(file: "# nothing yet\n\n", path: "keys.txt")
        }
        let folder = stateFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(throws: GatewayConfigurationError.self) { try GatewayKey.keys(contentsOf: folder + "/missing") }
    }

    @Test("Listening off loopback without a public URL, url answers are refused before anything is sent; with one, links use it")
    func resultLinks() async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("response_format", "url") }
        var open = GatewayConfiguration(stateDirectory: stateFolder())
        open.host = "0.0.0.0"
        open.keys = [GatewayKey("k")]
        #expect(!open.servesResultLinks)
        open.publicURL = "http://0.0.0.0:8080"
        #expect(throws: GatewayConfigurationError.self) { try open.validate() }
        open.publicURL = "https://images.example.com/qie"
        #expect(throws: Never.self) { try open.validate() }

        // Served over loopback here, but configured as an address of all
        // interfaces: what the gateway answers depends on its configuration only.
        let state = stateFolder()
        defer { try? FileManager.default.removeItem(atPath: state) }
        for publicURL in [nil, "https://images.example.com/qie"] {
            try await withEmulator { emulator, environment in
                var configuration = GatewayConfiguration(stateDirectory: state)
                configuration.host = "0.0.0.0"
                configuration.keys = [GatewayKey("gateway-key")]
                configuration.publicURL = publicURL
                try await Gateway(configuration, environment: environment).withApplication { application in
                    try await application.test(.router) { client in
                        let answer = try await edit(client, form, headers: [.authorization: "Bearer gateway-key"])
                        if publicURL == nil {
                            #expect(answer.status == .badRequest && errorObject(answer)["param"] as? String == "response_format")
                            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)
                        } else {
                            let link = (object(answer)["data"] as? [[String: Any]])?.first?["url"] as? String
                            #expect(link?.hasPrefix("https://images.example.com/qie/v1/files/") == true, "\(String(buffer: answer.body))")
                        }
                    }
                }
            }
        }
    }

    @Test("A request's work is bounded by its pixels; answers stream with their exact length; a key's answer keeps its images as files, not in the database")
    func boundedWork() async throws {
        let state = stateFolder()
        let input = try photo(900, 700)
        try await withLiveGateway(state: state) { emulator, client, _ in
            let huge = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("n", "10"); $0.field("size", "4096x4096") }
            let refused = try await edit(client, huge)
            #expect(refused.status == .badRequest && errorObject(refused)["param"] as? String == "size", "\(String(buffer: refused.body))")
            #expect((errorObject(refused)["message"] as? String)?.contains("at most 64 per request") == true, "\(errorObject(refused))")
            let big = try photo(3000, 3000)
            let many = multipart { $0.file("image", big); $0.field("prompt", "x"); $0.field("n", "8") }
            let tooMany = try await edit(client, many)
            #expect(tooMany.status == .badRequest && errorObject(tooMany)["param"] as? String == "n", "\(String(buffer: tooMany.body))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)

            let form = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("n", "2") }
            let first = try await edit(client, form, headers: [HTTPField.Name("Idempotency-Key")!: "kept-1"])
            #expect(first.status == .ok)
            #expect(first.headers[.contentLength].flatMap(Int.init) == first.body.readableBytes)
            let results = try images(first)
            #expect(results.count == 2 && results.allSatisfy { $0.displaySize == PixelSize(width: 900, height: 700) })
            let data = object(first)["data"] as? [[String: Any]] ?? []
            let bytes = data.compactMap { ($0["b64_json"] as? String).flatMap { Data(base64Encoded: $0) } }
            // Each image is a file of the key's lifetime; the database holds none of them.
            let files = try FileManager.default.contentsOfDirectory(atPath: state + "/files")
            let sizes = try files.map { try FileManager.default.attributesOfItem(atPath: state + "/files/" + $0)[.size] as? Int ?? 0 }
            #expect(sizes.sorted() == bytes.map(\.count).sorted(), "\(files)")
            let database = try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.hasPrefix("gateway.sqlite") }
                .reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: state + "/" + $1)[.size] as? Int) ?? 0) }
            #expect(database < bytes[0].count, "the database (\(database) bytes) holds an image (\(bytes[0].count) bytes)")

            let replayed = try await edit(client, form, headers: [HTTPField.Name("Idempotency-Key")!: "kept-1"])
            #expect(replayed.status == .ok && replayed.headers[HTTPField.Name("x-litellm-response-cost")!] == "0")
            #expect(String(buffer: replayed.body).contains(bytes[1].base64EncodedString()))
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            // Gone files: the retry is told so, and nothing is sent again.
            for file in files { try FileManager.default.removeItem(atPath: state + "/files/" + file) }
            let gone = try await edit(client, form, headers: [HTTPField.Name("Idempotency-Key")!: "kept-1"])
            #expect(gone.status != .ok && (errorObject(gone)["message"] as? String)?.contains("no longer kept") == true, "\(String(buffer: gone.body))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
        }
    }
}
