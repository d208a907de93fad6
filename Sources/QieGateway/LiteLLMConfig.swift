import Foundation
import QiePipeline

/// The models a gateway offers, as a LiteLLM proxy `model_list`: what to put
/// in the proxy's configuration so that it serves the gateway's image edits
/// as an OpenAI-compatible backend, with the gateway's costs and without
/// retries that could pay twice.
///
/// One entry per model the gateway offers, in the order of `GET /v1/models`:
/// each endpoint, then each release routed among the offered endpoints that
/// run it. Every entry is `openai/ID` at the gateway's address plus `/v1`,
/// with the gateway key read from the proxy's environment
/// (`os.environ/QIE_GATEWAY_KEY`): no key's value is ever written.
///
/// Costs: the gateway answers each edit with `x-litellm-response-cost`
/// (what the endpoint charged, or its estimate from the endpoint's price and
/// the size actually sent), and the proxy records that as the request's
/// spend. No LiteLLM price (`output_cost_per_image`, `input_cost_per_pixel`)
/// is set, on purpose: the proxy ignores the backend's cost for a model
/// priced in its configuration, and its own reckoning prices the size the
/// client got rather than the size the endpoint billed, and cannot follow
/// routing or the costs endpoints report. The price of each model is
/// written beside it as a comment for people.
///
/// Retries: `num_retries: 0` on every entry. The proxy's router retries any
/// 5xx answer (twice by default) and does not read `x-should-retry`, and a
/// failed edit the endpoint accepted may have been billed; the gateway
/// retries on its own whatever is safe to send again. `timeout` is the
/// gateway's edit time limit plus a minute, so the gateway's own answer (a
/// 504 saying what may have been billed) arrives before the proxy gives up.
///
/// ```swift
/// var configuration = GatewayConfiguration(stateDirectory: "/var/lib/qie-serve")
/// configuration.port = 8080
/// configuration.models = ["runpod", "fal"]
/// print(try LiteLLMConfig(configuration).yaml)
/// ```
public struct LiteLLMConfig: Sendable, Equatable {
    /// One model of the list.
    public struct Model: Sendable, Equatable {
        /// The gateway's model id: LiteLLM's `model_name`, sent to the
        /// gateway as `openai/ID`.
        public var id: String
        /// What an edit on it costs, in words (comment lines above the entry).
        public var price: [String]
    }

    /// The proxy's environment variable holding the gateway key it sends.
    public static let keyVariable = "QIE_GATEWAY_KEY"
    /// Seconds the proxy waits beyond the gateway's edit time limit.
    public static let timeoutMargin: Double = 60

    /// The gateway's OpenAI base URL: its public URL, or the address it
    /// listens on, with `/v1`.
    public var apiBase: String
    /// Why `apiBase` is not the address the gateway listens on, if it is not.
    public var apiBaseNote: String?
    /// The models, in the order the gateway lists them.
    public var models: [Model]
    /// Seconds the proxy waits for an edit.
    public var timeout: Double

    /// The list for a gateway started with `configuration`. Throws when
    /// its models name no endpoint, or when its address is not known before
    /// it starts (port 0 without a public URL).
    public init(_ configuration: GatewayConfiguration) throws(GatewayConfigurationError) {
        let profiles = try configuration.profiles()
        let price = configuration.options.price
        if let url = configuration.publicURL {
            var base = url
            while base.hasSuffix("/") { base.removeLast() }
            apiBase = base + "/v1"
            apiBaseNote = nil
        } else {
            guard configuration.port != 0 else {
                throw .invalid(
                    "port", "a port from 1 to 65535 for a LiteLLM configuration (port 0 is only picked when the gateway starts), or give the gateway's public URL")
            }
            var host = configuration.host
            apiBaseNote = nil
            if NetworkAddress.scope(of: host) == .special {
                // 0.0.0.0 or ::: every address of this machine, none of them named.
                apiBaseNote = "the gateway listens on \(host) (every address of this machine): api_base names 127.0.0.1, for a proxy on the same machine; give the gateway's public URL for one elsewhere"
                host = "127.0.0.1"
            }
            if host.contains(":") && !host.hasPrefix("[") { host = "[\(host)]" }
            apiBase = "http://\(host):\(configuration.port)/v1"
        }
        var models = profiles.map { Model(id: $0.id, price: [Self.price(of: $0, override: price)]) }
        for (release, endpoints) in configuration.releases(among: profiles) {
            models.append(
                Model(
                    id: release.rawValue,
                    price: ["routed per edit (\(configuration.route.rawValue)) among:"]
                        + endpoints.map { "  \($0.id): \(Self.price(of: $0, override: price))" }))
        }
        self.models = models
        timeout = configuration.options.timeouts.overall + Self.timeoutMargin
    }

    /// A price in words: the one set for the gateway, else the endpoint's.
    static func price(of profile: ProviderProfile, override: PriceOverride) -> String {
        if let perImage = override.perImage { return "$\(perImage) per image (set by you)" }
        if let perMegapixel = override.perMegapixel { return "$\(perMegapixel) per output megapixel (set by you)" }
        if profile.pricing == .unpublished {
            return "price not published: the gateway sends no cost and LiteLLM records none, unless the gateway is given a price of your own"
        }
        return profile.pricing.summary
    }

    /// The configuration as YAML: comments saying how costs and retries
    /// work, then `model_list`, for the proxy's `--config` file (merge it
    /// with a configuration of your own, or use it as it is).
    public var yaml: String {
        var lines = [
            "# LiteLLM proxy models for qie serve at \(apiBase) (\(models.count) models).",
            "# The proxy sends the gateway key from \(Self.keyVariable): one of the keys qie serve takes.",
        ]
        if let apiBaseNote { lines.append("# Note: \(apiBaseNote).") }
        lines += [
            "# Costs: qie answers each edit with x-litellm-response-cost (what the endpoint charged,",
            "# or its estimate from the endpoint's price and the size sent), which the proxy records",
            "# as the request's spend. No LiteLLM price is set on purpose: the proxy ignores that",
            "# header for a model priced in its configuration. Prices are noted above each model.",
            "# num_retries: 0: a failed edit may have been billed, and the proxy retries 5xx answers",
            "# without reading x-should-retry; qie retries what is safe to send again itself.",
            "model_list:",
        ]
        for model in models {
            lines += model.price.map { "  # " + $0 }
            lines += [
                "  - model_name: \(Self.scalar(model.id))",
                "    litellm_params:",
                "      model: \(Self.scalar("openai/" + model.id))",
                "      api_base: \(Self.scalar(apiBase))",
                "      api_key: \(Self.scalar("os.environ/" + Self.keyVariable))",
                "      num_retries: 0",
                "      timeout: \(Self.number(timeout))",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML string: plain when it is only letters, digits and `._/-`
    /// and reads as no other type, else double-quoted (JSON's escapes are YAML's).
    static func scalar(_ text: String) -> String {
        let plain = text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._/-".contains($0)) }
            && text.contains(where: \.isLetter) && !text.hasPrefix("-") && !text.hasPrefix(".")
            && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"].contains(text.lowercased())
        if plain { return text }
        let data = (try? JSONEncoder.plain.encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

extension JSONEncoder {
    /// Slashes left as they are: `http://...` rather than `http:\/\/...`.
    fileprivate static var plain: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }
}
