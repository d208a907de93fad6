import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QieTestSupport
import Testing

/// `qie serve` as an operator stops it: on SIGTERM or SIGINT it stops taking
/// requests, lets the edits in flight finish, closes its state, and exits.
@Suite("qie serve shuts down gracefully", .serialized)
struct GatewayLifecycleCLITests {
    @Test("SIGTERM or SIGINT while an edit is at the endpoint: the edit finishes and is answered, the gateway exits 0, its state kept", arguments: [SIGTERM, SIGINT])
    func gracefulShutdown(signal: Int32) async throws {
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try writeImage(160, 120, to: work + "/photo.jpg")
        let image = try Data(contentsOf: URL(fileURLWithPath: work + "/photo.jpg"))
        // Each submission is logged as it arrives and answered four seconds later.
        let emulator = try EmulatorProcess(latency: 4, latencyMax: 4.01)
        let gateway = try GatewayProcess(
            serving: ["--provider", "runpod-qwen-image-edit-2511", "--state", work + "/state"],
            environment: ["RUNPOD_API_KEY": "cli-key", "QIE_RUNPOD_BASE_URL": emulator.address])
        let form = multipart { form in
            form.file("image", image)
            form.field("prompt", "make it night")
        }
        var request = URLRequest(url: URL(string: gateway.address + "/v1/images/edits")!)
        request.httpMethod = "POST"
        request.setValue(form.contentType, forHTTPHeaderField: "Content-Type")
        request.setValue("edit-in-flight", forHTTPHeaderField: "Idempotency-Key")
        request.httpBody = form.bytes
        let inFlight = request
        async let answer = send(inFlight)
        // Stopped once the edit is at the endpoint (an event, not a moment).
        #expect(await emulator.waitingForLog("latency 4.", count: 1, seconds: 120), "\(emulator.output)\n--- gateway:\n\(gateway.output)")
        kill(gateway.process.processIdentifier, signal)
        let answered = try await answer
        #expect(answered.status == 200, "\(String(decoding: answered.body, as: UTF8.self))")
        #expect(answered.first["b64_json"] != nil)
        let stopped = gateway.process
        await offThePool { stopped.waitUntilExit() }
        #expect(gateway.process.terminationReason == .exit && gateway.process.terminationStatus == 0, "\(gateway.output)")
        #expect(gateway.output.contains("outcome=200"), "\(gateway.output)")

        // Its state kept the answer: a new gateway replays it, sending nothing.
        let again = try GatewayProcess(
            serving: ["--provider", "runpod-qwen-image-edit-2511", "--state", work + "/state"],
            environment: ["RUNPOD_API_KEY": "cli-key", "QIE_RUNPOD_BASE_URL": emulator.address])
        request.url = URL(string: again.address + "/v1/images/edits")!
        let replayed = try await send(request)
        #expect(replayed.status == 200 && replayed.headers["x-litellm-response-cost"] == "0")
        #expect(emulator.count(of: "POST /v2/qwen-image-edit-2511/runsync -> 200") == 1)
    }
}
