import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QieImaging
import Testing

/// The real LiteLLM proxy (.build/litellm, scripts/ensure-litellm.sh) on a
/// free port of 127.0.0.1, with a configuration file: its address is the one
/// uvicorn announces once it listens.
final class LiteLLMProxy: @unchecked Sendable {
    static let executable = GatewaySDKTests.root + "/.build/litellm/bin/litellm"
    /// Starts the proxy with no signal blocked: a process started from the
    /// tests inherits their threads' mask, where SIGTERM is blocked, and
    /// the proxy would never see the one that stops it.
    static let unblocked = "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])"

    let process = Process()
    private let log = OutputLog()
    private let exited = DispatchSemaphore(value: 0)
    private(set) var address = ""

    /// Starts the proxy on `config`, and waits until it listens and answers
    /// its liveness route. `environment` is all it gets besides PATH and a
    /// HOME of its own: no setting of the machine's (a database URL, a
    /// proxy) changes what is tested. Every file LiteLLM would otherwise
    /// fetch at start (its cost map, blog posts...) is read from the package.
    init(config: String, home: String, environment: [String: String]) throws {
        process.executableURL = URL(fileURLWithPath: GatewaySDKTests.root + "/.build/litellm/bin/python")
        process.arguments = ["-c", Self.unblocked, Self.executable, "--config", config, "--host", "127.0.0.1", "--port", "0"]
        process.environment = environment.merging([
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": home,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOCAL_BLOG_POSTS": "True", "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
            "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True", "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True", "NO_COLOR": "1",
        ]) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        log.read([out.fileHandleForReading, err.fileHandleForReading])
        // uvicorn says where it listens once the application has started;
        // the proxy ending first (both its outputs closed) is the other event.
        let announced = /Uvicorn running on (http:\/\/127\.0\.0\.1:[0-9]+)/
        address =
            log.wait(seconds: 300) { printed, ended in
                printed.firstMatch(of: announced).map { String($0.1) } ?? (ended ? "" : nil)
            } ?? ""
        guard !address.isEmpty else {
            throw ServerStartError(description: "the LiteLLM proxy did not start:\n\(output.suffix(3000))")
        }
        // Listening, and answering: each try waits for the proxy's answer, at most 20 tries.
        var live = false
        for _ in 0..<20 where !live { live = Self.status(of: address + "/health/liveliness") == 200 }
        guard live else {
            throw ServerStartError(description: "the LiteLLM proxy at \(address) does not answer:\n\(output.suffix(3000))")
        }
    }

    /// What the proxy printed so far.
    var output: String { log.text }

    /// The status of a GET, or 0 when the connection failed.
    static func status(of url: String) -> Int {
        let done = DispatchSemaphore(value: 0)
        let status = StatusBox()
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 30
        URLSession.shared.dataTask(with: request) { _, response, _ in
            status.value = (response as? HTTPURLResponse)?.statusCode ?? 0
            done.signal()
        }.resume()
        done.wait()
        return status.value
    }

    deinit {
        // Stopped as Ctrl-C or a service manager stops it; its exit is the
        // event, and a proxy still running a minute later is killed.
        if process.isRunning { process.terminate() }
        if exited.wait(timeout: .now() + 60) == .timedOut && process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }
}

@Suite("qie serve behind a real LiteLLM proxy", .serialized)
struct LiteLLMProxyTests {
    /// The model_list lines of `yaml`, each entry's model_name in order.
    static func modelNames(_ yaml: String) -> [String] {
        yaml.split(separator: "\n").compactMap { line in
            line.hasPrefix("  - model_name: ") ? String(line.dropFirst("  - model_name: ".count)) : nil
        }
    }

    @Test("qie serve --litellm-config prints the model_list of the gateway its options start and exits; qie providers --litellm-config the default gateway's")
    func printedConfig() throws {
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let keys = ["QIE_GATEWAY_KEYS": "printed-gateway-secret"]
        let printed = try QieBinary.run(
            ["serve", "--litellm-config", "--port", "8123", "--provider", "runpod", "--provider", "fal-edit", "--state", work + "/state"],
            environment: keys)
        #expect(printed.status == 0, "\(printed.stderr)")
        #expect(
            Self.modelNames(printed.stdout) == ["runpod-qwen-image-edit-2511", "fal-qwen-image-edit", "qwen-image-edit", "qwen-image-edit-2511"],
            "\(printed.stdout)")
        #expect(printed.stdout.contains("      model: openai/fal-qwen-image-edit\n      api_base: \"http://127.0.0.1:8123/v1\"\n"))
        #expect(printed.stdout.components(separatedBy: "      api_key: os.environ/QIE_GATEWAY_KEY\n").count == 5)
        #expect(printed.stdout.components(separatedBy: "      num_retries: 0\n").count == 5)
        #expect(printed.stdout.contains("  # $0.03 per output megapixel (or $0.03 per image, another reading)\n  - model_name: fal-qwen-image-edit\n"))
        #expect(!printed.stdout.contains("printed-gateway-secret") && !printed.stderr.contains("printed-gateway-secret"))
        // Printing starts nothing: no state folder was made.
        #expect(!FileManager.default.fileExists(atPath: work + "/state"))

        // The public URL, for a gateway on every address behind a proxy; a price of your own.
        let behind = try QieBinary.run(
            ["serve", "--litellm-config", "--host", "0.0.0.0", "--port", "0", "--public-url", "https://images.example.com", "--provider", "oxen",
             "--price-per-image", "0.05", "--timeout", "300"],
            environment: keys)
        #expect(behind.status == 0, "\(behind.stderr)")
        #expect(behind.stdout.contains("      api_base: \"https://images.example.com/v1\"\n      api_key: os.environ/QIE_GATEWAY_KEY\n"))
        #expect(behind.stdout.contains("  # $0.05 per image (set by you)\n  - model_name: oxen-qwen-image-edit-2511\n"))
        #expect(behind.stdout.contains("      timeout: 360\n"))

        // Refused as the gateway would refuse to start, or when its port is not known yet.
        let open = try QieBinary.run(["serve", "--litellm-config", "--host", "0.0.0.0"], environment: ["QIE_GATEWAY_KEYS": ""])
        #expect(open.status != 0 && open.stderr.contains("without client keys") && open.stdout.isEmpty, "\(open.stderr)")
        let anyPort = try QieBinary.run(["serve", "--litellm-config", "--port", "0"])
        #expect(anyPort.status != 0 && anyPort.stderr.contains("port") && anyPort.stdout.isEmpty, "\(anyPort.stderr)")

        let all = try QieBinary.run(["providers", "--litellm-config"])
        #expect(all.status == 0, "\(all.stderr)")
        let names = Self.modelNames(all.stdout)
        #expect(names.count == 18 && names.first == "runpod-qwen-image-edit-2511" && names.contains("qwen-image-edit-plus"), "\(names)")
        #expect(all.stdout.contains("api_base: \"http://127.0.0.1:8080/v1\""))
    }

    @Test("The OpenAI SDK through a LiteLLM proxy configured by qie serve --litellm-config: images, errors kept, nothing retried, qie's costs as the proxy's")
    func throughTheProxy() throws {
        let python = GatewaySDKTests.root + "/.build/openai-sdk/bin/python"
        try #require(
            FileManager.default.isExecutableFile(atPath: python) && FileManager.default.isExecutableFile(atPath: LiteLLMProxy.executable),
            "the OpenAI SDK or the LiteLLM proxy is not installed: run scripts/ensure-openai-sdk.sh and scripts/ensure-litellm.sh (make test does)")
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try FileManager.default.createDirectory(atPath: work + "/images", withIntermediateDirectories: true)
        try writeImage(800, 600, to: work + "/images/wide.png", format: .png)

        // The first submission's job fails once accepted: a failure that may have been billed.
        let emulator = try EmulatorProcess(faults: ["job-failure:the GPU fell over"])
        let gatewayKey = "litellm-gateway-key"
        let environment = [
            "RUNPOD_API_KEY": "cli-key", "QIE_RUNPOD_BASE_URL": emulator.address, "RUNFLOW_API_KEY": "cli-key",
            "QIE_RUNFLOW_BASE_URL": emulator.address, "QIE_GATEWAY_KEYS": gatewayKey,
        ]
        let serving = ["--provider", "runpod", "--provider", "runflow", "--state", work + "/state"]
        let gateway = try GatewayProcess(serving: serving, environment: environment)
        let port = try #require(URL(string: gateway.address)?.port)

        // The proxy's configuration: what qie prints for this gateway, then a
        // model whose gateway key qie does not take, and the proxy's own key.
        let printed = try QieBinary.run(["serve", "--litellm-config", "--port", String(port)] + serving, environment: environment)
        try #require(printed.status == 0, "\(printed.stderr)")
        #expect(Self.modelNames(printed.stdout) == ["runpod-qwen-image-edit-2511", "runflow-qwen-image-edit-2511", "qwen-image-edit-2511"])
        let config = printed.stdout + """
              - model_name: wrong-key
                litellm_params:
                  model: openai/runpod-qwen-image-edit-2511
                  api_base: "\(gateway.address)/v1"
                  api_key: os.environ/QIE_WRONG_KEY
                  num_retries: 0
            general_settings:
              master_key: os.environ/LITELLM_MASTER_KEY

            """
        try config.write(toFile: work + "/litellm.yaml", atomically: true, encoding: .utf8)
        let masterKey = "sk-litellm-test-master"
        let proxy = try LiteLLMProxy(
            config: work + "/litellm.yaml", home: work,
            environment: ["QIE_GATEWAY_KEY": gatewayKey, "QIE_WRONG_KEY": "not-a-gateway-key", "LITELLM_MASTER_KEY": masterKey])

        let (status, said) = try runToEnd(
            python, [GatewaySDKTests.root + "/Tests/QieCLITests/LiteLLM/check_litellm.py"],
            environment: [
                "LITELLM_URL": proxy.address, "LITELLM_KEY": masterKey, "QIE_IMAGES": work + "/images",
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin",
            ])
        let context = "\(said)\n--- qie serve:\n\(gateway.output.suffix(4000))\n--- LiteLLM:\n\(proxy.output.suffix(4000))"
        #expect(status == 0, "\(context)")
        for name in ["billed failure", "n=2", "per megapixel", "release", "bad size", "wrong gateway key"] {
            #expect(said.contains("ok \(name)\n"), "\(name) did not pass:\n\(context)")
        }

        // Each request reached qie once: six lines, one per request; the
        // billed failure, the bad size and the wrong key once each.
        let log = gateway.output
        #expect(gateway.count(of: "POST /v1/images/edits") == 6, "\(log)")
        #expect(gateway.count(of: "outcome=\"502 endpoint_result_lost\"") == 1, "\(log)")
        #expect(gateway.count(of: "outcome=\"400 invalid_value\"") == 1, "\(log)")
        #expect(gateway.count(of: "outcome=\"401 invalid_api_key\"") == 1, "\(log)")
        // And the endpoints: the failure, n=2 (two requests: RunPod has no
        // count), the release (routed to RunPod, the cheaper) on RunPod; one on Runflow.
        #expect(emulator.count(of: "POST /v2/qwen-image-edit-2511/runsync -> 200") == 4, "\(emulator.output)")
        #expect(emulator.count(of: "POST /v1/models/alibaba/qwen-image-edit-2511/runs -> 201") == 1, "\(emulator.output)")

        // The proxy's cost of each edit is qie's, as qie's log line for the same request says.
        let edits = said.split(separator: "\n").filter { $0.hasPrefix("edit ") }.map { $0.split(separator: " ").map(String.init) }
        #expect(edits.count == 3, "\(said)")
        for edit in edits where edit.count == 4 {
            let (name, request, cost) = (edit[1], edit[2], edit[3])
            let line = log.split(separator: "\n").first { $0.contains("request=\(request)") }.map(String.init) ?? ""
            let charged = line.firstMatch(of: /cost_usd=([0-9.]+)/).map { String($0.1) }
            #expect(charged != nil && Double(charged ?? "") == Double(cost), "\(name): the proxy says \(cost), qie \(line)")
        }
        #expect(edits.first?[3] == "0.04")
        // No key in what the proxy printed.
        #expect(!proxy.output.contains(gatewayKey) && !proxy.output.contains("cli-key"), "\(proxy.output)")
    }
}
