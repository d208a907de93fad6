import Foundation
import HTTPTypes
import QiePipeline

/// An error as the OpenAI API answers it: `{"error": {"message", "type",
/// "param", "code"}}` with the status code the OpenAI SDKs map to their
/// exception types (400 `BadRequestError`, 401 `AuthenticationError`, 404
/// `NotFoundError`, 413, 429 `RateLimitError`, 5xx `InternalServerError`).
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status code (`status` is the same, as Hummingbird takes it).
    public var statusCode: Int
    /// What went wrong and what to do, for people. Never holds a key.
    public var message: String
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
    public var type: String
    /// The request field at fault, if one is.
    public var param: String?
    /// A machine-readable code (`invalid_value`, `model_not_found`, ...).
    public var code: String?
    /// Seconds to wait before retrying (sent as `retry-after`).
    public var retryAfter: Int?
    /// False when the endpoint may have charged for the request: the client
    /// must not retry it blindly (sent as `x-should-retry: false`).
    public var mayRetry: Bool

    /// An error with every part given.
    public init(
        status: Int, message: String, type: String, param: String? = nil, code: String? = nil, retryAfter: Int? = nil,
        mayRetry: Bool = true
    ) {
        self.statusCode = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retryAfter = retryAfter
        self.mayRetry = mayRetry
    }

    /// The status, type, field and message on one line.
    public var description: String { "\(statusCode) \(type)\(param.map { " (\($0))" } ?? ""): \(message)" }

    /// 403: a request to a gateway without keys that did not come from a
    /// program on this machine (`source` says what it came from).
    public static func notLocal(_ source: String) -> GatewayError {
        GatewayError(
            status: 403,
            message: "qie serve without gateway keys answers only programs on this machine, and this request came from \(source); set QIE_GATEWAY_KEYS to serve other clients",
            type: "permission_error", code: "not_local")
    }

    /// 400: a field has a value the gateway cannot use.
    public static func invalid(_ param: String?, _ message: String, code: String = "invalid_value") -> GatewayError {
        GatewayError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 401: no gateway key, or not one of the gateway's keys.
    public static func unauthorized(_ message: String) -> GatewayError {
        GatewayError(status: 401, message: message, type: "authentication_error", code: "invalid_api_key")
    }

    /// 404: no such model here.
    public static func unknownModel(_ name: String, offered: [String]) -> GatewayError {
        GatewayError(
            status: 404,
            message: "The model `\(name)` does not exist here; this gateway offers \(offered.joined(separator: ", ")) (GET /v1/models lists them)",
            type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    /// 413: the body is larger than the gateway takes.
    public static func tooLarge(limit: Int) -> GatewayError {
        GatewayError(
            status: 413,
            message: "The request body is larger than this gateway's limit of \(limit / (1 << 20)) MiB; send smaller images, or raise the gateway's body limit (maxBodyBytes)",
            type: "invalid_request_error", code: "request_too_large")
    }

    /// The JSON body.
    var body: Data {
        struct Envelope: Encodable {
            struct Inner: Encodable {
                var message: String
                var type: String
                var param: String?
                var code: String?

                func encode(to encoder: any Encoder) throws {
                    var container = encoder.container(keyedBy: CodingKeys.self)
                    try container.encode(message, forKey: .message)
                    try container.encode(type, forKey: .type)
                    // OpenAI sends null rather than leaving these out.
                    try container.encode(param, forKey: .param)
                    try container.encode(code, forKey: .code)
                }

                enum CodingKeys: String, CodingKey { case message, type, param, code }
            }

            var error: Inner
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(Envelope(error: .init(message: message, type: type, param: param, code: code)))) ?? Data()
    }
}

extension GatewayError {
    /// The answer to a failed edit: the input's fault (400), the gateway's
    /// budget (429), the endpoint's failure (502) or timeout (504). Messages
    /// name request fields as the OpenAI API spells them.
    init(_ error: EditError) {
        let message = error.message(naming: GatewayField.name)
        switch error {
        case .setting(let setting):
            self = .invalid(GatewayField.name(setting.setting), message)
        case .noPrompt, .noPrompts:
            self = .invalid("prompt", message, code: "missing_required_parameter")
        case .input(let imaging):
            let code = imaging.kind == .tooLarge ? "image_too_large" : "invalid_image"
            self = .invalid("image", message, code: code)
        case .mask:
            self = .invalid("mask", message, code: "invalid_mask")
        case .request(let providers):
            self = .invalid(providers.setting.map { GatewayField.name($0.setting) } ?? nil, message)
        case .overBudget:
            self = GatewayError(
                status: 429, message: message, type: "insufficient_quota", code: "gateway_budget_reached",
                retryAfter: Self.secondsToUTCMidnight())
        case .unpriced:
            self = GatewayError(status: 500, message: message, type: "server_error", code: "unpriced")
        case .missingKey:
            self = GatewayError(status: 500, message: message, type: "server_error", code: "endpoint_key_missing")
        case .endpoint(let client) where client.status == 429 && client.jobID == nil:
            // The endpoint's rate limit outlasted the client's retries; nothing was accepted.
            self = GatewayError(
                status: 429, message: "the endpoint \(client.endpoint ?? "") is rate limiting: \(message)", type: "rate_limit_error",
                code: "endpoint_rate_limited", retryAfter: 10)
        case .endpoint(let client):
            let timedOut = client.kind == .timedOut
            // Anything that reached the endpoint may be billed: no blind retry.
            self = GatewayError(
                status: timedOut ? 504 : 502, message: "the endpoint \(client.endpoint ?? "") failed: \(message)",
                type: "server_error", code: timedOut ? "endpoint_timeout" : "endpoint_error", mayRetry: false)
        case .failedEarlier, .uncertainEarlier:
            self = GatewayError(status: 502, message: message, type: "server_error", code: "endpoint_error", mayRetry: false)
        case .resultsLost(let cost, let reason, _):
            // Billed, and nothing to show for it: said so, and not retried blindly.
            self = GatewayError(
                status: 502,
                message: "the endpoint accepted the edit and it was billed\(cost.map { " (~$\($0))" } ?? ""), but its result could not be had: \(reason)",
                type: "server_error", code: "endpoint_result_lost", mayRetry: false)
        case .result(let imaging):
            self = GatewayError(
                status: 502, message: "the endpoint's result could not be finished: \(imaging.reason)", type: "server_error",
                code: "endpoint_result", mayRetry: false)
        case .stopped:
            self = GatewayError(status: 503, message: "the gateway is shutting down", type: "server_error", mayRetry: false)
        default:
            self = GatewayError(status: 500, message: message, type: "server_error")
        }
    }

    /// Seconds until the next UTC midnight, when a daily budget starts again.
    static func secondsToUTCMidnight(now: Date = Date()) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let tomorrow = calendar.startOfDay(for: now).addingTimeInterval(86_400)
        return max(1, Int(tomorrow.timeIntervalSince(now).rounded(.up)))
    }
}

/// How the gateway's request fields are spelled for each library setting.
enum GatewayField {
    static func name(_ setting: Setting) -> String {
        switch setting {
        case .numImages: "n"
        case .format: "output_format"
        case .quality: "output_compression"
        case .maxCost: "max_cost_per_day"
        case .negativePrompt: "negative_prompt"
        case .size: "size"
        default: setting.name
        }
    }
}
