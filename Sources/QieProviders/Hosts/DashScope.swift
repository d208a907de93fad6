import Foundation
import QieCore

/// Alibaba Cloud Model Studio (DashScope): `qwen-image-edit` and
/// `qwen-image-edit-plus` on its multimodal generation route, answered at
/// once (dashscope.md). The body is a single-turn chat message: the images,
/// then the instruction, with the options under `parameters`.
public struct DashScope: EndpointHost {
    /// The host.
    public init() {}

    /// The company's name.
    public var name: String { "Alibaba Cloud Model Studio" }
    /// The endpoints it sells.
    public var profiles: [ProviderProfile] { [.dashscopeQwenImageEditPlus, .dashscopeQwenImageEdit] }

    // MARK: Requests

    /// `{"model", "input": {"messages": [{"role": "user", "content": [{"image"}..., {"text"}]}]}, "parameters"}`:
    /// the images in the order qie sends them (Image 1, 2, 3 in the prompt's
    /// words), `prompt_extend` false on the plus series and `watermark`
    /// false always. There is no output format field (results are PNG).
    public func body(_ fields: RequestFields, for profile: ProviderProfile) -> RequestBody {
        let content: [JSONValue] =
            fields.images.map { .object([(fields.imageField, .image($0))]) } + [.object([(Self.text, .string(fields.prompt))])]
        let given = fields.options + fields.sizes.map { ($0.0, JSONValue.string($0.1)) }
        func named(_ name: String) -> [(String, JSONValue)] { given.filter { $0.0 == name } }
        var parameters = named(Self.count) + named(Self.negativePrompt) + named(Self.size)
        if Self.isPlus(profile) { parameters.append((Self.promptExtend, .bool(false))) }
        parameters.append((Self.watermark, .bool(false)))
        parameters += named(Self.seed)
        let message: JSONValue = .object([("role", .string("user")), ("content", .array(content))])
        return .json(
            .object([
                ("model", .string(profile.model)), ("input", .object([("messages", .array([message]))])),
                ("parameters", .object(parameters)),
            ]))
    }

    /// What the host would cut or refuse, refused before anything is sent:
    /// text over its limits, a seed out of range, more images than one
    /// request makes, and a size asked together with several images.
    public func check(_ request: EditRequest, plan: SizePlan, for profile: ProviderProfile) throws(ProvidersError) {
        let name = profile.id
        let promptLength = request.prompt.unicodeScalars.count
        if promptLength > Self.promptLimit {
            throw ProvidersError(
                .invalidOption,
                SettingError(
                    .prompt, value: "\(promptLength) characters",
                    .invalid(expected: "at most \(Self.promptLimit) characters on \(name), which would cut the rest")))
        }
        if let negative = request.negativePrompt, negative.unicodeScalars.count > Self.negativePromptLimit {
            throw ProvidersError(
                .invalidOption,
                SettingError(
                    .negativePrompt, value: "\(negative.unicodeScalars.count) characters",
                    .invalid(expected: "at most \(Self.negativePromptLimit) characters on \(name), which would cut the rest")))
        }
        if let seed = request.seed, !Self.seeds.contains(seed) {
            throw ProvidersError(
                .invalidOption,
                SettingError(.seed, value: String(seed), .invalid(expected: "from 0 to \(Self.seeds.upperBound) on \(name)")))
        }
        if profile.field(for: .numImages) != nil, !Self.counts.contains(request.numImages) {
            throw ProvidersError(
                .invalidOption,
                SettingError(
                    .numImages, value: String(request.numImages),
                    .invalid(expected: "from 1 to \(Self.counts.upperBound) on \(name)")))
        }
        if request.numImages > 1, let size = plan.fields.first(where: { $0.name == Self.size }) {
            throw ProvidersError(
                .invalidOption,
                SettingError(
                    .size, value: size.value,
                    .explained(
                        "goes only with one image per request on \(name): ask \(setting: .numImages) 1, or leave \(setting: .size) out (the output then takes the input's shape)"
                    )))
        }
    }

    // MARK: Answers

    /// `output.choices[].message.content[].image`, with `request_id` as the
    /// job's id; an answer carrying an error `code` failed.
    public func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        let id = (answer["request_id"] as? String) ?? jobID
        if let code = answer["code"] as? String, !code.isEmpty {
            let said = (answer["message"] as? String).map { ": " + $0 } ?? ""
            return .failed(message: Sanitized.text(code + said), requestID: id.map(ResponseReader.safeID))
        }
        return try ResponseReader.job(answer, for: profile, id: id, error: nil, cost: nil, warn: warn)
    }

    // MARK: Emulation

    /// A request id, spelled as the host spells them.
    public func emulatedJobID(for profile: ProviderProfile) -> String { UUID().uuidString.lowercased() }

    /// The host's task words (its asynchronous API; these models have none).
    public func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String {
        switch phase {
        case .queued: "PENDING"
        case .running: "RUNNING"
        case .succeeded: "SUCCEEDED"
        case .failed: "FAILED"
        case .cancelled: "CANCELED"
        }
    }

    /// A task with no result (only a fault makes one): qie cannot know
    /// whether it was made, so the edit is uncertain.
    public func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer {
        EmulatedAnswer(status: 200, body: emulatedDescription(of: job, for: profile, asCallback: false))
    }

    /// The task's id and status.
    public func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any] {
        ["output": ["task_id": job.id, "task_status": emulatedStatus(job.phase, for: profile)], "request_id": job.id]
    }

    /// One choice whose content holds every image, with the usage.
    public func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any] {
        var usage: [String: Any] = ["image_count": results.urls.count]
        if let size = results.outputSize {
            usage["width"] = size.width
            usage["height"] = size.height
        }
        let message: [String: Any] = ["role": "assistant", "content": results.urls.map { [profile.images.field: $0] }]
        return [
            "output": ["choices": [["finish_reason": "stop", "message": message]]], "usage": usage,
            "request_id": emulatedJobID(for: profile),
        ]
    }

    /// `{code, message, request_id}` for a refused request.
    public func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any] {
        emulatedError(message, param: param, status: 400, for: profile)
    }

    /// `{code, message, request_id}`, the code from the status.
    public func emulatedError(_ message: String, param: String?, status: Int, for profile: ProviderProfile) -> [String: Any] {
        ["code": Self.errorCode(status), "message": message, "request_id": emulatedJobID(for: profile)]
    }

    /// The chat-shaped body read back into flat fields, its shape checked as
    /// the host checks it: one user message, one text, known parameters of
    /// the right type and range for the model.
    public func emulatedFields(of body: [String: Any], for profile: ProviderProfile) throws(EmulatedRefusal) -> [String: Any]? {
        if let extra = body.keys.first(where: { !["model", "input", "parameters"].contains($0) }) {
            throw EmulatedRefusal("Unknown field: \(extra)", param: extra)
        }
        guard body["model"] as? String == profile.model else { throw EmulatedRefusal("Model not exist.", param: "model") }
        guard let input = body["input"] as? [String: Any], input.count == 1,
            let messages = input["messages"] as? [[String: Any]], messages.count == 1, let message = messages.first,
            message.count == 2, message["role"] as? String == "user", let content = message["content"] as? [[String: Any]]
        else {
            throw EmulatedRefusal("input must be {\"messages\": [one message with role user and a content array]}", param: "input")
        }
        var images: [String] = []
        var texts: [String] = []
        for item in content {
            if item.count == 1, let image = item[profile.images.field] as? String {
                images.append(image)
            } else if item.count == 1, let text = item[Self.text] as? String {
                texts.append(text)
            } else {
                throw EmulatedRefusal("Each content item must be one image or one text", param: "content")
            }
        }
        guard texts.count == 1 else {
            throw EmulatedRefusal(texts.isEmpty ? "The content has no text" : "The content must hold one text, not \(texts.count)", param: Self.text)
        }
        guard var parameters = (body["parameters"] ?? [String: Any]()) as? [String: Any] else {
            throw EmulatedRefusal("parameters must be an object", param: "parameters")
        }
        let plus = Self.isPlus(profile)
        let known = [Self.count, Self.negativePrompt, Self.watermark, Self.seed] + (plus ? [Self.size, Self.promptExtend] : [])
        if let unknown = parameters.keys.first(where: { !known.contains($0) }) {
            throw EmulatedRefusal("Parameter \(unknown) is not supported by \(profile.model)", param: unknown)
        }
        for flag in [Self.promptExtend, Self.watermark] {
            guard let value = parameters.removeValue(forKey: flag) else { continue }
            guard value is Bool else { throw EmulatedRefusal("\(flag) must be a boolean", param: flag) }
        }
        let counts = plus ? Self.counts : 1...1
        if let value = parameters[Self.count] {
            guard let count = value as? Int, counts.contains(count) else {
                throw EmulatedRefusal("n must be from \(counts.lowerBound) to \(counts.upperBound) for \(profile.model)", param: Self.count)
            }
            if count > 1, parameters[Self.size] != nil {
                throw EmulatedRefusal("size is allowed only when n is 1", param: Self.size)
            }
            if !plus { parameters[Self.count] = nil }
        }
        if let value = parameters[Self.seed] {
            guard let seed = value as? Int, Self.seeds.contains(seed) else {
                throw EmulatedRefusal("seed must be an integer from 0 to \(Self.seeds.upperBound)", param: Self.seed)
            }
        }
        // Longer text is cut, not refused.
        if let negative = parameters[Self.negativePrompt] as? String {
            parameters[Self.negativePrompt] = String(String.UnicodeScalarView(negative.unicodeScalars.prefix(Self.negativePromptLimit)))
        }
        parameters["prompt"] = String(String.UnicodeScalarView(texts[0].unicodeScalars.prefix(Self.promptLimit)))
        parameters[profile.images.field] = images
        return parameters
    }
}

extension DashScope {
    static let baseURL = "https://dashscope-intl.aliyuncs.com"
    static let baseURLVariable = "QIE_DASHSCOPE_BASE_URL"
    static let auth = ProviderProfile.Auth(header: "Authorization", scheme: "Bearer", keyVariable: "DASHSCOPE_API_KEY")
    static let routes = ProviderProfile.Routes(submit: "/api/v1/services/aigc/multimodal-generation/generation")
    static let images = ProviderProfile.ImageTransport(
        field: "image", isArray: true, maxCount: 3, inline: .dataURI, accepts: [.jpeg, .png, .webp])
    static let outputFormat = ProviderProfile.OutputFormatField(field: "format", spellings: [(.png, "png")], defaultFormat: .png)
    /// Each image at most 10 MB; no body limit is published, so the whole body is kept within that.
    static let requestLimits = ProviderProfile.RequestLimits(synchronous: 10_000_000)
    static let result = ProviderProfile.ResultLocation.urls(path: ["output", "choices[]", "message", "content[]", "image"])

    // Wire words.
    static let text = "text"
    static let count = "n"
    static let negativePrompt = "negative_prompt"
    static let size = "size"
    static let promptExtend = "prompt_extend"
    static let watermark = "watermark"
    static let seed = "seed"

    /// The longest instruction and negative prompt, in characters (longer text is cut by the host).
    static let promptLimit = 800
    static let negativePromptLimit = 500
    /// The seeds the host takes.
    static let seeds = 0...2_147_483_647
    /// Images one plus-series request makes.
    static let counts = 1...6
    /// The sides `size` takes, which also bound the shapes planned.
    static let sides = 512...2048

    /// Whether the endpoint is of the plus series (`n` up to 6, `size`, `prompt_extend`).
    static func isPlus(_ profile: ProviderProfile) -> Bool { profile.field(for: .numImages) != nil }

    /// The error code for an HTTP status (assumed; the profile's notes say so).
    static func errorCode(_ status: Int) -> String {
        switch status {
        case 401: "InvalidApiKey"
        case 403: "AccessDenied"
        case 404: "NotFound"
        case 429: "Throttling"
        case 500...: "InternalError"
        default: "InvalidParameter"
        }
    }

    /// What both endpoints assume.
    static let notes = [
        "Region: Singapore (international, https://dashscope-intl.aliyuncs.com) by default; for Beijing set QIE_DASHSCOPE_BASE_URL=https://dashscope.aliyuncs.com (or the base URL setting) with a Beijing key in DASHSCOPE_API_KEY: keys work only in their own region.",
        "Synchronous only (no job id, polling, webhook or cancel): an edit whose answer is lost (a killed run, a dropped connection, a 500) is left uncertain, as it may have been made and billed.",
        "Billed per image made; failures are free.",
        "Images go as data URIs in input.messages[0].content, input first, then references (Image 1, 2, 3 in the prompt), then the prompt as the one text item.",
        "The prompt is refused over 800 characters and the negative prompt over 500 (counted in Unicode code points) before anything is sent, since the host would cut them silently; the seed must be from 0 to 2147483647.",
        "watermark is always sent false (no mark is ever added).",
        "The output is about 1 megapixel at the last image's aspect ratio, assumed rounded to sides that are multiples of 16 (the document's 1248x832 example is); the input is prepared at exactly that size and shape (kept from 1:4 to 4:1), so that is the output planned. With reference images of another shape the output takes the last reference's shape.",
        "Results are PNG only and the request has no format field (the format listed is qie's own, never sent): other formats are converted locally. Result links are valid 24 hours and are downloaded at once.",
        "Each image may be at most 10 MB and no body limit is published: qie keeps each request within 10 MB, encoding images again when needed. BMP, TIFF and GIF are also read by the host; qie sends JPEG, PNG or WebP. References go at their own size (384-3072 px a side is recommended).",
        "Errors are assumed to be HTTP errors with {code, message, request_id}: InvalidParameter (400), InvalidApiKey (401), AccessDenied (403), Throttling (429, sent again after its pause), InternalError (5xx); a 2xx answer carrying a code is read as a failure.",
    ]
}

extension DashScope {
    /// An endpoint on the shared route: what differs between the models.
    static func profile(
        id: String, aliases: [String], model: String, version: ModelVersion, sizeField: String?,
        fields: [ProviderProfile.Field], price: Decimal, notes: [String]
    ) -> ProviderProfile {
        ProviderProfile(
            host: DashScope(), id: id, aliases: aliases, provider: "Alibaba Cloud Model Studio", model: model,
            version: version, document: "dashscope.md", baseURL: baseURL, baseURLVariable: baseURLVariable,
            routes: routes, auth: auth, images: images,
            sizes: .aboutOneMegapixel(sizeField: sizeField, separator: "*", sides: sides), outputFormat: outputFormat,
            fields: fields + [
                .init(option: .negativePrompt, name: negativePrompt, kind: .string, defaultValue: nil),
                .init(option: .seed, name: seed, kind: .integer, defaultValue: "random"),
            ],
            envelope: .flatJSON, flow: [.synchronous], requestLimits: requestLimits, result: result,
            pricing: .perImage(price), notes: notes + Self.notes)
    }
}

extension ProviderProfile {
    /// Model Studio `qwen-image-edit-plus` (dashscope.md).
    public static let dashscopeQwenImageEditPlus = DashScope.profile(
        id: "dashscope-qwen-image-edit-plus", aliases: ["dashscope", "dashscope-plus"], model: "qwen-image-edit-plus",
        version: .editPlus, sizeField: DashScope.size,
        fields: [.init(option: .numImages, name: DashScope.count, kind: .integer, defaultValue: "1")],
        price: Decimal(3) / 100,
        notes: [
            "$0.03 per image is derived: the price list gives international prices in CNY (0.220177 per image), converted at the 7.339 CNY per USD the same page uses (qwen3-max $1.2 = 8.807); Beijing bills 0.2 CNY per image (100 images free): set a price per image to match.",
            "qwen-image-edit-plus is the host's name for its 2025-10-30 snapshot; which open release runs (2509 or 2511) is not stated.",
            "prompt_extend is always sent false: the host's default (true) has a language model rewrite the prompt, so the edit would be neither the one asked for nor repeatable.",
            "n takes 1 to 6 (the number of images). size (W*H, 512-2048 a side) is sent only when an exact size is asked, and only with n = 1: the document's SDK sample says a size with n > 1 is an error (unconfirmed), so that is refused before sending.",
        ])

    /// Model Studio `qwen-image-edit` (dashscope.md).
    public static let dashscopeQwenImageEdit = DashScope.profile(
        id: "dashscope-qwen-image-edit", aliases: ["dashscope-edit"], model: "qwen-image-edit", version: .edit,
        sizeField: nil, fields: [], price: Decimal(45) / 1000,
        notes: [
            "$0.045 per image is derived: the price list gives international prices in CNY (0.330266 per image), converted at the 7.339 CNY per USD the same page uses (qwen3-max $1.2 = 8.807); Beijing bills 0.3 CNY per image (100 images free): set a price per image to match.",
            "One image per request (n = 1 only): several images are that many requests. No size and no prompt_extend: an exact size is refused, an aspect ratio shapes the input.",
            "Whether this model takes 2 or 3 images is unconfirmed (the Chinese page says it fuses several): 3 are allowed, as on the plus series.",
        ])
}
