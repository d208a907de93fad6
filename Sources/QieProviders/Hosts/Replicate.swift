import Crypto
import Foundation
import QieCore

/// Replicate's predictions for the official Qwen edit models: create
/// (`POST /v1/models/OWNER/NAME/predictions`, held for the result with
/// `Prefer: wait`, ended at a deadline with `Cancel-After`), get, cancel,
/// and webhooks signed the Standard Webhooks way.
public struct Replicate: EndpointHost {
    /// The host.
    public init() {}

    /// The company's name.
    public var name: String { "Replicate" }
    /// The endpoints it sells.
    public var profiles: [ProviderProfile] { [.replicateQwenImageEdit2511, .replicateQwenImageEditPlus, .replicateQwenImageEdit] }

    // MARK: Requests

    /// The input object, with the safety checker's switch turned the
    /// endpoint's way (it takes `disable_safety_checker`) and, beside a
    /// webhook, the filter that asks for the completed event only.
    public func body(_ fields: RequestFields, for profile: ProviderProfile) -> RequestBody {
        var fields = fields
        let safety = profile.field(for: .safetyChecker)?.name
        fields.options = fields.options.map { name, value in
            guard name == safety, case .bool(let runs) = value else { return (name, value) }
            return (name, .bool(!runs))
        }
        if let webhook = profile.field(for: .callbackURL)?.name, fields.beside.contains(where: { $0.0 == webhook }) {
            fields.beside.append((Self.eventsFilterField, .array([.string("completed")])))
        }
        return fields.laidOut(in: profile.envelope, model: profile.model)
    }

    /// `Prefer: wait=N` on a synchronous submission (N: the edit's timeout,
    /// 1 to 60 s), and on every submission `Cancel-After` a minute past the
    /// edit's timeout: qie cancels what it gives up at the timeout itself
    /// (the answer says what was billed), and the host ends what qie could
    /// not cancel (a run that was killed).
    public func requestHeaders(for flow: ProviderProfile.Flow, timeout: Double?, profile: ProviderProfile) -> [(String, String)] {
        var headers: [(String, String)] = []
        if flow == .synchronous {
            let wait = timeout.flatMap { $0.isFinite ? $0 : nil }.map { Int(min(Double(Self.longestWait), max(1, $0))) }
            headers.append(("Prefer", wait.map { "wait=\($0)" } ?? "wait"))
        }
        if let timeout, timeout > 0, timeout.isFinite {
            headers.append(("Cancel-After", "\(Int(min(timeout, Self.longestDeadline).rounded(.up)) + Self.deadlineMargin)s"))
        }
        return headers
    }

    // MARK: Answers

    /// A prediction: `id`, `status`, `error` and `output` (an array of
    /// URLs). `aborted` (its deadline passed before it started) ends it;
    /// a success whose output was removed (after an hour) says so.
    public func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        let id = (answer["id"] as? String) ?? jobID
        let status = (answer["status"] as? String)?.lowercased()
        if status == "aborted" {
            return .failed(
                message: "the prediction was aborted: its Cancel-After deadline passed before it started",
                requestID: id.map(ResponseReader.safeID))
        }
        if status == "succeeded", answer["data_removed"] as? Bool == true, !(answer["output"] is [Any]) {
            return .failed(
                message: "the prediction succeeded but its output was removed (Replicate keeps API outputs for an hour)",
                requestID: id.map(ResponseReader.safeID))
        }
        return try ResponseReader.job(answer, for: profile, id: id, error: answer["error"] as? String, cost: nil, warn: warn)
    }

    /// `metrics.total_time`: seconds from creation to the end.
    public func reportedDuration(_ answer: [String: Any]) -> Double? {
        guard let total = ((answer["metrics"] as? [String: Any])?["total_time"] as? NSNumber)?.doubleValue, total >= 0
        else { return nil }
        return total
    }

    /// The prediction after the cancel: `aborted`, or `canceled` with no
    /// `started_at`, never ran and is not billed; anything else had started.
    public func readCancel(_ body: Data, status: Int, for profile: ProviderProfile) -> CancelOutcome {
        guard (200..<300).contains(status), let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let word = object["status"] as? String
        else { return .refused(body, status: status, for: profile) }
        let started = object["started_at"].map { !($0 is NSNull) } ?? false
        if word == "aborted" || (word == "canceled" && !started) { return .cancelledBeforeRunning }
        return .tooLate(status: Sanitized.text(word, limit: 40))
    }

    // MARK: Callbacks

    /// Standard Webhooks signatures, checked with the account's webhook secret.
    public func callbackVerifier(secret: String) -> (any CallbackVerifier)? { StandardWebhookSignature(secret: secret) }

    // MARK: Emulation

    /// A new prediction's id: 26 lowercase letters and digits, as the host spells them.
    public func emulatedJobID(for profile: ProviderProfile) -> String {
        String((0..<26).map { _ in Self.idAlphabet.randomElement()! })
    }

    /// The host's word for `phase` (`aborted` is a cancelled job's word
    /// when its deadline ended it before it started).
    public func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String {
        switch phase {
        case .queued: "starting"
        case .running: "processing"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .cancelled: "canceled"
        }
    }

    /// 201 with the prediction as it stands: unfinished when created
    /// without a wait or when the wait ran out, finished otherwise.
    public func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer {
        EmulatedAnswer(status: 201, body: emulatedDescription(of: job, for: profile, asCallback: false))
    }

    /// The prediction object, the same polled and as a webhook's body. Its
    /// `input` is left empty: the emulator keeps no copy of the images.
    public func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any] {
        var status = emulatedStatus(job.phase, for: profile)
        if job.phase == .cancelled, job.endedByDeadline, job.startedAt == nil { status = "aborted" }
        var metrics: [String: Any] = [:]
        if let completed = job.completedAt {
            metrics["total_time"] = completed.timeIntervalSince(job.createdAt)
            if let started = job.startedAt { metrics["predict_time"] = completed.timeIntervalSince(started) }
        }
        let get = profile.baseURL + (profile.routes.poll ?? "").replacingOccurrences(of: "{id}", with: job.id)
        return [
            "id": job.id, "model": profile.model, "version": "hidden", "input": [String: Any](),
            "output": job.phase == .succeeded ? job.urls : NSNull(), "error": job.error ?? NSNull(), "status": status,
            "logs": "", "created_at": emulatedTimestamp(job.createdAt),
            "started_at": job.startedAt.map(emulatedTimestamp) ?? NSNull(),
            "completed_at": job.completedAt.map(emulatedTimestamp) ?? NSNull(), "data_removed": false, "metrics": metrics,
            "urls": ["get": get, "cancel": get + "/cancel", "web": "https://replicate.com/p/" + job.id],
        ]
    }

    /// A finished prediction (every submission is a job here: this answers
    /// only a route with no terms, which the host has not).
    public func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any] {
        let now = emulatedTimestamp(Date())
        return [
            "id": emulatedJobID(for: profile), "model": profile.model, "version": "hidden", "status": "succeeded",
            "output": results.urls, "error": NSNull(), "created_at": now, "started_at": now, "completed_at": now,
            "data_removed": false,
        ]
    }

    /// The input validation error (422): `{title, detail, status, invalid_fields[{type, field, description}]}`.
    public func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any] {
        [
            "title": "Input validation failed", "detail": message, "status": 422,
            "invalid_fields": [["type": "invalid", "field": param ?? "input", "description": message]],
        ]
    }

    /// Errors in the host's shapes: a refused field is 422; a wrong token,
    /// throttling and the rest have their own bodies.
    public func emulatedRefusal(_ message: String, param: String?, status: Int, for profile: ProviderProfile) -> EmulatedAnswer {
        switch status {
        case 400 where param != nil, 422:
            EmulatedAnswer(status: 422, body: emulatedError(message, param: param, for: profile))
        case 401:
            EmulatedAnswer(
                status: 401,
                body: ["title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401])
        case 429:
            EmulatedAnswer(status: 429, body: ["detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429])
        default:
            EmulatedAnswer(status: status, body: ["detail": message, "status": status])
        }
    }

    /// The prediction after the cancel.
    public func emulatedCancel(of job: EmulatedJob, for profile: ProviderProfile, wasRunning: Bool) -> EmulatedAnswer {
        EmulatedAnswer(status: 200, body: emulatedDescription(of: job, for: profile, asCallback: false))
    }

    /// `webhook-id` and `webhook-timestamp` always; `webhook-signature` when a secret is set.
    public func emulatedCallbackHeaders(for body: Data, secret: String?, at time: Date) -> [(String, String)] {
        let id = "msg_" + UUID().uuidString.lowercased()
        let timestamp = String(Int(time.timeIntervalSince1970))
        var headers = [(StandardWebhookSignature.idHeader, id), (StandardWebhookSignature.timestampHeader, timestamp)]
        if let secret, !secret.isEmpty {
            headers.append(
                (StandardWebhookSignature.signatureHeaderName, StandardWebhookSignature(secret: secret).signature(id: id, timestamp: timestamp, body: body)))
        }
        return headers
    }

    /// `Prefer: wait[=N]` holds the answer up to N seconds (60 without N);
    /// without it the prediction is answered at once. `Cancel-After`
    /// ends the prediction at its deadline.
    public func emulatedTerms(header: (String) -> String?, for profile: ProviderProfile) -> EmulatedTerms {
        var terms = EmulatedTerms(wait: .zero)
        if let prefer = header("Prefer") {
            let preferences = prefer.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if let wait = preferences.first(where: { $0 == "wait" || $0.hasPrefix("wait=") }) {
                let seconds = wait == "wait" ? Self.longestWait : Int(wait.dropFirst(5)) ?? 0
                guard (1...Self.longestWait).contains(seconds) else {
                    return EmulatedTerms(refusal: "Prefer: wait takes 1 to \(Self.longestWait) seconds, got \(Sanitized.text(wait, limit: 40))")
                }
                terms.wait = .seconds(seconds)
            }
        }
        if let deadline = header("Cancel-After") {
            guard let seconds = Self.seconds(inDuration: deadline) else {
                return EmulatedTerms(refusal: "Cancel-After must be a duration such as 30s, 1m or 1h30m, got \(Sanitized.text(deadline, limit: 40))")
            }
            terms.deadline = .milliseconds(Int64(seconds * 1000))
        }
        return terms
    }

    /// The fields the profile does not list: the webhook's events filter,
    /// and in `input` `aspect_ratio` (not on the first model), `go_fast`
    /// and the range of `output_quality`.
    public func emulatedCheck(_ body: inout [String: Any], for profile: ProviderProfile) -> EmulatedRefusal? {
        if let filter = body.removeValue(forKey: Self.eventsFilterField) {
            guard let events = filter as? [String], !events.isEmpty, events.allSatisfy(Self.webhookEvents.contains) else {
                return EmulatedRefusal(
                    "\(Self.eventsFilterField) must be a list of \(Self.webhookEvents.joined(separator: ", "))", param: Self.eventsFilterField)
            }
        }
        guard var input = body["input"] as? [String: Any] else { return nil }
        defer { body["input"] = input }
        if profile.version != .edit, let ratio = input.removeValue(forKey: Self.aspectRatioField) {
            guard let text = ratio as? String, Self.aspectRatios.contains(text) else {
                return EmulatedRefusal(
                    "\(Self.aspectRatioField) must be one of: \(Self.aspectRatios.joined(separator: ", "))", param: Self.aspectRatioField)
            }
        }
        if let fast = input.removeValue(forKey: Self.goFastField), !(fast is Bool) {
            return EmulatedRefusal("\(Self.goFastField) must be a boolean", param: Self.goFastField)
        }
        if let quality = profile.field(for: .outputCompression)?.name, let value = input[quality] as? Int, !(0...100).contains(value) {
            return EmulatedRefusal(
                "\(quality) must be greater than or equal to 0 and less than or equal to 100", param: quality)
        }
        return nil
    }
}

extension Replicate {
    static let baseURL = "https://api.replicate.com"
    static let baseURLVariable = "QIE_REPLICATE_BASE_URL"
    static let auth = ProviderProfile.Auth(header: "Authorization", scheme: "Bearer", keyVariable: "REPLICATE_API_TOKEN")
    /// The longest `Prefer: wait`, in seconds.
    static let longestWait = 60
    /// The longest timeout a `Cancel-After` is derived from, in seconds (a week).
    static let longestDeadline = 604_800.0
    /// Seconds `Cancel-After` leaves past the edit's timeout, for qie's own cancel to come first.
    static let deadlineMargin = 60
    static let eventsFilterField = "webhook_events_filter"
    static let webhookEvents = ["start", "output", "logs", "completed"]
    static let aspectRatioField = "aspect_ratio"
    static let aspectRatios = ["1:1", "16:9", "9:16", "4:3", "3:4", "match_input_image"]
    static let goFastField = "go_fast"
    static let idAlphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")

    /// Create, get and cancel of an official model's predictions.
    static func routes(_ model: String) -> ProviderProfile.Routes {
        .init(submit: "/v1/models/\(model)/predictions", poll: "/v1/predictions/{id}", cancel: "/v1/predictions/{id}/cancel")
    }

    /// A duration such as `30s`, `1m`, `1h30m` or `500ms`, in seconds; nil when malformed or not positive.
    static func seconds(inDuration text: String) -> Double? {
        let scales: [String: Double] = ["ms": 0.001, "s": 1, "m": 60, "h": 3600]
        var total = 0.0
        var number = ""
        var unit = ""
        func add() -> Bool {
            guard let value = Double(number), let scale = scales[unit] else { return false }
            total += value * scale
            (number, unit) = ("", "")
            return true
        }
        for character in text.trimmingCharacters(in: .whitespaces) {
            if character.isASCII, character.isNumber || character == "." {
                if !unit.isEmpty, !add() { return nil }
                number.append(character)
            } else if character.isASCII, character.isLetter, !number.isEmpty {
                unit.append(character)
            } else {
                return nil
            }
        }
        guard add(), total > 0, total.isFinite else { return nil }
        return total
    }

    /// What every Replicate profile assumes.
    static let notes = [
        "Flows: sync sends Prefer: wait=N (N: the edit's timeout, 1 to 60 s); an answer still starting or processing is polled at GET /v1/predictions/ID, never sent again. poll creates the prediction without Prefer (folder runs' default); callback adds webhook and webhook_events_filter [\"completed\"].",
        "Every submission carries Cancel-After: the edit's timeout plus 60 s, in whole seconds (1860s by default; the documents show 30s and 1m). qie cancels a prediction it gives up at its timeout itself; the deadline ends one qie could not cancel (a killed run): aborted if it never started (not billed), canceled if it was running (billed).",
        "Cancel (POST /v1/predictions/ID/cancel) answers with the prediction: aborted, or canceled with no started_at, never ran and is not billed; any other answer may have been. A prediction found aborted or canceled while polled is counted as billed (the conservative reading).",
        "aspect_ratio is left at match_input_image: qie prepares the input at the planned size (about 1 megapixel at the input's own shape, sides a multiple of 16, or what an exact size or aspect ratio asks) and the output is assumed to come back at the prepared input's size.",
        "go_fast is left at its default (true); the output compression is sent as output_quality (0-100, 95 by default, ignored for png); the safety checker setting is sent as disable_safety_checker, inverted.",
        "No num_outputs: several images are the request sent that many times.",
        "Local files travel as data URIs whatever their size (Replicate recommends data URLs up to 256 KB and its Files API beyond; no payload limit is published).",
        "Output is an array of URLs on replicate.delivery, removed after an hour: results are downloaded at once.",
        "Price: $0.03 per output image, from third-party sources only (unconfirmed; whether it depends on size or go_fast is not known).",
        "Errors: 422 {title, detail, status, invalid_fields[{type, field, description}]} for a refused input (shape from Replicate's API docs as summarised; the type words are the emulator's own), 401 {title: Unauthenticated, detail, status}, 429 {detail, status}.",
        "Webhooks (REPLICATE_WEBHOOK_SECRET, from GET /v1/webhooks/default/secret): Standard Webhooks, webhook-signature v1,BASE64 of HMAC-SHA256 over ID.TIMESTAMP.BODY with the base64 key after whsec_ (a secret that is not base64 is used as its bytes), within 300 s of the signed time.",
        "Status polls are kept under Replicate's 3000 requests a minute for other endpoints (50 a second).",
    ]
}

/// Checks Standard Webhooks signatures (Replicate's webhooks): the
/// `webhook-signature` header lists `v1,BASE64` signatures, each an
/// HMAC-SHA256 of `ID.TIMESTAMP.BODY` (`webhook-id`, `webhook-timestamp`)
/// keyed with the base64-decoded part of the secret after `whsec_`. The
/// timestamp must be within `tolerance` seconds of now; comparison is constant-time.
public struct StandardWebhookSignature: CallbackVerifier {
    /// The header naming the delivery (the same on every retry).
    static let idHeader = "webhook-id"
    /// The header with the delivery's signed time (Unix seconds).
    static let timestampHeader = "webhook-timestamp"
    /// The header with the signatures.
    static let signatureHeaderName = "webhook-signature"

    /// The account's webhook secret (`whsec_BASE64`).
    public var secret: String
    /// How far the signed time may be from now, in seconds.
    public var tolerance: Double

    /// The header that carries the signature.
    public var signatureHeader: String { Self.signatureHeaderName }

    /// A check with `secret`, accepting signed times within `tolerance` seconds.
    public init(secret: String, tolerance: Double = 300) {
        self.secret = secret
        self.tolerance = tolerance
    }

    /// The HMAC key: the base64 after `whsec_`, decoded (the secret's own bytes when it is not base64).
    var key: SymmetricKey {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        return SymmetricKey(data: Data(base64Encoded: encoded) ?? Data(secret.utf8))
    }

    /// What a valid, recent signature vouches for; nil when a header is
    /// missing, the time is stale or no listed `v1` signature matches.
    public func verify(header: (String) -> String?, body: Data, now: Date) -> SignedDelivery? {
        guard let id = header(Self.idHeader), !id.isEmpty, let timestamp = header(Self.timestampHeader),
            let seconds = Int(timestamp.trimmingCharacters(in: .whitespaces)),
            abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance, let signatures = header(Self.signatureHeaderName)
        else { return nil }
        let signed = Data("\(id).\(timestamp.trimmingCharacters(in: .whitespaces)).".utf8) + body
        let key = self.key
        for candidate in signatures.split(separator: " ") {
            let parts = candidate.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1", let code = Data(base64Encoded: String(parts[1])) else { continue }
            if HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: signed, using: key) {
                return SignedDelivery(signedAt: Date(timeIntervalSince1970: Double(seconds)), body: body)
            }
        }
        return nil
    }

    /// The `webhook-signature` value a sender writes for `body` delivered as `id` at `timestamp`.
    public func signature(id: String, timestamp: String, body: Data) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).".utf8) + body, using: key)
        return "v1," + Data(code).base64EncodedString()
    }
}

extension ProviderProfile {
    /// Replicate `qwen/qwen-image-edit-2511` (more/replicate.md).
    public static let replicateQwenImageEdit2511 = Replicate.profile(
        model: "qwen/qwen-image-edit-2511", version: .edit2511, id: "replicate-qwen-image-edit-2511",
        aliases: ["replicate-2511", "replicate"], images: .init(field: "image", isArray: true, maxCount: 3, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        notes: [
            "Inputs as listed for qwen/qwen-image-edit-plus (the 2511 model's llms.txt lists the same); at most 3 images is assumed."
        ])

    /// Replicate `qwen/qwen-image-edit-plus` (more/replicate.md).
    public static let replicateQwenImageEditPlus = Replicate.profile(
        model: "qwen/qwen-image-edit-plus", version: .editPlus, id: "replicate-qwen-image-edit-plus",
        aliases: ["replicate-plus"], images: .init(field: "image", isArray: true, maxCount: 3, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        notes: ["Inputs from the model's version page (7677b9cc); the most images one request takes is not published: 3 is assumed."])

    /// Replicate `qwen/qwen-image-edit` (more/replicate.md).
    public static let replicateQwenImageEdit = Replicate.profile(
        model: "qwen/qwen-image-edit", version: .edit, id: "replicate-qwen-image-edit",
        aliases: ["replicate-edit"], images: .init(field: "image", isArray: false, maxCount: 1, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        notes: [
            "Inputs from generated client types (one image as a single URI); its defaults are assumed to be the plus model's, and aspect_ratio (disputed) is taken as absent."
        ])
}

extension Replicate {
    /// A profile of an official Qwen model on Replicate: everything but the
    /// model, its images and its own notes is the same.
    static func profile(
        model: String, version: ModelVersion, id: String, aliases: [String], images: ProviderProfile.ImageTransport,
        notes: [String]
    ) -> ProviderProfile {
        ProviderProfile(
            host: Replicate(),
            id: id,
            aliases: aliases,
            provider: "Replicate",
            model: model,
            version: version,
            document: "replicate.md",
            baseURL: baseURL,
            baseURLVariable: baseURLVariable,
            routes: routes(model),
            auth: auth,
            images: images,
            sizes: .followsInput,
            outputFormat: .init(field: "output_format", spellings: [(.webp, "webp"), (.jpeg, "jpg"), (.png, "png")], defaultFormat: .webp),
            fields: [
                .init(option: .seed, name: "seed", kind: .integer, defaultValue: "random"),
                .init(option: .outputCompression, name: "output_quality", kind: .integer, defaultValue: "95"),
                .init(option: .safetyChecker, name: "disable_safety_checker", kind: .boolean, defaultValue: "false"),
                .init(option: .callbackURL, name: "webhook", kind: .string, defaultValue: nil),
            ],
            envelope: .inputObject,
            flow: [.synchronous, .polling, .callback],
            requestLimits: .init(pollsPerSecond: 50),
            result: .urlList(path: ["output"]),
            pricing: .perImage(0.03),
            notes: notes + Self.notes,
            callback: .init(
                signatureHeader: StandardWebhookSignature.signatureHeaderName, deliveryHeader: StandardWebhookSignature.idHeader,
                secretVariable: "REPLICATE_WEBHOOK_SECRET", idField: "id"))
    }
}
