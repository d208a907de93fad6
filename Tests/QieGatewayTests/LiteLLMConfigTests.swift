import Foundation
import QieGateway
import QiePipeline
import Testing

@Suite("A LiteLLM proxy model_list for the gateway")
struct LiteLLMConfigTests {
    func configuration(_ configure: (inout GatewayConfiguration) -> Void) -> GatewayConfiguration {
        var configuration = GatewayConfiguration(stateDirectory: "/nonexistent")
        configure(&configuration)
        return configuration
    }

    /// The lines of the entry for `model`, from its `- model_name` line to the next entry.
    func entry(_ yaml: String, _ model: String) -> [String] {
        let lines = yaml.split(separator: "\n").map(String.init)
        guard let start = lines.firstIndex(of: "  - model_name: \(model)") else { return [] }
        let rest = lines[(start + 1)...]
        let end = rest.firstIndex { $0.hasPrefix("  - ") || $0.hasPrefix("  #") } ?? lines.endIndex
        return Array(lines[start..<end])
    }

    @Test("Each entry is openai/ID at the gateway's address, the key by name only, no retries, a timeout past the edit's, and no LiteLLM price")
    func entries() throws {
        let config = try LiteLLMConfig(
            configuration {
                $0.port = 8123
                $0.models = ["runpod", "runflow", "oxen"]
                $0.keys = [GatewayKey("the-gateway-secret")]
            })
        let yaml = config.yaml
        #expect(config.models.map(\.id) == ["runpod-qwen-image-edit-2511", "runflow-qwen-image-edit-2511", "oxen-qwen-image-edit-2511", "qwen-image-edit-2511"])
        #expect(yaml.hasPrefix("# LiteLLM proxy models for qie serve at http://127.0.0.1:8123/v1 (4 models)."))
        #expect(
            entry(yaml, "runpod-qwen-image-edit-2511") == [
                "  - model_name: runpod-qwen-image-edit-2511",
                "    litellm_params:",
                "      model: openai/runpod-qwen-image-edit-2511",
                "      api_base: \"http://127.0.0.1:8123/v1\"",
                "      api_key: os.environ/QIE_GATEWAY_KEY",
                "      num_retries: 0",
                "      timeout: 660",
            ])
        for model in config.models { #expect(entry(yaml, model.id).count == 7, "\(model.id)") }
        // The price is for people: any LiteLLM price would make the proxy ignore the gateway's cost.
        #expect(!yaml.contains("cost_per") && !yaml.contains("model_info"))
        #expect(yaml.contains("  # $0.02 per image\n  - model_name: runpod-qwen-image-edit-2511\n"))
        #expect(yaml.contains("  # $0.03 per output megapixel\n  - model_name: runflow-qwen-image-edit-2511\n"))
        #expect(yaml.contains("  # price not published: the gateway sends no cost and LiteLLM records none"))
        #expect(yaml.contains("  # routed per edit (cheapest) among:\n  #   runpod-qwen-image-edit-2511: $0.02 per image\n"))
        #expect(!yaml.contains("the-gateway-secret"))
    }

    @Test("The models are the gateway's own, in the order GET /v1/models lists them: endpoints, then releases")
    func sameModelsAsTheGateway() async throws {
        let models = ["fal-edit", "lumenfall", "runpod", "dashscope-edit"]
        let ids = try LiteLLMConfig(configuration { $0.models = models }).models.map(\.id)
        try await GatewayTests().withGateway(configure: { $0.models = models }) { _, client in
            let response = try await client.execute(uri: "/v1/models", method: .get)
            let listed = (object(response)["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(ids == listed && listed.count == 6, "\(ids) against \(listed)")
        }
    }

    @Test("The address: the public URL with /v1; 127.0.0.1 for every address, with a note; IPv6 in brackets; port 0 refused")
    func address() throws {
        let behindProxy = try LiteLLMConfig(configuration { $0.publicURL = "https://images.example.com/qie/" })
        #expect(behindProxy.apiBase == "https://images.example.com/qie/v1" && behindProxy.apiBaseNote == nil)
        #expect(behindProxy.yaml.contains("api_base: \"https://images.example.com/qie/v1\"\n"))
        let everywhere = try LiteLLMConfig(configuration { $0.host = "0.0.0.0" })
        #expect(everywhere.apiBase == "http://127.0.0.1:8080/v1")
        #expect(everywhere.yaml.contains("# Note: the gateway listens on 0.0.0.0 (every address of this machine)"))
        #expect(try LiteLLMConfig(configuration { $0.host = "::" }).apiBase == "http://127.0.0.1:8080/v1")
        #expect(try LiteLLMConfig(configuration { $0.host = "::1" }).apiBase == "http://[::1]:8080/v1")
        #expect(throws: GatewayConfigurationError.self) { try LiteLLMConfig(configuration { $0.port = 0 }) }
        #expect(try LiteLLMConfig(configuration { $0.port = 0; $0.publicURL = "https://a.example" }).apiBase == "https://a.example/v1")
        let unknown = #expect(throws: GatewayConfigurationError.self) { try LiteLLMConfig(configuration { $0.models = ["nope"] }) }
        if case .unknownModel(let name, _)? = unknown { #expect(name == "nope") } else { Issue.record("\(String(describing: unknown))") }
    }

    @Test("A price set for the gateway is the one noted, and the timeout follows the gateway's edit time limit")
    func priceAndTimeout() throws {
        let config = try LiteLLMConfig(
            configuration {
                $0.models = ["oxen"]
                $0.options.price = PriceOverride(perImage: Decimal(string: "0.05")!)
                $0.options.timeouts.overall = 120.5
            })
        #expect(config.models[0].price == ["$0.05 per image (set by you)"])
        #expect(config.timeout == 180.5 && config.yaml.contains("      timeout: 180.5\n"))
    }
}
