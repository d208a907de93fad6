import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QieImaging
import Testing

/// `qie serve` on a free port in the background for a test.
final class GatewayProcess: QieServer {
    init(serving arguments: [String], environment: [String: String]) throws {
        try super.init(["serve", "--port", "0"] + arguments, environment: environment)
    }
}

@Suite("qie serve with the real OpenAI Python SDK", .serialized)
struct GatewaySDKTests {
    /// The repository's root, from this file's place in it.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test("openai.images.edit against qie serve over qie emulate: images, lists, n, url, formats, sizes, errors, idempotency")
    func sdk() throws {
        let python = Self.root + "/.build/openai-sdk/bin/python"
        try #require(
            FileManager.default.isExecutableFile(atPath: python),
            "the OpenAI SDK is not installed: run scripts/ensure-openai-sdk.sh (make test does)")
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try FileManager.default.createDirectory(atPath: work + "/images", withIntermediateDirectories: true)
        try writeImage(800, 600, to: work + "/images/wide.jpg")
        try writeImage(480, 640, to: work + "/images/tall.png", format: .png)

        let emulator = try EmulatorProcess(effect: "negative")
        var environment: [String: String] = ["QIE_GATEWAY_KEYS": "sdk-gateway-key"]
        for (key, base) in [
            ("RUNPOD_API_KEY", "QIE_RUNPOD_BASE_URL"), ("RUNFLOW_API_KEY", "QIE_RUNFLOW_BASE_URL"),
            ("OXEN_API_KEY", "QIE_OXEN_BASE_URL"), ("LUMENFALL_API_KEY", "QIE_LUMENFALL_BASE_URL"),
        ] {
            environment[key] = "cli-key"
            environment[base] = emulator.address
        }
        let gateway = try GatewayProcess(serving: ["--state", work + "/state"], environment: environment)

        let (status, printed) = try runToEnd(
            python, [Self.root + "/Tests/QieCLITests/OpenAISDK/check_gateway.py"],
            environment: [
                "QIE_GATEWAY_URL": gateway.address, "QIE_GATEWAY_KEY": "sdk-gateway-key", "QIE_ENDPOINT_KEY": "cli-key",
                "QIE_IMAGES": work + "/images", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin",
            ])
        #expect(status == 0, "\(printed)\n--- qie serve:\n\(gateway.output)")
        let names = [
            "one image", "list of one", "three images", "n=3", "url", "webp converted", "size 1024x1536", "errors", "idempotency",
            "stream", "mask", "models",
        ]
        for name in names {
            #expect(printed.contains("ok \(name)\n"), "\(name) did not pass:\n\(printed)")
        }

        // The idempotent retry sent nothing: every runsync submission is accounted for.
        // one image, list of one, n=3 (3), url, size, first of the retried pair, stream n=2 (2), mask = 11 on RunPod 2511.
        let submissions = emulator.count(of: "POST /v2/qwen-image-edit-2511/runsync -> 200")
        #expect(submissions == 11, "RunPod 2511 received \(submissions) submissions")

        // The log: one line per request, the client's key id, never a key or image bytes.
        let log = gateway.output
        #expect(log.contains("key=key-") && log.contains("outcome=200") && log.contains("outcome=\"401 invalid_api_key\""))
        #expect(!log.contains("cli-key") && !log.contains("sdk-gateway-key"))
        // No image bytes: no word in the log is anywhere near an image's length.
        let longest = log.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(\.count).max() ?? 0
        #expect(longest < 200, "a \(longest)-character word in the log")
    }

    @Test("qie serve refuses a public address without keys, and logs JSON lines with --log-format json")
    func startAndLog() throws {
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let refused = try QieBinary.run(["serve", "--host", "0.0.0.0", "--port", "0", "--state", work + "/state"])
        #expect(refused.status != 0 && refused.stderr.contains("without client keys") && refused.stderr.contains("QIE_GATEWAY_KEYS"))

        let gateway = try GatewayProcess(
            serving: ["--state", work + "/state", "--log-format", "json"], environment: ["QIE_GATEWAY_KEYS": "json-log-key"])
        var request = URLRequest(url: URL(string: gateway.address + "/v1/images/edits")!)
        request.httpMethod = "POST"
        request.setValue("multipart/form-data; boundary=x", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data("--x--\r\n".utf8)
        let done = DispatchSemaphore(value: 0)
        let status = StatusBox()
        URLSession.shared.dataTask(with: request) { _, response, _ in
            status.value = (response as? HTTPURLResponse)?.statusCode ?? 0
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 300)  // a guard: the answer is the event
        #expect(status.value == 401)
        #expect(gateway.waitForLog("\"outcome\":\"401 invalid_api_key\""), "\(gateway.output)")
        let line = gateway.output.split(separator: "\n").first { $0.hasPrefix("{") && $0.contains("outcome") }
        let object = line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        #expect(object?["message"] == "POST /v1/images/edits" && object?["request"]?.hasPrefix("req_") == true)
    }

    @Test("Without keys, qie serve refuses a request addressed to another name (a DNS-rebound page) with 403")
    func reboundName() async throws {
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let gateway = try GatewayProcess(serving: ["--state", work + "/state"], environment: [:])
        let port = try #require(URL(string: gateway.address)?.port)
        var rebound = URLRequest(url: URL(string: gateway.address + "/v1/models")!)
        rebound.setValue("rebound.example:\(port)", forHTTPHeaderField: "Host")
        let refused = try await send(rebound)
        #expect(refused.status == 403 && refused.error["code"] as? String == "not_local", "\(refused.status) \(refused.error)")
        #expect((refused.error["message"] as? String)?.contains("rebound.example") == true)
        var local = URLRequest(url: URL(string: gateway.address + "/v1/models")!)
        local.setValue("localhost:\(port)", forHTTPHeaderField: "Host")
        #expect(try await send(local).status == 200)
        #expect(try await send(URLRequest(url: URL(string: gateway.address + "/v1/models")!)).status == 200)
    }
}

/// A status code set from a URLSession callback.
final class StatusBox: @unchecked Sendable {
    var value = 0
}
