import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QieTestSupport
import Testing

/// An HTTP answer: status, headers (lower-cased names) and body.
struct HTTPAnswer {
    var status: Int
    var headers: [String: String]
    var body: Data

    /// The body as a JSON object.
    var object: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
    /// The OpenAI-style error object.
    var error: [String: Any] { object["error"] as? [String: Any] ?? [:] }
    /// The first image's `b64_json` or `url`.
    var first: [String: Any] { (object["data"] as? [[String: Any]])?.first ?? [:] }
}

/// Sends `request` and waits (up to a minute) for the whole answer.
func send(_ request: URLRequest) async throws -> HTTPAnswer {
    try await withCheckedThrowingContinuation { continuation in
        var timed = request
        timed.timeoutInterval = 60
        URLSession.shared.dataTask(with: timed) { data, response, error in
            guard let response = response as? HTTPURLResponse else {
                continuation.resume(throwing: error ?? URLError(.badServerResponse))
                return
            }
            var headers: [String: String] = [:]
            for (name, value) in response.allHeaderFields {
                headers["\(name)".lowercased()] = "\(value)"
            }
            continuation.resume(returning: HTTPAnswer(status: response.statusCode, headers: headers, body: data ?? Data()))
        }.resume()
    }
}

@Suite("Gateway replicas share idempotency keys, result files and the day's budget through PostgreSQL", .serialized)
struct GatewayReplicasCLITests {
    static let gatewayKey = "replica-gateway-key"

    /// An edit request for `gateway` with the image and fields given.
    func edit(_ gateway: GatewayProcess, image: Data, key: String? = nil, format: String = "b64_json") -> URLRequest {
        let form = multipart { form in
            form.file("image", image)
            form.field("prompt", "make it night")
            form.field("model", "runpod-qwen-image-edit-2511")
            form.field("response_format", format)
        }
        var request = URLRequest(url: URL(string: gateway.address + "/v1/images/edits")!)
        request.httpMethod = "POST"
        request.setValue(form.contentType, forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(Self.gatewayKey)", forHTTPHeaderField: "Authorization")
        if let key { request.setValue(key, forHTTPHeaderField: "Idempotency-Key") }
        request.httpBody = form.bytes
        return request
    }

    @Test("Two qie serve replicas on one store: a retry on the other replica sends nothing, a url works on both, a killed replica's edit is not sent again, one budget")
    func twoReplicas() async throws {
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try writeImage(640, 480, to: work + "/photo.jpg")
        let image = try Data(contentsOf: URL(fileURLWithPath: work + "/photo.jpg"))
        let state = try PostgresServer.newDatabase()
        // Each submission is logged as it arrives (its drawn latency), and
        // answered a second later; the fourth is answered only after ten
        // minutes, so its replica is killed while it is at the endpoint,
        // whatever the machine is doing.
        let emulator = try EmulatorProcess(
            latency: 1, latencyMax: 1.1, faults: ["normal", "normal", "normal", "delayed:600"])
        let arrived = "latency 600."
        let submitted = "POST /v2/qwen-image-edit-2511/runsync -> "
        let environment = [
            "QIE_GATEWAY_KEYS": Self.gatewayKey, "RUNPOD_API_KEY": "cli-key", "QIE_RUNPOD_BASE_URL": emulator.address,
        ]
        // Five edits at $0.02 would pass $0.09: the fifth is refused, on whichever replica.
        let arguments = ["--provider", "runpod-qwen-image-edit-2511", "--state", state, "--lease", "2", "--max-cost-per-day", "0.09"]
        let first = try GatewayProcess(serving: arguments + ["--log-format", "json"], environment: environment)
        let second = try GatewayProcess(serving: arguments + ["--log-format", "json"], environment: environment)
        #expect(first.output.contains("state: postgres://qie@127.0.0.1"), "\(first.output)")
        let password = try #require(URLComponents(string: state)?.password)
        #expect(!first.output.contains(password) && !second.output.contains(password))

        // An Idempotency-Key answered on one replica and retried on the other: the same images, nothing sent again.
        let answered = try await send(edit(first, image: image, key: "retry-1"))
        #expect(answered.status == 200, "\(String(decoding: answered.body, as: UTF8.self))")
        #expect(await emulator.waitingForLog(submitted, count: 1, seconds: 300))
        let retried = try await send(edit(second, image: image, key: "retry-1"))
        #expect(retried.status == 200 && retried.headers["x-litellm-response-cost"] == "0")
        #expect(retried.first["b64_json"] as? String == answered.first["b64_json"] as? String && answered.first["b64_json"] != nil)
        #expect(emulator.count(of: submitted) == 1, "\(emulator.output)")
        #expect(await second.waitingForLog("\"outcome\":\"200 replayed\"", seconds: 300), "\(second.output)")

        // The same key on both replicas at once: one edit, and both get its answer.
        let toFirst = edit(first, image: image, key: "together-1"), toSecond = edit(second, image: image, key: "together-1")
        async let left = send(toFirst)
        async let right = send(toSecond)
        let (one, other) = try await (left, right)
        #expect(one.status == 200 && other.status == 200)
        #expect(one.first["b64_json"] as? String == other.first["b64_json"] as? String)
        #expect(emulator.count(of: submitted) == 2, "\(emulator.output)")

        // A result asked for as a URL on one replica is downloaded from the other.
        let linked = try await send(edit(first, image: image, format: "url"))
        let link = try #require(linked.first["url"] as? String, "\(String(decoding: linked.body, as: UTF8.self))")
        #expect(link.hasPrefix(first.address + "/v1/files/"))
        let path = String(link.dropFirst(first.address.count))
        let fetched = try await send(URLRequest(url: URL(string: second.address + path)!))
        #expect(fetched.status == 200 && fetched.headers["content-type"] == "image/png")
        #expect(fetched.body.starts(with: [0x89, 0x50, 0x4E, 0x47]) && fetched.body.count > 1000)
        #expect(try await send(URLRequest(url: URL(string: first.address + path)!)).body == fetched.body)
        #expect(emulator.count(of: submitted) == 3)

        // A replica killed while its edit is at the endpoint: the retry on the
        // other replica waits out the lease and answers that the endpoint may
        // have charged, without sending again.
        let cut = edit(first, image: image, key: "killed-1")
        let doomed = Task { try? await send(cut) }
        #expect(await emulator.waitingForLog(arrived, count: 1, seconds: 300), "\(emulator.output)")
        kill(first.process.processIdentifier, SIGKILL)
        let killed = first.process
        await offThePool { killed.waitUntilExit() }
        _ = await doomed.value
        let afterKill = try await send(edit(second, image: image, key: "killed-1"))
        #expect(afterKill.status == 502 && afterKill.headers["x-should-retry"] == "false", "\(afterKill.status) \(afterKill.error)")
        #expect((afterKill.error["message"] as? String)?.contains("may have charged") == true, "\(afterKill.error)")
        // Four submissions arrived; the fourth is still at the endpoint.
        #expect(emulator.count(of: "latency ") == 4 && emulator.count(of: submitted) == 3, "\(emulator.output)")

        // One budget: four edits spent or in flight across both replicas ($0.08);
        // the fifth would pass $0.09 and is refused before anything is sent.
        let refused = try await send(edit(second, image: image))
        #expect(refused.status == 429 && refused.error["code"] as? String == "gateway_budget_reached", "\(refused.error)")
        #expect(emulator.count(of: "latency ") == 4)

        // The endpoint key never reached a client or a log line.
        for answer in [answered, retried, one, other, linked, afterKill, refused] {
            #expect(!String(decoding: answer.body, as: UTF8.self).contains("cli-key"))
        }
        #expect(!first.output.contains("cli-key") && !second.output.contains("cli-key"))
    }
}
