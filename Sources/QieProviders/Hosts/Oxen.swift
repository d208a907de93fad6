import Foundation
import QieCore

/// Oxen.ai's image edits: the synchronous edit, the queue and its event stream.
public struct Oxen: EndpointHost {
    /// The host.
    public init() {}

    /// The company's name.
    public var name: String { "Oxen.ai" }
    /// The endpoints it sells.
    public var profiles: [ProviderProfile] { [.oxenQwenImageEdit2511] }

    // MARK: Answers

    /// The queue answers an enqueue with its generations; a generation
    /// (polled, synchronous or in an event) is `{generation_id, status,
    /// result_url, error_message}`.
    public func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        if let generations = answer["generations"] as? [[String: Any]],
            let generation = generations.first?["generation_id"] as? String
        {
            return .pending(
                requestID: ResponseReader.safeID(generation),
                status: Sanitized.text((generations.first?["status"] as? String) ?? "queued", limit: 40))
        }
        let error = (answer["error_message"] as? String) ?? (answer["error"] as? String)
        return try ResponseReader.job(
            answer, for: profile, id: ((answer["generation_id"] ?? answer["id"]) as? String) ?? jobID, error: error, cost: nil,
            warn: warn)
    }

    // MARK: Emulation

    /// A new job's id, spelled as the host spells them.
    public func emulatedJobID(for profile: ProviderProfile) -> String { "gen_" + UUID().uuidString.lowercased() }

    /// The host's word for `phase`.
    public func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String { phase.rawValue }

    /// The queue's generations, the new one queued.
    public func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer {
        EmulatedAnswer(status: 200, body: ["generations": [["generation_id": job.id, "status": emulatedStatus(job.phase, for: profile)]]])
    }

    /// A generation: `{generation_id, status, result_url, error_message}`.
    public func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any] {
        [
            "generation_id": job.id, "status": emulatedStatus(job.phase, for: profile), "result_url": job.urls.first ?? NSNull(),
            "error_message": job.error ?? NSNull(),
        ]
    }

    /// The answer to a synchronous edit that finished.
    public func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any] {
        ["generation_id": emulatedJobID(for: profile), "status": "succeeded", "result_url": results.urls.first ?? ""]
    }

    /// `{"error": message}`.
    public func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any] {
        ["error": message]
    }

    /// The completion event, with the generation as its data.
    public func emulatedEvent(for job: EmulatedJob, profile: ProviderProfile) -> (name: String, data: [String: Any])? {
        guard let name = profile.events?.completedEvents.first else { return nil }
        return (name, ["generation_id": job.id, "status": emulatedStatus(job.phase, for: profile), "result_url": job.urls.first ?? NSNull()])
    }
}

extension ProviderProfile {
    /// Oxen.ai `qwen-image-edit-2511` (oxen-qwen-image-edit-2511.md).
    public static let oxenQwenImageEdit2511 = ProviderProfile(
        host: Oxen(),
        id: "oxen-qwen-image-edit-2511",
        aliases: ["oxen"],
        provider: "Oxen.ai",
        model: "qwen-image-edit-2511",
        version: .edit2511,
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
