import QieCore

extension ProviderProfile {
    /// Oxen.ai `qwen-image-edit-2511` (oxen-qwen-image-edit-2511.md).
    public static let oxenQwenImageEdit2511 = ProviderProfile(
        id: "oxen-qwen-image-edit-2511",
        aliases: ["oxen"],
        provider: "Oxen.ai",
        model: "qwen-image-edit-2511",
        document: "oxen-qwen-image-edit-2511.md",
        baseURL: "https://hub.oxen.ai",
        baseURLVariable: "QIE_OXEN_BASE_URL",
        routes: .init(
            submit: "/api/ai/images/edit", poll: "/api/ai/queue/{id}", enqueue: "/api/ai/queue", events: "/api/events"),
        auth: .init(header: "Authorization", scheme: "Bearer", keyVariable: "OXEN_API_KEY"),
        images: .init(field: "input_image", isArray: true, maxCount: 3, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        sizes: .aspectRatios(
            field: "aspect_ratio",
            ratios: [
                AspectRatio(1, 1), AspectRatio(16, 9), AspectRatio(9, 16), AspectRatio(4, 3), AspectRatio(3, 4),
                AspectRatio(3, 2), AspectRatio(2, 3),
            ],
            defaultRatio: AspectRatio(16, 9)),
        outputFormat: .init(field: "output_format", spellings: [(.webp, "webp"), (.jpeg, "jpg"), (.png, "png")], defaultFormat: .png),
        fields: [
            .init(option: .negativePrompt, name: "negative_prompt", kind: .string, defaultValue: "\" \"")
        ],
        envelope: .flatJSON,
        flow: [.synchronous, .polling, .serverSentEvents],
        result: .url(path: ["result_url"]),
        pricing: .unpublished,
        notes: [
            "aspect_ratio defaults to 16:9 at the endpoint, so qie always sends the ratio it planned.",
            "The document does not say how many input images are accepted; 3 is assumed.",
            "No price is published: estimates are unknown unless a price is set.",
            "The synchronous answer and the media_generation_completed payload are not in the document: {generation_id, status, result_url} is assumed for both; after the event qie polls the queue for the result.",
        ],
        events: .init(completedEvents: ["media_generation_completed"], idField: "generation_id"))
}
