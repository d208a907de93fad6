import Crypto
import Foundation
import QieCore

/// fal.ai's model APIs for the Qwen Image Edit releases: the queue
/// (submit, status, result, cancel; webhooks signed with ED25519 against
/// fal's published keys) and the synchronous route, from fal's documentation
/// and the endpoint types its JS client generates from fal's specifications.
public struct Fal: EndpointHost {
    /// The host.
    public init() {}

    /// The company's name.
    public var name: String { "fal.ai" }
    /// The endpoints it sells.
    public var profiles: [ProviderProfile] {
        [.falQwenImageEdit2511, .falQwenImageEditPlus, .falQwenImageEdit2509, .falQwenImageEdit]
    }

    // MARK: Requests

    /// All fields at the top level, the planned size as the object
    /// `image_size: {width, height}`.
    public func body(_ fields: RequestFields, for profile: ProviderProfile) -> RequestBody {
        let image: JSONValue = fields.imagesAsArray ? .array(fields.images.map { .image($0) }) : .image(fields.images[0])
        let sizes: [(String, JSONValue)] = fields.sizes.map { name, value in
            guard let size = PixelSize(parsing: value) else { return (name, .string(value)) }
            return (name, .object([("width", .integer(size.width)), ("height", .integer(size.height))]))
        }
        let format = fields.outputFormat.map { [($0.0, JSONValue.string($0.1))] } ?? []
        return .json(
            .object(
                [("prompt", .string(fields.prompt)), (fields.imageField, image)] + sizes + fields.options + fields.beside + format))
    }

    // MARK: Answers

    /// Reads a queue status (`IN_QUEUE`, `IN_PROGRESS`, or `COMPLETED`,
    /// whose result is fetched apart), a webhook delivery (`OK` with the
    /// output as `payload`, or `ERROR`), or the model's output itself (a
    /// synchronous answer or a fetched result: `images[].url`).
    public func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        let id = ((answer["request_id"] as? String) ?? jobID).map(ResponseReader.safeID)
        switch (answer["status"] as? String) ?? "" {
        case "IN_QUEUE", "IN_PROGRESS":
            guard let id else { break }
            return .pending(requestID: id, status: Sanitized.text(answer["status"] as? String ?? "", limit: 40))
        case "COMPLETED":
            if let error = Self.errorText(answer) { return .failed(message: Sanitized.text(error), requestID: id) }
            guard let id else { break }
            return .finished(requestID: id)
        case "OK":
            guard let payload = answer["payload"] as? [String: Any] else {
                // The output could not be delivered (`payload_error`): it is fetched from the queue.
                guard let id else { break }
                return .finished(requestID: id)
            }
            return try ResponseReader.job(payload, for: profile, id: id, error: nil, cost: nil, warn: warn)
        case "ERROR":
            let words = [Self.errorText(answer), (answer["payload"] as? [String: Any]).flatMap(Self.errorText)].compactMap { $0 }
            return .failed(
                message: Sanitized.text(words.isEmpty ? "the request failed" : words.joined(separator: ": ")), requestID: id)
        default:
            break
        }
        return try ResponseReader.job(answer, for: profile, id: id, error: Self.errorText(answer), cost: nil, warn: warn)
    }

    /// `metrics.inference_time` of a completed status, in seconds (the run,
    /// not the time in the queue).
    public func reportedDuration(_ answer: [String: Any]) -> Double? {
        guard let seconds = ((answer["metrics"] as? [String: Any])?["inference_time"] as? NSNumber)?.doubleValue,
            seconds.isFinite, seconds >= 0
        else { return nil }
        return seconds
    }

    /// The cancel's answer, by its word (its HTTP statuses are not
    /// confirmed): `OK` removed it from the queue before it ran;
    /// `CANCELLATION_REQUESTED` signalled a run already started and
    /// `ALREADY_COMPLETED` came too late (both may be billed); a bare
    /// `{"success": true}` cannot say whether it ran, so it counts as too
    /// late; `NOT_FOUND` and anything else are refusals.
    public func readCancel(_ body: Data, status: Int, for profile: ProviderProfile) -> CancelOutcome {
        let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
        switch ((object?["status"] as? String) ?? "").uppercased() {
        case "OK" where (200..<300).contains(status): return .cancelledBeforeRunning
        case "CANCELLATION_REQUESTED": return .tooLate(status: "CANCELLATION_REQUESTED")
        case "ALREADY_COMPLETED": return .tooLate(status: "ALREADY_COMPLETED")
        case "" where (200..<300).contains(status) && object?["success"] as? Bool == true:
            return .tooLate(status: "success")
        default: return .refused(body, status: status, for: profile)
        }
    }

    /// The ED25519 check against the keys published at `secret` (the key
    /// set's address: `QIE_FAL_JWKS_URL`, or fal's by default).
    public func callbackVerifier(secret: String) -> (any CallbackVerifier)? { FalWebhookSignature(keySetURL: secret) }

    /// `error`, or `detail` (a string or a validation list).
    static func errorText(_ object: [String: Any]) -> String? {
        if let error = object["error"] as? String, !error.isEmpty { return error }
        return (object["detail"] as? String) ?? ResponseReader.validationErrors(object["detail"])
    }

    // MARK: Emulation

    /// A new request id, spelled as fal spells them (a UUID).
    public func emulatedJobID(for profile: ProviderProfile) -> String { UUID().uuidString.lowercased() }

    /// The queue's word for `phase`: there is no failed or cancelled status,
    /// an ended request is `COMPLETED` and its result says how.
    public func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String {
        switch phase {
        case .queued: "IN_QUEUE"
        case .running: "IN_PROGRESS"
        case .succeeded, .failed, .cancelled: "COMPLETED"
        }
    }

    /// The queue status of the submitted request, with its own addresses.
    public func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer {
        var status = queueStatus(of: job, for: profile)
        status["gateway_request_id"] = job.id
        return EmulatedAnswer(status: 200, body: status)
    }

    /// The queue status polled, or the webhook delivery of an ended request.
    public func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any] {
        guard asCallback else { return queueStatus(of: job, for: profile) }
        var delivery: [String: Any] = ["request_id": job.id, "gateway_request_id": job.id]
        if job.phase == .succeeded {
            delivery["status"] = "OK"
            delivery["payload"] = output(of: job)
        } else {
            let message = job.error ?? "the request was cancelled"
            delivery["status"] = "ERROR"
            delivery["error"] = message
            let detail: [[String: Any]] = [["loc": ["body"], "msg": message, "type": "runtime_error"]]
            delivery["payload"] = ["detail": detail]
        }
        return delivery
    }

    /// The model's output, as the synchronous route answers it.
    public func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any] {
        [
            "images": results.urls.map { ["url": $0, "content_type": Self.contentType(of: $0)] },
            "seed": Int.random(in: 0..<1_000_000), "prompt": results.prompt,
            "has_nsfw_concepts": results.urls.map { _ in false }, "timings": ["inference": 0.5],
        ]
    }

    /// `{"detail": [{"loc", "msg", "type"}]}` for a field at fault, else `{"detail": message}`.
    public func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any] {
        guard let param else { return ["detail": message] }
        let detail: [[String: Any]] = [["loc": param.isEmpty ? ["body"] : ["body", param], "msg": message, "type": Self.errorType(message)]]
        return ["detail": detail]
    }

    /// Validation refusals (the emulator's 400) are 422, as fal's request
    /// validation answers; others keep their status.
    public func emulatedRefusal(_ message: String, param: String?, status: Int, for profile: ProviderProfile) -> EmulatedAnswer {
        switch status {
        case 400: EmulatedAnswer(status: 422, body: emulatedError(message, param: param ?? "", for: profile))
        case 401: EmulatedAnswer(status: 401, body: ["detail": "Unauthorized: missing or invalid key (Authorization: Key ...)"])
        default: EmulatedAnswer(status: status, body: ["detail": message])
        }
    }

    /// The result of an ended request: its output, or its error (422); a
    /// request still in the queue or running answers 400.
    public func emulatedResult(of job: EmulatedJob, for profile: ProviderProfile) -> EmulatedAnswer {
        switch job.phase {
        case .succeeded: EmulatedAnswer(status: 200, body: output(of: job))
        case .failed: EmulatedAnswer(status: 422, body: emulatedError(job.error ?? "the request failed", param: "", for: profile))
        case .cancelled: EmulatedAnswer(status: 400, body: ["detail": "Request was cancelled"])
        case .queued, .running: EmulatedAnswer(status: 400, body: ["detail": "Request is still in progress"])
        }
    }

    /// Removed from the queue: 200 `OK`; signalled while running: 202
    /// `CANCELLATION_REQUESTED`; ended before: 400 `ALREADY_COMPLETED`.
    public func emulatedCancel(of job: EmulatedJob, for profile: ProviderProfile, wasRunning: Bool) -> EmulatedAnswer {
        switch (job.phase, wasRunning) {
        case (.cancelled, false): EmulatedAnswer(status: 200, body: ["status": "OK"])
        case (.cancelled, true): EmulatedAnswer(status: 202, body: ["status": "CANCELLATION_REQUESTED"])
        default: EmulatedAnswer(status: 400, body: ["status": "ALREADY_COMPLETED"])
        }
    }

    /// The four signature headers, signed with the emulator's key.
    public func emulatedCallbackHeaders(for body: Data, secret: String?, at time: Date) -> [(String, String)] {
        let id = ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["request_id"] as? String ?? ""
        let user = "qie-emulator"
        let timestamp = String(Int(time.timeIntervalSince1970))
        let message = FalWebhookSignature.message(requestID: id, userID: user, timestamp: timestamp, body: body)
        let signature = (try? Self.emulatorKey(secret).signature(for: message)).map(FalWebhookSignature.hex) ?? ""
        return [
            ("X-Fal-Webhook-Request-Id", id), ("X-Fal-Webhook-User-Id", user), ("X-Fal-Webhook-Timestamp", timestamp),
            ("X-Fal-Webhook-Signature", signature),
        ]
    }

    /// The emulator's public key as a JWKS, at `/.well-known/jwks.json`.
    public func emulatedDocuments(secret: String?) -> [(path: String, body: [String: Any])] {
        let key = Self.emulatorKey(secret).publicKey.rawRepresentation
        let x = key.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return [
            (
                Self.emulatedKeySetPath,
                ["keys": [["kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "qie-emulator", "x": x]]]
            )
        ]
    }

    /// Where the emulator publishes its key set.
    public static let emulatedKeySetPath = "/.well-known/jwks.json"

    /// The key the emulator signs deliveries with: derived from its signing
    /// secret when it has one, else made once per process.
    static func emulatorKey(_ secret: String?) -> Curve25519.Signing.PrivateKey {
        guard let secret, !secret.isEmpty else { return processKey }
        let seed = Data(SHA256.hash(data: Data(("qie emulated webhook key:" + secret).utf8)))
        return (try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)) ?? processKey
    }

    private static let processKey = Curve25519.Signing.PrivateKey()

    /// A queue status: the request's id and word, its addresses, its place
    /// in the queue, and its run time once completed.
    private func queueStatus(of job: EmulatedJob, for profile: ProviderProfile) -> [String: Any] {
        func address(_ route: String?) -> String {
            ProviderProfile.Routes.url(route ?? "", base: profile.baseURL, pointedElsewhere: false)
                .replacingOccurrences(of: "{id}", with: job.id)
        }
        var status: [String: Any] = [
            "status": emulatedStatus(job.phase, for: profile), "request_id": job.id,
            "status_url": address(profile.routes.poll), "response_url": address(profile.routes.result),
            "cancel_url": address(profile.routes.cancel), "logs": NSNull(),
        ]
        if job.phase == .queued { status["queue_position"] = 0 }
        if job.phase.isTerminal, let started = job.startedAt {
            status["metrics"] = ["inference_time": max(0, (job.completedAt ?? started).timeIntervalSince(started))]
        }
        return status
    }

    /// `QwenImageOutput`: the images with their size and type, the seed, timings.
    private func output(of job: EmulatedJob) -> [String: Any] {
        [
            "images": job.urls.map { url -> [String: Any] in
                ["url": url, "width": job.outputSize.width, "height": job.outputSize.height, "content_type": Self.contentType(of: url)]
            },
            "seed": job.seed, "prompt": "", "has_nsfw_concepts": job.urls.map { _ in false },
            "timings": ["inference": job.completedAt.map { max(0, $0.timeIntervalSince(job.startedAt ?? job.createdAt)) } ?? 0],
        ]
    }

    /// The media type of a result address (a data URI's own, else by extension).
    private static func contentType(of url: String) -> String {
        if url.hasPrefix("data:"), let end = url.firstIndex(of: ";") { return String(url[url.index(url.startIndex, offsetBy: 5)..<end]) }
        let ext = url.split(separator: ".").last.map(String.init)?.lowercased() ?? ""
        return OutputFormat.allCases.first { $0.fileExtension == ext }?.mimeType ?? "image/jpeg"
    }

    /// A pydantic error type for an emulator's refusal.
    private static func errorType(_ message: String) -> String {
        if message.hasPrefix("Missing") { return "missing" }
        if message.hasPrefix("Unknown") { return "extra_forbidden" }
        if message.contains("must be one of") { return "literal_error" }
        if message.contains("must be from") { return "value_error.number" }
        return "value_error"
    }
}

/// Checks fal's webhook signatures: an ED25519 signature (hex, in
/// `X-Fal-Webhook-Signature`) over `request_id \n user_id \n timestamp \n
/// hex(sha256(body))` from the `X-Fal-Webhook-Request-Id`, `-User-Id` and
/// `-Timestamp` headers, valid under any key of fal's published key set
/// (JWKS, `keys[].x` in base64url), signed within `tolerance` seconds of now.
public struct FalWebhookSignature: CallbackVerifier {
    /// Where the keys are published, until they are fetched (then nil).
    public var keySetURL: String?
    /// The keys a signature may be made with.
    public var keys: [Curve25519.Signing.PublicKey]
    /// How far the signed time may be from now, in seconds.
    public var tolerance: Double

    /// The header that carries the signature.
    public var signatureHeader: String { "X-Fal-Webhook-Signature" }

    /// A check against the keys published at `keySetURL` (fetched by the
    /// listener), or against `keys`.
    public init(keySetURL: String? = nil, keys: [Curve25519.Signing.PublicKey] = [], tolerance: Double = 300) {
        self.keySetURL = keySetURL
        self.keys = keys
        self.tolerance = tolerance
    }

    /// The check against the keys of the JWKS `document`.
    public func verifying(withKeySet document: Data) -> (any CallbackVerifier)? {
        let keys = Self.keys(fromKeySet: document)
        return keys.isEmpty ? nil : FalWebhookSignature(keys: keys, tolerance: tolerance)
    }

    /// The Ed25519 keys of a JWKS document (`keys[].x`, base64url).
    public static func keys(fromKeySet document: Data) -> [Curve25519.Signing.PublicKey] {
        guard let object = try? JSONSerialization.jsonObject(with: document) as? [String: Any],
            let entries = object["keys"] as? [[String: Any]]
        else { return [] }
        return entries.compactMap { entry in
            guard let x = entry["x"] as? String, (entry["crv"] as? String).map({ $0 == "Ed25519" }) ?? true else { return nil }
            var base64 = x.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
            return Data(base64Encoded: base64).flatMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
        }
    }

    /// What a valid, recent signature of `body` vouches for; nil when a
    /// header is missing, the signature is not one of the keys', or the
    /// signed time is more than `tolerance` seconds from `now`.
    public func verify(header: (String) -> String?, body: Data, now: Date) -> SignedDelivery? {
        guard let requestID = header("X-Fal-Webhook-Request-Id"), let userID = header("X-Fal-Webhook-User-Id"),
            let timestamp = header("X-Fal-Webhook-Timestamp")?.trimmingCharacters(in: .whitespaces),
            let seconds = Int(timestamp), abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance,
            let signature = header(signatureHeader).flatMap({ Self.bytes(fromHex: $0.trimmingCharacters(in: .whitespaces)) })
        else { return nil }
        let message = Self.message(requestID: requestID, userID: userID, timestamp: timestamp, body: body)
        guard keys.contains(where: { $0.isValidSignature(signature, for: message) }) else { return nil }
        return SignedDelivery(signedAt: Date(timeIntervalSince1970: Double(seconds)), body: body)
    }

    /// What is signed: `request_id \n user_id \n timestamp \n hex(sha256(body))`, UTF-8.
    public static func message(requestID: String, userID: String, timestamp: String, body: Data) -> Data {
        Data([requestID, userID, timestamp, hex(Data(SHA256.hash(data: body)))].joined(separator: "\n").utf8)
    }

    /// Bytes as lowercase hex.
    public static func hex(_ bytes: Data) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// The bytes of 128 hex digits (a signature), or nil.
    private static func bytes(fromHex hex: String) -> Data? {
        guard hex.utf8.count == 128, hex.allSatisfy(\.isHexDigit) else { return nil }
        let digits = Array(hex)
        return Data(stride(from: 0, to: digits.count, by: 2).compactMap { UInt8(String(digits[$0...$0 + 1]), radix: 16) })
    }
}

extension Fal {
    /// The routes of `fal-ai/ENDPOINT`: the synchronous route on fal.run,
    /// and the queue on the base URL (status, result and cancel at
    /// `fal-ai/ENDPOINT/requests/ID`).
    static func routes(_ endpoint: String) -> ProviderProfile.Routes {
        .init(
            submit: "https://fal.run/fal-ai/\(endpoint)", poll: "/fal-ai/\(endpoint)/requests/{id}/status",
            enqueue: "/fal-ai/\(endpoint)", result: "/fal-ai/\(endpoint)/requests/{id}",
            cancel: "/fal-ai/\(endpoint)/requests/{id}/cancel", cancelMethod: "PUT")
    }

    /// `image_size`: any width and height up to 14142, or a preset (their
    /// pixels from third-party code, identical across many).
    static let sizes = SizeRule.sizeObject(
        field: "image_size", maxSide: 14142,
        presets: [
            ("square_hd", PixelSize(width: 1024, height: 1024)), ("square", PixelSize(width: 512, height: 512)),
            ("portrait_4_3", PixelSize(width: 768, height: 1024)), ("portrait_16_9", PixelSize(width: 576, height: 1024)),
            ("landscape_4_3", PixelSize(width: 1024, height: 768)), ("landscape_16_9", PixelSize(width: 1024, height: 576)),
        ])

    /// The fields of every endpoint, with its own ranges, defaults and acceleration levels.
    static func fields(
        steps: ClosedRange<Double>, stepsDefault: Int, guidance: ClosedRange<Double>, guidanceDefault: String,
        negativeDefault: String, acceleration: [String]
    ) -> [ProviderProfile.Field] {
        [
            .init(option: .negativePrompt, name: "negative_prompt", kind: .string, defaultValue: negativeDefault),
            .init(option: .inferenceSteps, name: "num_inference_steps", kind: .integer, defaultValue: String(stepsDefault), range: steps),
            .init(option: .guidanceScale, name: "guidance_scale", kind: .number, defaultValue: guidanceDefault, range: guidance),
            .init(option: .seed, name: "seed", kind: .integer, defaultValue: nil),
            .init(option: .numImages, name: "num_images", kind: .integer, defaultValue: "1", range: 1...4),
            .init(option: .syncMode, name: "sync_mode", kind: .boolean, defaultValue: "false"),
            .init(option: .safetyChecker, name: "enable_safety_checker", kind: .boolean, defaultValue: "true"),
            .init(option: .acceleration, name: "acceleration", kind: .oneOf(acceleration), defaultValue: "regular"),
            .init(option: .callbackURL, name: "fal_webhook", kind: .string, defaultValue: nil, inQuery: true),
        ]
    }

    /// What every fal.ai profile assumes.
    static let notes = [
        "Synchronous edits go to https://fal.run/fal-ai/ENDPOINT, the queue to the base URL (https://queue.fal.run); with QIE_FAL_BASE_URL set (an emulator, a proxy) the synchronous route is reached at BASE/fal.run/fal-ai/ENDPOINT.",
        "Status, result and cancel use the documented routes on the base URL (/fal-ai/ENDPOINT/requests/ID/status, /requests/ID, PUT /requests/ID/cancel), not the status_url, response_url and cancel_url of the answer, so the key goes to the configured host only.",
        "A COMPLETED status is followed by one GET of the result; a failed run is COMPLETED too, its error at the result route: a 4xx there (or a 5xx after the retry policy's attempts) is the job's failure.",
        "$0.03 per output megapixel is fal's page for qwen-image-edit (third-party sources for plus, 2509 and 2511), billed here on output pixels / 10^6 (1024x1024 = $0.0315); if fal counts 1024x1024 as one megapixel it is $0.03 (the other reading); times num_images.",
        "image_size is always sent as {width, height}: the planned size (about 1 megapixel at the input's shape, sides a multiple of 16, at most 14142); the presets' pixel sizes come from third-party code.",
        "Local files travel as data URIs; fal does not say whether these endpoints take data URIs rather than URLs.",
        "Cancel's HTTP statuses are not confirmed (200 {success} or 202 CANCELLATION_REQUESTED): the answer is read by its word. OK (assumed 200: removed from the queue) was not billed; CANCELLATION_REQUESTED (a run already started) and ALREADY_COMPLETED may be; a bare {\"success\": true} cannot say, so it counts as may be billed; NOT_FOUND is a refusal.",
        "Webhooks (?fal_webhook=URL) are checked with ED25519 against the keys published at QIE_FAL_JWKS_URL (default https://rest.alpha.fal.ai/.well-known/jwks.json, the address in fal's older documents), fetched once a day; signed times more than 300 s from now are refused.",
        "metrics.inference_time of a completed status (the run, not the queue) teaches the poll planner; no payload size limit is published, so none is applied.",
    ]

    /// The callback: fal's signed webhook.
    static let callback = ProviderProfile.Callback(
        signatureHeader: "X-Fal-Webhook-Signature", deliveryHeader: "X-Fal-Webhook-Request-Id",
        secretVariable: "QIE_FAL_JWKS_URL", idField: "request_id",
        defaultSecret: "https://rest.alpha.fal.ai/.well-known/jwks.json")

    /// A profile of `fal-ai/ENDPOINT`.
    static func profile(
        id: String, aliases: [String], endpoint: String, version: ModelVersion, images: ProviderProfile.ImageTransport,
        formats: [(OutputFormat, String)], fields: [ProviderProfile.Field], notes: [String]
    ) -> ProviderProfile {
        ProviderProfile(
            host: Fal(), id: id, aliases: aliases, provider: "fal.ai", model: "fal-ai/\(endpoint)", version: version,
            document: "more/fal.md", baseURL: "https://queue.fal.run", baseURLVariable: "QIE_FAL_BASE_URL", routes: routes(endpoint),
            auth: .init(header: "Authorization", scheme: "Key", keyVariable: "FAL_KEY"),
            images: images, sizes: sizes,
            outputFormat: .init(field: "output_format", spellings: formats, defaultFormat: .png),
            fields: fields, envelope: .routedJSON, flow: [.synchronous, .polling, .callback],
            result: .urlArray(path: ["images"], key: "url"), pricing: .perOutputMegapixel(0.03, perImageReading: 0.03),
            notes: notes + Self.notes, callback: callback)
    }

    /// Up to 3 images in `image_urls` (the maximum is not stated).
    static let imageURLs = ProviderProfile.ImageTransport(
        field: "image_urls", isArray: true, maxCount: 3, inline: .dataURI, accepts: [.jpeg, .png, .webp])
    /// The fields of 2509 and plus (one input type).
    static let fields2509 = fields(
        steps: 2...100, stepsDefault: 50, guidance: 0...20, guidanceDefault: "4", negativeDefault: "\" \"",
        acceleration: ["none", "regular"])
    static let manyImagesNote = "At most 3 input images is assumed: fal does not state the maximum of image_urls."
}

extension ProviderProfile {
    /// fal.ai `fal-ai/qwen-image-edit-2511` (more/fal.md).
    public static let falQwenImageEdit2511 = Fal.profile(
        id: "fal-qwen-image-edit-2511", aliases: ["fal-2511", "fal"], endpoint: "qwen-image-edit-2511", version: .edit2511,
        images: Fal.imageURLs, formats: [(.png, "png"), (.jpeg, "jpeg"), (.webp, "webp")],
        fields: Fal.fields(
            steps: 1...50, stepsDefault: 28, guidance: 1...20, guidanceDefault: "4.5", negativeDefault: "\"\"",
            acceleration: ["none", "regular", "high"]),
        notes: [Fal.manyImagesNote])

    /// fal.ai `fal-ai/qwen-image-edit-plus` (more/fal.md).
    public static let falQwenImageEditPlus = Fal.profile(
        id: "fal-qwen-image-edit-plus", aliases: ["fal-plus"], endpoint: "qwen-image-edit-plus", version: .editPlus,
        images: Fal.imageURLs, formats: [(.png, "png"), (.jpeg, "jpeg")], fields: Fal.fields2509,
        notes: [Fal.manyImagesNote, "Its input type is the 2509 endpoint's; which weights run is not stated."])

    /// fal.ai `fal-ai/qwen-image-edit-2509` (more/fal.md).
    public static let falQwenImageEdit2509 = Fal.profile(
        id: "fal-qwen-image-edit-2509", aliases: ["fal-2509"], endpoint: "qwen-image-edit-2509", version: .edit2509,
        images: Fal.imageURLs, formats: [(.png, "png"), (.jpeg, "jpeg")], fields: Fal.fields2509, notes: [Fal.manyImagesNote])

    /// fal.ai `fal-ai/qwen-image-edit` (more/fal.md).
    public static let falQwenImageEdit = Fal.profile(
        id: "fal-qwen-image-edit", aliases: ["fal-edit"], endpoint: "qwen-image-edit", version: .edit,
        images: .init(field: "image_url", isArray: false, maxCount: 1, inline: .dataURI, accepts: [.jpeg, .png, .webp]),
        formats: [(.png, "png"), (.jpeg, "jpeg")],
        fields: Fal.fields(
            steps: 2...50, stepsDefault: 30, guidance: 0...20, guidanceDefault: "4", negativeDefault: "\" \"",
            acceleration: ["none", "regular", "high"]),
        notes: [])
}
