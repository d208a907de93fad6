import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import QieEmulator
import QieGateway
import QiePipeline
import QieTestSupport
import Synchronization
import Testing

@Suite("qie serve in process: the OpenAI images API over the endpoints", .serialized)
struct GatewayTests {
    /// Runs `body` with a router-level client of a gateway over the emulator.
    func withGateway(
        latency: Duration = .zero, effect: EmulatedEffect = .none, state: String = stateFolder(), kind: StateKind = .sqlite,
        clock: any QieClock = SystemClock(), configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (EditEmulator, any TestClientProtocol) async throws -> Void
    ) async throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        try await withEmulator(latency: latency, effect: effect) { emulator, environment in
            var configuration = try kind.configuration(folder: state)
            configuration.options.timeouts.pollInterval = 0.05
            configure(&configuration)
            try await Gateway(configuration, environment: environment, clock: clock).withApplication { application in
                try await application.test(.router) { client in try await body(emulator, client) }
            }
        }
    }

    func edit(_ client: some TestClientProtocol, _ form: Multipart, headers: HTTPFields = [:]) async throws -> TestResponse {
        var all = headers
        all[.contentType] = form.contentType
        return try await client.execute(uri: "/v1/images/edits", method: .post, headers: all, body: form.body)
    }

    @Test("One image: PNG by default at the input's own size, cost as a header and in the body, one submission; private state")
    func oneImage() async throws {
        let input = try photo(640, 480)
        let state = stateFolder()
        try await withGateway(state: state) { emulator, client in
            var form = Multipart()
            form.file("image", input)
            form.field("prompt", "make it night")
            form.field("model", "runpod")
            let response = try await edit(client, form)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let results = try images(response)
            #expect(results.count == 1 && results[0].format == .png && results[0].displaySize == PixelSize(width: 640, height: 480))
            #expect(response.headers[HTTPField.Name("x-litellm-response-cost")!] == "0.02")
            let qie = object(response)["qie"] as? [String: Any]
            #expect(qie?["cost_usd"] as? String == "0.02" && qie?["endpoint"] as? String == "runpod-qwen-image-edit-2511")
            #expect(object(response)["size"] as? String == "640x480" && object(response)["output_format"] as? String == "png")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            #expect(!String(buffer: response.body).contains(endpointKey))
            // Prompts and images stay the user's: the state folder is 0700, its database 0600.
            func mode(_ path: String) throws -> Int {
                (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
            }
            #expect(try mode(state) == 0o700 && mode(state + "/files") == 0o700 && mode(state + "/gateway.sqlite") == 0o600)
        }
    }

    @Test("size is delivered exactly; output_format is asked of the endpoint that makes it and converted here for one that cannot")
    func sizeAndFormat() async throws {
        let input = try photo(800, 600)
        try await withGateway { emulator, client in
            var form = Multipart()
            form.file("image[]", input)
            form.field("prompt", "make it night")
            form.field("model", "runpod-qwen-image-edit-2511")
            form.field("size", "1024x1536")
            form.field("output_format", "webp")
            form.field("output_compression", "80")
            let response = try await edit(client, form)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let results = try images(response)
            #expect(results.map(\.format) == [.webp])
            #expect(results.first?.displaySize == PixelSize(width: 1024, height: 1536))
            // RunPod 2511 makes WebP itself: it is asked for it.
            let sent = emulator.bodies(sentTo: .runpodQwenImageEdit2511).map { String(decoding: $0, as: UTF8.self) }
            #expect(sent.count == 1 && sent[0].contains("\"output_format\":\"webp\""))
            let plan = (object(response)["qie"] as? [String: Any])?["plan"] as? [String: String]
            #expect(plan?["input"] == "1024x1536" && plan?["sent"] != "1024x1536")

            // The older RunPod endpoint makes PNG or JPEG only: WebP is made here.
            form = Multipart()
            form.file("image", input)
            form.field("prompt", "make it night")
            form.field("model", "runpod-edit")
            form.field("output_format", "webp")
            let converted = try await edit(client, form)
            #expect(converted.status == .ok, "\(String(buffer: converted.body))")
            #expect(try images(converted).map(\.format) == [.webp])
            let older = emulator.bodies(sentTo: .runpodQwenImageEdit).map { String(decoding: $0, as: UTF8.self) }
            #expect(older.count == 1 && !older[0].contains("webp"))
        }
    }

    @Test("n: the endpoint's count field where it has one, repeated requests where not; billed per image")
    func count() async throws {
        let input = try photo(320, 240)
        try await withGateway { emulator, client in
            for (model, profile, submissions) in [
                ("runpod", ProviderProfile.runpodQwenImageEdit2511, 3), ("lumenfall", .lumenfallQwenImageEdit2511, 1),
            ] {
                var form = Multipart()
                form.file("image", input)
                form.field("prompt", "three takes")
                form.field("model", model)
                form.field("n", "3")
                let response = try await edit(client, form)
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                #expect(try images(response).count == 3)
                #expect(emulator.submissions(to: profile) == submissions, "\(model)")
            }
        }
    }

    @Test("response_format=url: a link to the gateway that serves the image with its type until it expires; unknown ids are 404", arguments: StateKind.allCases)
    func urls(kind: StateKind) async throws {
        let input = try photo(300, 200)
        let clock = ManualClock(start: Date())
        try await withGateway(kind: kind, clock: clock, configure: { $0.fileLifetime = 2 }) { _, client in
            var form = Multipart()
            form.file("image", input)
            form.field("prompt", "x")
            form.field("response_format", "url")
            form.field("output_format", "jpeg")
            let response = try await edit(client, form)
            let data = object(response)["data"] as? [[String: Any]] ?? []
            guard let url = data.first?["url"] as? String, let path = URL(string: url)?.path else {
                Issue.record("no url in \(String(buffer: response.body))")
                return
            }
            #expect(path.hasPrefix("/v1/files/") && path.hasSuffix(".jpg"))
            let file = try await client.execute(uri: path, method: .get)
            #expect(file.status == .ok && file.headers[.contentType] == "image/jpeg")
            let info = try ImageProbe.probe(data: Data(buffer: file.body))
            #expect(info.format == .jpeg && info.displaySize == PixelSize(width: 300, height: 200))
            let missing = try await client.execute(uri: "/v1/files/" + String(repeating: "ab", count: 24) + ".jpg", method: .get)
            #expect(missing.status == .notFound && errorObject(missing)["code"] as? String == "file_not_found")
            // Past its lifetime by the gateway's clock.
            clock.advance(by: 2.5)
            let expired = try await client.execute(uri: path, method: .get)
            #expect(expired.status == .notFound && errorObject(expired)["code"] as? String == "file_not_found")
        }
    }

    @Test("Result files under a path of one's own choosing; a path that would shadow the API is refused")
    func filesPath() async throws {
        let input = try photo(120, 90)
        try await withGateway(configure: { $0.filesPath = "/results/qie"; $0.publicURL = "https://images.example.com" }) { _, client in
            let response = try await edit(client, multipart {
                $0.file("image", input)
                $0.field("prompt", "x")
                $0.field("response_format", "url")
            })
            let url = ((object(response)["data"] as? [[String: Any]])?.first?["url"] as? String) ?? ""
            #expect(url.hasPrefix("https://images.example.com/results/qie/") && url.hasSuffix(".png"), "\(url)")
            let file = try await client.execute(uri: String(url.dropFirst("https://images.example.com".count)), method: .get)
            #expect(file.status == .ok && file.headers[.contentType] == "image/png")
        }
        for bad in ["/v1/models", "results", "/results/", "/a/:id"] {
            var configuration = GatewayConfiguration(stateDirectory: stateFolder())
            configuration.filesPath = bad
            #expect(throws: GatewayConfigurationError.self, "\(bad)") { try configuration.validate() }
        }
    }

    @Test("Bad requests: each a 400 (or 404, 413) in OpenAI's shape naming the field, and nothing sent")
    func badRequests() async throws {
        let input = try photo(64, 48)
        try await withGateway(configure: { $0.maxBodyBytes = 256 << 10 }) { emulator, client in
            func form(_ build: (inout Multipart) -> Void) -> Multipart {
                var form = Multipart()
                build(&form)
                return form
            }
            let cases: [(String, Multipart, Int, String?)] = [
                ("missing prompt", form { $0.file("image", input) }, 400, "prompt"),
                ("no image", form { $0.field("prompt", "x") }, 400, "image"),
                ("empty file", form { $0.file("image", Data()); $0.field("prompt", "x") }, 400, "image"),
                ("text as image", form { $0.file("image", Data("hello, not a picture".utf8), filename: "a.png", type: "image/png"); $0.field("prompt", "x") }, 400, "image"),
                ("17 images", form { f in (0..<17).forEach { _ in f.file("image[]", input) }; f.field("prompt", "x") }, 400, "image"),
                ("4 images for 3", form { f in (0..<4).forEach { _ in f.file("image[]", input) }; f.field("prompt", "x") }, 400, "image"),
                ("n=0", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("n", "0") }, 400, "n"),
                ("n=11", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("n", "11") }, 400, "n"),
                ("size", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("size", "big") }, 400, "size"),
                ("response_format", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("response_format", "json") }, 400, "response_format"),
                ("output_format", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("output_format", "bmp") }, 400, "output_format"),
                ("transparent", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("background", "transparent") }, 400, "background"),
                ("partial images", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("partial_images", "2") }, 400, "partial_images"),
                ("unknown model", form { $0.file("image", input); $0.field("prompt", "x"); $0.field("model", "dall-e-2") }, 404, "model"),
                ("oversize", form { $0.file("image", Data(count: 300 << 10)); $0.field("prompt", "x") }, 413, nil),
            ]
            for (name, form, status, param) in cases {
                let response = try await edit(client, form)
                let error = errorObject(response)
                #expect(Int(response.status.code) == status, "\(name): \(String(buffer: response.body))")
                #expect(error["param"] as? String == param, "\(name)")
                #expect((error["message"] as? String)?.isEmpty == false && error["type"] is String, "\(name)")
            }
            // Not multipart at all.
            let json = try await client.execute(
                uri: "/v1/images/edits", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}"))
            #expect(json.status == .badRequest)
            #expect(ProviderCatalog.all.allSatisfy { emulator.submissions(to: $0) == 0 })

            // A field the edits endpoint does not have is refused by name, as OpenAI refuses it;
            // one no endpoint can honour is refused with its param; user and input_fidelity=low are taken.
            let refusals: [(String, String, String, String)] = [
                ("moderation", "low", "Unknown parameter: 'moderation'.", "unknown_parameter"),
                ("input_fidelity", "high", "input_fidelity=high cannot be honoured", "invalid_value"),
                ("input_fidelity", "medium", "input_fidelity must be high or low", "invalid_value"),
            ]
            for (field, value, message, code) in refusals {
                var extra = Multipart()
                extra.file("image", input)
                extra.field("prompt", "x")
                extra.field(field, value)
                let refused = try await edit(client, extra)
                #expect(refused.status == .badRequest, "\(field)=\(value): \(String(buffer: refused.body))")
                #expect(errorObject(refused)["param"] as? String == field && errorObject(refused)["code"] as? String == code)
                #expect((errorObject(refused)["message"] as? String)?.contains(message) == true, "\(String(buffer: refused.body))")
            }
            var unknownFile = Multipart()
            unknownFile.file("image", input)
            unknownFile.file("reference", input)
            unknownFile.field("prompt", "x")
            #expect(errorObject(try await edit(client, unknownFile))["param"] as? String == "reference")
            #expect(ProviderCatalog.all.allSatisfy { emulator.submissions(to: $0) == 0 })
            var taken = Multipart()
            taken.file("image", input)
            taken.field("prompt", "x")
            taken.field("user", "someone")
            taken.field("input_fidelity", "low")
            let accepted = try await edit(client, taken)
            #expect(accepted.status == .ok, "\(String(buffer: accepted.body))")
        }
    }

    @Test("Without keys, a request from a web page elsewhere (its Origin) is refused with 403 and nothing is sent; this machine's pages and programs are served")
    func localOnly() async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x") }
        try await withGateway { emulator, client in
            for origin in ["https://evil.example", "null", "http://127.0.0.1.evil.example"] {
                let refused = try await edit(client, form, headers: [.origin: origin])
                #expect(refused.status == .forbidden && errorObject(refused)["code"] as? String == "not_local", "\(origin)")
                #expect((errorObject(refused)["message"] as? String)?.contains("QIE_GATEWAY_KEYS") == true)
            }
            let models = try await client.execute(uri: "/v1/models", method: .get, headers: [.origin: "https://evil.example"])
            #expect(models.status == .forbidden)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)
            for origin in ["http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:5173"] {
                #expect(try await edit(client, form, headers: [.origin: origin]).status == .ok, "\(origin)")
            }
            #expect(try await edit(client, form).status == .ok)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 4)
        }
    }

    @Test("Gateway keys: none or a wrong one is 401; the right one works; the endpoint key never shows")
    func keys() async throws {
        let input = try photo(64, 48)
        try await withGateway(configure: { $0.keys = GatewayKey.keys(list: "alpha-key, beta-key") }) { _, client in
            var form = Multipart()
            form.file("image", input)
            form.field("prompt", "x")
            let none = try await edit(client, form)
            #expect(none.status == .unauthorized && errorObject(none)["code"] as? String == "invalid_api_key")
            let wrong = try await edit(client, form, headers: [.authorization: "Bearer gamma-key"])
            #expect(wrong.status == .unauthorized)
            let models = try await client.execute(uri: "/v1/models", method: .get)
            #expect(models.status == .unauthorized)
            let right = try await edit(client, form, headers: [.authorization: "Bearer beta-key"])
            #expect(right.status == .ok)
            for response in [none, wrong, right] { #expect(!String(buffer: response.body).contains(endpointKey)) }
        }
        // Anything but loopback without keys is refused before listening.
        var open = GatewayConfiguration(stateDirectory: stateFolder())
        open.host = "0.0.0.0"
        #expect(throws: GatewayConfigurationError.keysNeeded(host: "0.0.0.0")) { try open.validate() }
    }

    @Test("Idempotency-Key: a retry gets the first answer without a second submission, also after a restart", arguments: StateKind.allCases)
    func idempotency(kind: StateKind) async throws {
        let input = try photo(200, 150)
        let state = stateFolder()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let form = multipart { $0.file("image", input); $0.field("prompt", "once") }
        let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "edit-42"]
        let first = Mutex<String>("")
        try await withEmulator { emulator, environment in
            let configuration = try kind.configuration(folder: state)
            try await Gateway(configuration, environment: environment).withApplication { application in
                try await application.test(.router) { client in
                    // Two at once, then one more: one submission.
                    async let a = edit(client, form, headers: key)
                    async let b = edit(client, form, headers: key)
                    let (one, two) = try await (a, b)
                    let again = try await edit(client, form, headers: key)
                    #expect(one.status == .ok && two.status == .ok && again.status == .ok)
                    let data = { (r: TestResponse) in (object(r)["data"] as? [[String: Any]])?.first?["b64_json"] as? String }
                    #expect(data(one) != nil && data(one) == data(two) && data(two) == data(again))
                    first.withLock { $0 = data(one) ?? "" }
                    // The replay charged nothing: LiteLLM must not count it twice.
                    let cost = HTTPField.Name("x-litellm-response-cost")!
                    #expect(again.headers[cost] == "0" && (object(again)["qie"] as? [String: Any])?["replayed"] as? Bool == true)
                    #expect([one, two].compactMap { $0.headers[cost] }.sorted() == ["0", "0.02"])
                    #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
                    // Another key is another edit.
                    let other = try await edit(client, form, headers: [HTTPField.Name("Idempotency-Key")!: "edit-43"])
                    #expect(other.status == .ok && emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
                    // The same key for another request is refused, not answered with the first's images.
                    let changed = multipart { $0.file("image", input); $0.field("prompt", "something else") }
                    let reused = try await edit(client, changed, headers: key)
                    #expect(reused.status == .badRequest && errorObject(reused)["code"] as? String == "idempotency_key_reused")
                    #expect(reused.headers[HTTPField.Name("x-should-retry")!] == "false")
                    #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
                }
            }
            // A new gateway on the same state answers from the SQLite file (or the database).
            try await Gateway(configuration, environment: environment).withApplication { application in
                try await application.test(.router) { client in
                    let later = try await edit(client, form, headers: key)
                    let data = (object(later)["data"] as? [[String: Any]])?.first?["b64_json"] as? String
                    #expect(later.status == .ok && data == first.withLock { $0 })
                    #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
                }
            }
        }
    }

    @Test("32 clients sending one Idempotency-Key 100 times each, cheap failures first: none is stranded, one edit is paid, every success is its answer", .timeLimit(.minutes(5)), arguments: StateKind.allCases)
    func idempotencyStress(kind: StateKind) async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "once") }
        let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "stress-1"]
        try await withGateway(kind: kind, configure: { $0.concurrency = 4; $0.queueLimit = 64 }) { emulator, client in
            // The first three edits under the key are refused by the endpoint
            // (nothing billed: the key is given up and the next claims it).
            emulator.inject([.status(400), .status(400), .status(400)])
            let answers = try await withThrowingTaskGroup(of: [(HTTPResponse.Status, String?)].self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        var seen: [(HTTPResponse.Status, String?)] = []
                        for _ in 0..<100 {
                            let response = try await edit(client, form, headers: key)
                            seen.append((response.status, (object(response)["data"] as? [[String: Any]])?.first?["b64_json"] as? String))
                        }
                        return seen
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(answers.count == 3200)
            #expect(answers.filter { $0.0 == .badGateway }.count == 3, "\(Set(answers.map(\.0.code)))")
            let images = Set(answers.filter { $0.0 == .ok }.compactMap(\.1))
            #expect(answers.filter { $0.0 == .ok }.count == 3197 && images.count == 1)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 4)
        }
    }

    @Test("An Idempotency-Key is kept for the key lifetime: within it a retry is answered from the first edit, after it the key is new", arguments: StateKind.allCases)
    func keyLifetime(kind: StateKind) async throws {
        let input = try photo(96, 64)
        let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "short-lived"]
        let first = multipart { $0.file("image", input); $0.field("prompt", "first") }
        let clock = ManualClock(start: Date())
        try await withGateway(kind: kind, clock: clock, configure: { $0.keyLifetime = 1 }) { emulator, client in
            #expect(try await edit(client, first, headers: key).status == .ok)
            let replayed = try await edit(client, first, headers: key)
            #expect(replayed.headers[HTTPField.Name("x-litellm-response-cost")!] == "0")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            // Past the lifetime, and a sweep (every half lifetime): the key and
            // the request it stood for are forgotten, so another request may use it.
            await clock.waitForSleepers(1)  // the sweeper, between sweeps
            clock.advance(by: 2)
            await clock.waitForSleepers(1)  // asleep again: its sweep is done
            let other = multipart { $0.file("image", input); $0.field("prompt", "second") }
            let again = try await edit(client, other, headers: key)
            #expect(again.status == .ok, "\(String(buffer: again.body))")
            #expect(again.headers[HTTPField.Name("x-litellm-response-cost")!] == "0.02")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
        }
    }

    @Test("A daily budget refuses with 429 and what was spent; a full queue is 429 with retry-after", arguments: StateKind.allCases)
    func limits(kind: StateKind) async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x") }
        try await withGateway(kind: kind, configure: { $0.maxCostPerDay = Decimal(string: "0.03") }) { emulator, client in
            let first = try await edit(client, form)
            #expect(first.status == .ok)
            let second = try await edit(client, form)
            #expect(second.status == .tooManyRequests, "\(String(buffer: second.body))")
            #expect(errorObject(second)["type"] as? String == "insufficient_quota")
            #expect((errorObject(second)["message"] as? String)?.contains("$0.03") == true)
            #expect(second.headers[.retryAfter].flatMap(Int.init) != nil)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
        }
        try await withGateway(configure: { $0.concurrency = 1; $0.queueLimit = 0 }) { emulator, client in
            // The first edit holds the only place until the endpoint answers it.
            emulator.hold()
            async let a = edit(client, form)
            await emulator.waitForSubmissions(1, to: .runpodQwenImageEdit2511)
            let b = try await edit(client, form)
            emulator.release()
            let one = try await a
            #expect(one.status == .ok)
            #expect(b.status == .tooManyRequests && errorObject(b)["code"] as? String == "gateway_queue_full")
            #expect(b.headers[.retryAfter] == "1")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
        }
    }

    @Test("A daily budget of $0.03 behind an endpoint that answers and loses every result sends one $0.02 edit: it stays spent, and the log shows it", arguments: StateKind.allCases)
    func lostResultsStaySpent(kind: StateKind) async throws {
        let input = try photo(64, 48)
        let form = multipart { $0.file("image", input); $0.field("prompt", "x"); $0.field("user", "ann@example.com") }
        let log = CapturedLog()
        let state = stateFolder()
        defer { try? FileManager.default.removeItem(atPath: state) }
        try await withEmulator { emulator, environment in
            // Every answer's result link is dead by the time it is fetched.
            emulator.inject(Array(repeating: .expiredResult, count: 5))
            var configuration = try kind.configuration(folder: state)
            configuration.maxCostPerDay = Decimal(string: "0.03")
            try await Gateway(configuration, environment: environment, logger: log.logger).withApplication { application in
                try await application.test(.router) { client in
                    var statuses: [HTTPResponse.Status] = []
                    for _ in 0..<5 { statuses.append(try await edit(client, form).status) }
                    #expect(statuses == [.badGateway] + Array(repeating: .tooManyRequests, count: 4), "\(statuses)")
                    #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
                }
            }
            // The lost edit's money is the day's: a new gateway on the same state refuses too.
            try await Gateway(configuration, environment: environment).withApplication { application in
                try await application.test(.router) { client in
                    let again = try await edit(client, form)
                    #expect(again.status == .tooManyRequests, "\(String(buffer: again.body))")
                    #expect((errorObject(again)["message"] as? String)?.contains("$0.02 spent") == true, "\(String(buffer: again.body))")
                    #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
                }
            }
        }
        let lines = log.all
        #expect(lines.first?.contains("outcome=502 endpoint_result_lost") == true && lines.first?.contains("cost_usd=0.02") == true, "\(lines)")
        #expect(lines.allSatisfy { $0.contains("user=ann@example.com") }, "\(lines)")
    }

    @Test("Endpoint failures: its message in a 502 marked not to retry; its rate limit as a 429 with retry-after")
    func endpointFailures() async throws {
        let form = multipart { $0.file("image", try! photo(64, 48)); $0.field("prompt", "x") }
        try await withGateway { emulator, client in
            emulator.inject([.jobFailure("content flagged by the safety checker")])
            let failed = try await edit(client, form)
            #expect(failed.status == .badGateway, "\(String(buffer: failed.body))")
            #expect((errorObject(failed)["message"] as? String)?.contains("content flagged by the safety checker") == true)
            #expect(failed.headers[HTTPField.Name("x-should-retry")!] == "false")
            #expect(!String(buffer: failed.body).contains(endpointKey))

            emulator.inject(Array(repeating: .tooManyRequests(retryAfter: 0), count: 4))
            let limited = try await edit(client, form)
            #expect(limited.status == .tooManyRequests, "\(String(buffer: limited.body))")
            #expect(errorObject(limited)["code"] as? String == "endpoint_rate_limited" && limited.headers[.retryAfter] != nil)
            #expect(limited.headers[HTTPField.Name("x-should-retry")!] == nil)
        }
    }

    @Test("stream=true: one image_edit.completed event per image, as server-sent events")
    func stream() async throws {
        let form = multipart { $0.file("image", try! photo(64, 48)); $0.field("prompt", "x"); $0.field("n", "2"); $0.field("stream", "true") }
        try await withGateway { _, client in
            let response = try await edit(client, form)
            #expect(response.status == .ok && response.headers[.contentType] == "text/event-stream")
            let blocks = String(buffer: response.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }
            // Comment lines (the first, and keep-alives) are what SSE clients skip.
            #expect(blocks.first == ": qie is editing")
            let events = blocks.filter { !$0.hasPrefix(":") }
            #expect(events.count == 2)
            for event in events {
                let lines = event.split(separator: "\n")
                #expect(lines.first == "event: image_edit.completed")
                let json = lines.last.map { String($0.dropFirst("data: ".count)) } ?? ""
                let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
                #expect(object?["type"] as? String == "image_edit.completed")
                let bytes = (object?["b64_json"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
                #expect((try? ImageProbe.probe(data: bytes))?.format == .png)
            }
        }
    }

    @Test("mask: the edit where the mask is clear, the input where it is opaque, also at a size of another shape; an unusable mask is a 400 before sending")
    func mask() async throws {
        let input = try photo(160, 120)
        // Opaque on the left half (keep), clear on the right (edit).
        var rgba: [UInt8] = []
        for _ in 0..<120 {
            for x in 0..<160 { rgba += [0, 0, 0, x < 80 ? 255 : 0] }
        }
        let mask = try Image(pixels: rgba, size: PixelSize(width: 160, height: 120), channels: 4).encoded(EncodeOptions(format: .png))
        try await withGateway(effect: .negative) { emulator, client in
            let form = multipart {
                $0.file("image", input)
                $0.file("mask", mask, filename: "mask.png")
                $0.field("prompt", "invert the right half")
                $0.field("model", "runpod")
            }
            let response = try await edit(client, form)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let item = (object(response)["data"] as? [[String: Any]])?.first?["b64_json"] as? String
            let result = try Image.decode(data: try #require(item.flatMap { Data(base64Encoded: $0) }))
            let original = try Image.decode(data: input)
            #expect(result.size == original.size)
            for (x, y) in [(10, 10), (40, 60), (70, 110)] {
                let kept = try result.pixel(x: x, y: y), source = try original.pixel(x: x, y: y)
                #expect(zip(kept, source).allSatisfy { abs(Int($0) - Int($1)) <= 3 }, "kept at \(x),\(y): \(kept) vs \(source)")
            }
            for (x, y) in [(100, 10), (130, 60), (150, 110)] {
                let edited = try result.pixel(x: x, y: y), source = try original.pixel(x: x, y: y)
                #expect(zip(edited, source).allSatisfy { abs(Int($0) - (255 - Int($1))) <= 24 }, "edited at \(x),\(y): \(edited) vs \(source)")
            }

            // A size of another shape (2:1 for a 4:3 input): the input and
            // the mask are fitted into the frame the same way (contain:
            // 160x120 at x 40...199); the frame's padding is edited.
            let framed = try await edit(client, multipart {
                $0.file("image", input)
                $0.file("mask", mask, filename: "mask.png")
                $0.field("prompt", "invert the right half")
                $0.field("size", "240x120")
            })
            #expect(framed.status == .ok, "\(String(buffer: framed.body))")
            let framedItem = (object(framed)["data"] as? [[String: Any]])?.first?["b64_json"] as? String
            let framedResult = try Image.decode(data: try #require(framedItem.flatMap { Data(base64Encoded: $0) }))
            #expect(framedResult.size == PixelSize(width: 240, height: 120))
            for (x, y) in [(50, 10), (80, 60), (110, 110)] {
                let kept = try framedResult.pixel(x: x, y: y), source = try original.pixel(x: x - 40, y: y)
                #expect(zip(kept, source).allSatisfy { abs(Int($0) - Int($1)) <= 6 }, "kept at \(x),\(y): \(kept) vs \(source)")
            }
            for (x, y) in [(140, 10), (170, 60), (190, 110)] {
                let edited = try framedResult.pixel(x: x, y: y), source = try original.pixel(x: x - 40, y: y)
                #expect(zip(edited, source).allSatisfy { abs(Int($0) - (255 - Int($1))) <= 24 }, "edited at \(x),\(y): \(edited) vs \(source)")
            }
            for (x, y) in [(10, 60), (230, 60)] {  // white padding, edited: black
                let padding = try framedResult.pixel(x: x, y: y)
                #expect(padding.prefix(3).allSatisfy { $0 <= 24 }, "padding at \(x),\(y): \(padding)")
            }

            // A mask without alpha, or of another shape: refused, nothing sent.
            for (name, bad) in [("no alpha", try photo(160, 120)), ("shape", try photo(100, 100))] {
                let refused = try await edit(client, multipart {
                    $0.file("image", input)
                    $0.file("mask", bad, filename: "mask.jpg")
                    $0.field("prompt", "x")
                })
                #expect(refused.status == .badRequest && errorObject(refused)["param"] as? String == "mask", "\(name): \(String(buffer: refused.body))")
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
        }
    }

    @Test("A release named as the model is routed to its cheapest offered endpoint, and to the next when that one refuses before taking it")
    func routedModel() async throws {
        let input = try photo(320, 240)
        try await withGateway(configure: { $0.models = ["runflow", "runpod"] }) { emulator, client in
            var form = Multipart()
            form.file("image", input)
            form.field("prompt", "make it night")
            form.field("model", "qwen-image-edit-2511")
            // RunPod's $0.02 an image is cheaper than Runflow's $0.03 a megapixel here.
            let first = try await edit(client, form)
            #expect(first.status == .ok, "\(String(buffer: first.body))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1 && emulator.submissions(to: .runflowQwenImageEdit2511) == 0)
            #expect((object(first)["qie"] as? [String: Any])?["endpoint"] as? String == "runpod-qwen-image-edit-2511")

            // Refused by RunPod before it took the request: nothing billed there, sent to Runflow.
            emulator.inject([.status(422)])
            let second = try await edit(client, form)
            #expect(second.status == .ok, "\(String(buffer: second.body))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2 && emulator.submissions(to: .runflowQwenImageEdit2511) == 1)
            let qie = object(second)["qie"] as? [String: Any]
            #expect(qie?["endpoint"] as? String == "runflow-qwen-image-edit-2511", "\(String(buffer: second.body))")

            // A 500 may have been billed: no second endpoint is paid.
            emulator.inject([.status(500)])
            let third = try await edit(client, form)
            #expect(third.status.code >= 500, "\(String(buffer: third.body))")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 3 && emulator.submissions(to: .runflowQwenImageEdit2511) == 1)
        }
    }

    @Test("GET /v1/models lists the offered endpoints in OpenAI's list shape, the default first, then each release they run")
    func models() async throws {
        try await withGateway(configure: { $0.models = ["lumenfall", "runpod"] }) { _, client in
            let response = try await client.execute(uri: "/v1/models", method: .get)
            let list = object(response)
            #expect(list["object"] as? String == "list")
            let data = list["data"] as? [[String: Any]] ?? []
            let ids = data.compactMap { $0["id"] as? String }
            #expect(ids == ["lumenfall-qwen-image-edit-2511", "runpod-qwen-image-edit-2511", "qwen-image-edit-2511"])
            #expect(data.last?["endpoints"] as? [String] == ["lumenfall-qwen-image-edit-2511", "runpod-qwen-image-edit-2511"])
            #expect(data.last?["route"] as? String == "cheapest")
            let release = try await client.execute(uri: "/v1/models/qwen-image-edit-2511", method: .get)
            #expect(object(release)["id"] as? String == "qwen-image-edit-2511")
            let one = try await client.execute(uri: "/v1/models/runpod", method: .get)
            #expect(object(one)["id"] as? String == "runpod-qwen-image-edit-2511")
            let other = try await client.execute(uri: "/v1/models/oxen", method: .get)
            #expect(other.status == .notFound)
        }
    }
}
