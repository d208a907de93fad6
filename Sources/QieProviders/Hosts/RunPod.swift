import Foundation
import QieCore

/// RunPod's public endpoints: `runsync`, and the serverless queue every
/// RunPod endpoint has (`/run`, `/status/{id}`, `/cancel/{id}`), from the
/// endpoints' documents and RunPod's serverless documentation.
public struct RunPod: EndpointHost {
    /// The host.
    public init() {}

    /// The company's name.
    public var name: String { "RunPod" }
    /// The endpoints it sells.
    public var profiles: [ProviderProfile] { [.runpodQwenImageEdit2511, .runpodQwenImageEdit] }

    // MARK: Answers

    /// Reads an answer: the job's `id`, `status`, `error` and the reported `output.cost`.
    public func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        try ResponseReader.job(
            answer, for: profile, id: (answer["id"] as? String) ?? jobID, error: answer["error"] as? String,
            cost: (answer["output"] as? [String: Any])?["cost"], warn: warn)
    }

    /// `delayTime` (in the queue) plus `executionTime` (running), both in ms.
    public func reportedDuration(_ answer: [String: Any]) -> Double? {
        guard let delay = (answer["delayTime"] as? NSNumber)?.doubleValue,
            let execution = (answer["executionTime"] as? NSNumber)?.doubleValue, delay >= 0, execution >= 0
        else { return nil }
        return (delay + execution) / 1000
    }

    /// The job's status after the cancel: `CANCELLED` without an
    /// `executionTime` never ran.
    public func readCancel(_ body: Data, status: Int, for profile: ProviderProfile) -> CancelOutcome {
        guard (200..<300).contains(status), let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let word = object["status"] as? String
        else { return .refused(body, status: status, for: profile) }
        if word == "CANCELLED", object["executionTime"] == nil { return .cancelledBeforeRunning }
        return .tooLate(status: Sanitized.text(word, limit: 40))
    }

    // MARK: Emulation

    /// A new job's id, spelled as the host spells them.
    public func emulatedJobID(for profile: ProviderProfile) -> String { "sync-" + UUID().uuidString.lowercased() }

    /// The host's word for `phase`.
    public func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String {
        switch phase {
        case .queued: "IN_QUEUE"
        case .running: "IN_PROGRESS"
        case .succeeded: "COMPLETED"
        case .failed: "FAILED"
        case .cancelled: "CANCELLED"
        }
    }

    /// `/run` answers at once, in the queue; a runsync that outlasts its
    /// wait answers with the job still running.
    public func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer {
        EmulatedAnswer(
            status: 200,
            body: enqueued ? ["id": job.id, "status": "IN_QUEUE"] : ["id": job.id, "status": "IN_PROGRESS", "delayTime": 0])
    }

    /// The status object: time in the queue and running (ms) once it
    /// started, the output once completed.
    public func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any] {
        var object: [String: Any] = ["id": job.id, "status": emulatedStatus(job.phase, for: profile)]
        if let started = job.startedAt {
            object["delayTime"] = Int(started.timeIntervalSince(job.createdAt) * 1000)
            object["executionTime"] = Int(((job.completedAt ?? Date()).timeIntervalSince(started)) * 1000)
        }
        if job.phase == .succeeded {
            object["output"] = ["image_url": job.urls.first ?? "", "cost": NSDecimalNumber(decimal: job.cost)]
        }
        if let error = job.error { object["error"] = error }
        return object
    }

    /// The answer to a synchronous edit that finished.
    public func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any] {
        [
            "id": emulatedJobID(for: profile), "status": "COMPLETED", "delayTime": 0, "executionTime": 1,
            "output": ["image_url": results.urls.first ?? "", "cost": results.costValue],
        ]
    }

    /// An error in the host's shape.
    public func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any] {
        ["id": emulatedJobID(for: profile), "status": "FAILED", "error": message]
    }

    /// The job's status object after the cancel.
    public func emulatedCancel(of job: EmulatedJob, for profile: ProviderProfile, wasRunning: Bool) -> EmulatedAnswer {
        EmulatedAnswer(status: 200, body: emulatedDescription(of: job, for: profile, asCallback: false))
    }
}

extension RunPod {
    static let baseURL = "https://api.runpod.ai"
    static let baseURLVariable = "QIE_RUNPOD_BASE_URL"
    static let auth = ProviderProfile.Auth(header: "Authorization", scheme: "Bearer", keyVariable: "RUNPOD_API_KEY")

    /// The routes every RunPod endpoint has: `runsync`, and the serverless
    /// queue (`/run`, `/status/{id}`, `/cancel/{id}`).
    static func queue(_ endpoint: String) -> ProviderProfile.Routes {
        .init(
            submit: "/v2/\(endpoint)/runsync", poll: "/v2/\(endpoint)/status/{id}", enqueue: "/v2/\(endpoint)/run",
            cancel: "/v2/\(endpoint)/cancel/{id}")
    }

    /// What every RunPod profile assumes of the serverless queue.
    static let queueNotes = [
            "If runsync answers IN_QUEUE or IN_PROGRESS with an id, the job is polled at RunPod's general status route (/v2/ENDPOINT/status/ID, not in the document) instead of being sent again.",
            "The poll flow is RunPod's general queue pair (POST /v2/ENDPOINT/run, then GET /v2/ENDPOINT/status/ID; not in the document): the job's id is known milliseconds after sending, so a killed run asks about the job instead of paying for it again. Folder runs use it by default.",
            "Payload limits from RunPod's serverless documentation: 10 MB on /run, 20 MB on runsync (after base64).",
            "Cancel (POST /v2/ENDPOINT/cancel/ID, from RunPod's serverless documentation): its answer is assumed to be the job's status object; a job cancelled with no executionTime never ran and is not billed, one with it may have been.",
    ]
}

extension ProviderProfile {
    /// RunPod public endpoint `qwen-image-edit-2511` (runpod-qwen-image-edit-2511.md).
    public static let runpodQwenImageEdit2511 = ProviderProfile(
        host: RunPod(),
        id: "runpod-qwen-image-edit-2511",
        aliases: ["runpod-2511", "runpod"],
        provider: "RunPod",
        model: "qwen-image-edit-2511",
        version: .edit2511,
        document: "runpod-qwen-image-edit-2511.md",
        baseURL: RunPod.baseURL,
        baseURLVariable: RunPod.baseURLVariable,
        routes: RunPod.queue("qwen-image-edit-2511"),
        auth: RunPod.auth,
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
        ] + RunPod.queueNotes)
}

extension ProviderProfile {
    /// RunPod public endpoint `qwen-image-edit` (runpod-qwen-image-edit.md).
    public static let runpodQwenImageEdit = ProviderProfile(
        host: RunPod(),
        id: "runpod-qwen-image-edit",
        aliases: ["runpod-edit"],
        provider: "RunPod",
        model: "qwen-image-edit",
        version: .edit,
        document: "runpod-qwen-image-edit.md",
        baseURL: RunPod.baseURL,
        baseURLVariable: RunPod.baseURLVariable,
        routes: RunPod.queue("qwen-image-edit"),
        auth: RunPod.auth,
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
        ] + RunPod.queueNotes)
}
