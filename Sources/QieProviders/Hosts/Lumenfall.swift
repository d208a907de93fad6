import Foundation
import QieCore

/// Lumenfall's OpenAI-compatible image edits (multipart, answered at once).
public struct Lumenfall: EndpointHost {
    /// The host.
    public init() {}

    /// The company's name.
    public var name: String { "Lumenfall" }
    /// The endpoints it sells.
    public var profiles: [ProviderProfile] { [.lumenfallQwenImageEdit2511] }

    // MARK: Answers

    /// OpenAI's images answer: `data[]` of `url` or `b64_json`.
    public func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        let error = (answer["error"] as? String) ?? ((answer["error"] as? [String: Any])?["message"] as? String)
        return try ResponseReader.job(answer, for: profile, id: (answer["id"] as? String) ?? jobID, error: error, cost: nil, warn: warn)
    }

    // MARK: Emulation

    /// A new job's id, spelled as the host spells them.
    public func emulatedJobID(for profile: ProviderProfile) -> String { "gen_" + UUID().uuidString.lowercased() }

    /// The host's word for `phase`.
    public func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String { phase.rawValue }

    /// A job still running (only a fault makes one).
    public func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer {
        EmulatedAnswer(status: 200, body: ["id": job.id, "status": emulatedStatus(job.phase, for: profile)])
    }

    /// The job's id and status.
    public func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any] {
        ["id": job.id, "status": emulatedStatus(job.phase, for: profile)]
    }

    /// The answer to a synchronous edit that finished.
    public func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any] {
        let data: [[String: Any]] =
            results.returnsBase64
            ? results.inline.map { ["b64_json": $0.base64EncodedString(), "revised_prompt": results.prompt] }
            : results.urls.map { ["url": $0, "revised_prompt": results.prompt] }
        return ["created": Int(Date().timeIntervalSince1970), "data": data]
    }

    /// OpenAI's error object.
    public func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any] {
        var error: [String: Any] = ["message": message, "type": "invalid_request_error"]
        if let param { error["param"] = param }
        return ["error": error]
    }
}

extension ProviderProfile {
    /// Lumenfall's OpenAI-compatible `qwen-image-edit-2511` (lumenfall-qwen-image-edit-2511.md).
    public static let lumenfallQwenImageEdit2511 = ProviderProfile(
        host: Lumenfall(),
        id: "lumenfall-qwen-image-edit-2511",
        aliases: ["lumenfall"],
        provider: "Lumenfall",
        model: "qwen-image-edit-2511",
        version: .edit2511,
        document: "lumenfall-qwen-image-edit-2511.md",
        baseURL: "https://api.lumenfall.ai",
        baseURLVariable: "QIE_LUMENFALL_BASE_URL",
        routes: .init(submit: "/openai/v1/images/edits"),
        auth: .init(header: "Authorization", scheme: "Bearer", keyVariable: "LUMENFALL_API_KEY"),
        images: .init(field: "image", isArray: true, maxCount: 3, inline: .multipartFile, accepts: [.jpeg, .png, .webp]),
        sizes: .sizeOrTier(
            sizeField: "size", ratioField: "aspect_ratio", tierField: "resolution",
            table: [
                TierSize(AspectRatio(4, 3), "1K", PixelSize(width: 1183, height: 887)),
                TierSize(AspectRatio(1, 1), "1K", PixelSize(width: 1024, height: 1024)),
                TierSize(AspectRatio(3, 4), "1K", PixelSize(width: 887, height: 1182)),
                TierSize(AspectRatio(9, 16), "1K", PixelSize(width: 768, height: 1365)),
                TierSize(AspectRatio(16, 9), "1K", PixelSize(width: 1365, height: 768)),
            ],
            maxSide: 14142),
        outputFormat: .init(
            field: "output_format",
            spellings: [(.png, "png"), (.jpeg, "jpeg"), (.gif, "gif"), (.webp, "webp"), (.avif, "avif")],
            defaultFormat: .png),
        fields: [
            .init(option: .negativePrompt, name: "negative_prompt", kind: .string, defaultValue: nil),
            .init(option: .seed, name: "seed", kind: .integer, defaultValue: nil),
            .init(option: .numImages, name: "n", kind: .integer, defaultValue: "1"),
            .init(option: .responseFormat, name: "response_format", kind: .oneOf(["url", "b64_json"]), defaultValue: "url"),
            .init(option: .outputCompression, name: "output_compression", kind: .integer, defaultValue: nil),
            .init(option: .guidanceScale, name: "cfg_scale", kind: .number, defaultValue: nil),
            .init(option: .acceleration, name: "acceleration", kind: .oneOf(["high", "none", "regular"]), defaultValue: nil),
            .init(option: .safetyChecker, name: "enable_safety_checker", kind: .boolean, defaultValue: nil),
            .init(option: .inferenceSteps, name: "num_inference_steps", kind: .integer, defaultValue: nil),
            .init(option: .syncMode, name: "sync_mode", kind: .boolean, defaultValue: nil),
        ],
        envelope: .multipart,
        flow: [.synchronous],
        result: .openAIData,
        pricing: .unpublished,
        notes: [
            "Several input images go as repeated image[] parts, one as image.",
            "Only the 1K tier is listed: other tiers and ratios outside the table are refused rather than mapped silently.",
            "No price is published: estimates are unknown unless a price is set.",
        ])
}
