import QieCore

extension ProviderProfile {
    /// RunPod public endpoint `qwen-image-edit` (runpod-qwen-image-edit.md).
    public static let runpodQwenImageEdit = ProviderProfile(
        id: "runpod-qwen-image-edit",
        aliases: ["runpod-edit"],
        provider: "RunPod",
        model: "qwen-image-edit",
        document: "runpod-qwen-image-edit.md",
        baseURL: "https://api.runpod.ai",
        baseURLVariable: "QIE_RUNPOD_BASE_URL",
        routes: .init(submit: "/v2/qwen-image-edit/runsync", poll: "/v2/qwen-image-edit/status/{id}", enqueue: "/v2/qwen-image-edit/run"),
        auth: .init(header: "Authorization", scheme: "Bearer", keyVariable: "RUNPOD_API_KEY"),
        images: .init(field: "image", isArray: false, maxCount: 1, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        sizes: .followsInput,
        outputFormat: .init(field: "output_format", spellings: [(.png, "png"), (.jpeg, "jpeg")], defaultFormat: .jpeg),
        fields: [
            .init(option: .negativePrompt, name: "negative_prompt", kind: .string, defaultValue: nil),
            .init(option: .seed, name: "seed", kind: .integer, defaultValue: "-1"),
            .init(option: .safetyChecker, name: "enable_safety_checker", kind: .boolean, defaultValue: "true"),
        ],
        envelope: .inputObject,
        flow: [.synchronous, .polling],
        requestLimits: .init(synchronous: 20_000_000, asynchronous: 10_000_000, pollsPerSecond: 200),
        result: .url(path: ["output", "image_url"]),
        pricing: .perOutputMegapixel(0.02, perImageReading: 0.02),
        notes: [
            "The document says both $0.02 per image and cost from output megapixels; its example (0.02097152 at 1024x1024) is $0.02 per output megapixel, the reading used here.",
            "No size field: the output is assumed to follow the input, so inputs are prepared to about 1 megapixel.",
            "Result URLs expire after 7 days: results are downloaded at once.",
            "If runsync answers IN_QUEUE or IN_PROGRESS with an id, the job is polled at RunPod's general status route (/v2/ENDPOINT/status/ID, not in the document) instead of being sent again.",
            "The poll flow is RunPod's general queue pair (POST /v2/ENDPOINT/run, then GET /v2/ENDPOINT/status/ID; not in the document): the job's id is known milliseconds after sending, so a killed run asks about the job instead of paying for it again. Folder runs use it by default.",
            "Payload limits from RunPod's serverless documentation: 10 MB on /run, 20 MB on runsync (after base64).",
        ])
}
