import QieCore

extension ProviderProfile {
    /// Runflow `alibaba/qwen-image-edit-2511` (runflow-qwen-image-edit-2511.md).
    public static let runflowQwenImageEdit2511 = ProviderProfile(
        id: "runflow-qwen-image-edit-2511",
        aliases: ["runflow"],
        provider: "Runflow",
        model: "alibaba/qwen-image-edit-2511",
        document: "runflow-qwen-image-edit-2511.md",
        baseURL: "https://api.runflow.io",
        baseURLVariable: "QIE_RUNFLOW_BASE_URL",
        routes: .init(submit: "/v1/models/alibaba/qwen-image-edit-2511/runs", poll: "/v1/runs/{id}"),
        auth: .init(header: "Authorization", scheme: "Bearer", keyVariable: "RUNFLOW_API_KEY"),
        images: .init(field: "image_urls", isArray: true, maxCount: 3, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        sizes: .followsInput,
        outputFormat: .init(field: "output_format", spellings: [(.jpeg, "jpeg"), (.png, "png"), (.webp, "webp")], defaultFormat: .png),
        fields: [
            .init(option: .numImages, name: "num_images", kind: .integer, defaultValue: "1"),
            .init(option: .acceleration, name: "acceleration", kind: .oneOf(["none", "regular", "high"]), defaultValue: nil),
            .init(option: .safetyChecker, name: "enable_safety_checker", kind: .boolean, defaultValue: nil),
            .init(option: .syncMode, name: "sync_mode", kind: .boolean, defaultValue: nil),
            .init(option: .guidanceScale, name: "guidance_scale", kind: .number, defaultValue: nil),
            .init(option: .seed, name: "seed", kind: .integer, defaultValue: nil),
            .init(option: .negativePrompt, name: "negative_prompt", kind: .string, defaultValue: nil),
            .init(option: .inferenceSteps, name: "num_inference_steps", kind: .integer, defaultValue: nil),
            .init(option: .callbackURL, name: "callback_url", kind: .string, defaultValue: nil),
            .init(option: .metadata, name: "metadata", kind: .object, defaultValue: nil),
        ],
        envelope: .inputObject,
        flow: [.polling, .callback],
        result: .urlArray(path: ["output", "outputs"], key: "url"),
        pricing: .perOutputMegapixel(0.03, perImageReading: nil),
        notes: [
            "Billed on output pixels / 10^6, unrounded (the document says $0.03/megapixel without input or output or rounding); the megapixel rounding setting changes it.",
            "image_size is left out: the document says the output then follows the input, which qie has prepared to the planned size.",
            "The polling route (/v1/runs/{id}) and the maximum of 3 images are not in the document: set QIE_RUNFLOW_BASE_URL to point elsewhere.",
            "output_format has no documented default; png is assumed.",
            "The create and poll answers are not in the document: {id, status} with status queued|running|succeeded|failed|cancelled and, when done, the documented output object, are assumed.",
            "Runflow-Signature's scheme is not in the document: a hex HMAC-SHA256 of the raw body with the signing secret (RUNFLOW_SIGNING_SECRET), bare, as sha256=HEX, or as t=UNIX,v1=HEX over \"UNIX.BODY\", is assumed.",
        ],
        callback: .init(
            signatureHeader: "Runflow-Signature", deliveryHeader: "Runflow-Request-Id",
            secretVariable: "RUNFLOW_SIGNING_SECRET", idField: "run_id"))
}
