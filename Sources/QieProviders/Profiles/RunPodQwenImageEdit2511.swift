import QieCore

extension ProviderProfile {
    /// RunPod public endpoint `qwen-image-edit-2511` (runpod-qwen-image-edit-2511.md).
    public static let runpodQwenImageEdit2511 = ProviderProfile(
        id: "runpod-qwen-image-edit-2511",
        aliases: ["runpod-2511", "runpod"],
        provider: "RunPod",
        model: "qwen-image-edit-2511",
        document: "runpod-qwen-image-edit-2511.md",
        baseURL: "https://api.runpod.ai",
        baseURLVariable: "QIE_RUNPOD_BASE_URL",
        routes: .init(submit: "/v2/qwen-image-edit-2511/runsync", poll: "/v2/qwen-image-edit-2511/status/{id}", enqueue: "/v2/qwen-image-edit-2511/run"),
        auth: .init(header: "Authorization", scheme: "Bearer", keyVariable: "RUNPOD_API_KEY"),
        images: .init(field: "images", isArray: true, maxCount: 3, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        sizes: .fixedSizes(
            field: "size",
            sizes: [
                PixelSize(width: 1024, height: 1024), PixelSize(width: 1024, height: 1280),
                PixelSize(width: 1280, height: 1024), PixelSize(width: 1280, height: 1280),
                PixelSize(width: 1280, height: 1536), PixelSize(width: 1536, height: 1080),
            ],
            separator: "*", defaultSize: PixelSize(width: 1024, height: 1024)),
        outputFormat: .init(field: "output_format", spellings: [(.jpeg, "jpeg"), (.png, "png"), (.webp, "webp")], defaultFormat: .jpeg),
        fields: [
            .init(option: .seed, name: "seed", kind: .integer, defaultValue: "-1")
        ],
        envelope: .inputObject,
        flow: [.synchronous, .polling],
        requestLimits: .init(synchronous: 20_000_000, asynchronous: 10_000_000, pollsPerSecond: 200),
        result: .url(path: ["output", "image_url"]),
        pricing: .perImage(0.02),
        notes: [
            "The document takes image URLs; local files travel as data URIs.",
            "Result URLs expire after 7 days: results are downloaded at once.",
            "If runsync answers IN_QUEUE or IN_PROGRESS with an id, the job is polled at RunPod's general status route (/v2/ENDPOINT/status/ID, not in the document) instead of being sent again.",
            "The poll flow is RunPod's general queue pair (POST /v2/ENDPOINT/run, then GET /v2/ENDPOINT/status/ID; not in the document): the job's id is known milliseconds after sending, so a killed run asks about the job instead of paying for it again. Folder runs use it by default.",
            "Payload limits from RunPod's serverless documentation: 10 MB on /run, 20 MB on runsync (after base64).",
        ])
}
