import QieCore

extension ProviderProfile {
    /// Lumenfall's OpenAI-compatible `qwen-image-edit-2511` (lumenfall-qwen-image-edit-2511.md).
    public static let lumenfallQwenImageEdit2511 = ProviderProfile(
        id: "lumenfall-qwen-image-edit-2511",
        aliases: ["lumenfall"],
        provider: "Lumenfall",
        model: "qwen-image-edit-2511",
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
