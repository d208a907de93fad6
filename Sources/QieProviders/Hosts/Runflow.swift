import Crypto
import Foundation
import QieCore

/// Runflow's runs: create, poll, and callbacks signed with the account's
/// signing secret.
public struct Runflow: EndpointHost {
    /// The host.
    public init() {}

    /// The company's name.
    public var name: String { "Runflow" }
    /// The endpoints it sells.
    public var profiles: [ProviderProfile] { [.runflowQwenImageEdit2511] }

    // MARK: Answers

    /// The run (`id`) as polled, or as a callback delivers it (`run_id`).
    public func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        let error = (answer["error"] as? String) ?? ((answer["error"] as? [String: Any])?["message"] as? String)
        return try ResponseReader.job(
            answer, for: profile, id: ((answer["id"] ?? answer["run_id"]) as? String) ?? jobID, error: error, cost: nil,
            warn: warn)
    }

    /// `duration_ms`.
    public func reportedDuration(_ answer: [String: Any]) -> Double? {
        guard let duration = (answer["duration_ms"] as? NSNumber)?.doubleValue, duration >= 0 else { return nil }
        return duration / 1000
    }

    /// `Runflow-Signature`, checked with the account's signing secret.
    public func callbackVerifier(secret: String) -> (any CallbackVerifier)? { RunflowSignature(secret: secret) }

    // MARK: Emulation

    /// A new job's id, spelled as the host spells them.
    public func emulatedJobID(for profile: ProviderProfile) -> String { "run_" + UUID().uuidString.lowercased() }

    /// The host's word for `phase`.
    public func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String { phase.rawValue }

    /// The run as created.
    public func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer {
        EmulatedAnswer(
            status: 201,
            body: ["id": job.id, "status": emulatedStatus(job.phase, for: profile), "created_at": emulatedTimestamp(job.createdAt), "metadata": Self.object(job.metadata)])
    }

    /// The documented callback payload, and (assumed) the same run object when polled.
    public func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any] {
        let output: Any =
            job.phase == .succeeded
            ? [
                "outputs": job.urls.map {
                    ["url": $0, "type": "image", "width": job.outputSize.width, "height": job.outputSize.height]
                },
                "seed": job.seed, "model_data": [String: Any](), "nsfw_detected": false,
                "timing": ["inference_ms": Int(job.completedAt.map { $0.timeIntervalSince(job.createdAt) * 1000 } ?? 0)],
            ] as [String: Any] : NSNull()
        var object: [String: Any] = [
            "status": emulatedStatus(job.phase, for: profile), "output": output, "created_at": emulatedTimestamp(job.createdAt),
            "completed_at": job.phase.isTerminal ? emulatedTimestamp(job.completedAt ?? Date()) : NSNull(),
            "duration_ms": job.completedAt.map { Int($0.timeIntervalSince(job.createdAt) * 1000) } ?? NSNull(),
            "metadata": Self.object(job.metadata),
        ]
        if asCallback {
            object["run_id"] = job.id
            object["event"] = job.phase == .succeeded ? "run.completed" : job.phase == .failed ? "run.failed" : "run.cancelled"
        } else {
            object["id"] = job.id
            object["error"] = job.error ?? NSNull()
        }
        return object
    }

    /// The answer to a synchronous edit that finished.
    public func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any] {
        ["id": emulatedJobID(for: profile), "status": "succeeded", "output": ["outputs": results.urls.map { ["url": $0] }]]
    }

    /// An error in the host's shape.
    public func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any] {
        ["id": emulatedJobID(for: profile), "status": "failed", "error": message]
    }

    /// `Runflow-Request-Id` always; `Runflow-Signature` when a signing secret is set.
    public func emulatedCallbackHeaders(for body: Data, secret: String?, at time: Date) -> [(String, String)] {
        var headers = [("Runflow-Request-Id", UUID().uuidString.lowercased())]
        if let secret, !secret.isEmpty {
            headers.append(("Runflow-Signature", RunflowSignature(secret: secret).header(for: body, at: time)))
        }
        return headers
    }

    private static func object(_ json: Data?) -> Any {
        json.flatMap { try? JSONSerialization.jsonObject(with: $0) } ?? NSNull()
    }
}

/// Checks Runflow's `Runflow-Signature` header (its scheme is not in the
/// document; this is the assumption the profile names): a hex HMAC-SHA256 of the raw body
/// with the signing secret, given bare, as `sha256=HEX`, or as
/// `t=UNIX,v1=HEX` signed over `"UNIX.BODY"`. Every form must be recent, as
/// a replayed delivery is not: the `t=` time, or for the bare forms the
/// signed body's own `timestampField` (ISO 8601), within `tolerance`
/// seconds of now. Comparison is constant-time.
public struct RunflowSignature: CallbackVerifier {
    /// The account's signing secret.
    public var secret: String
    /// How far the signed time may be from now, in seconds.
    public var tolerance: Double
    /// The body's field holding when it was sent, for the forms without `t=`
    /// (Runflow's payload: `completed_at`).
    public var timestampField: String

    /// The header that carries the signature.
    public var signatureHeader: String { "Runflow-Signature" }

    /// A check with `secret`, accepting signed times within `tolerance` seconds.
    public init(secret: String, tolerance: Double = 300, timestampField: String = "completed_at") {
        self.secret = secret
        self.tolerance = tolerance
        self.timestampField = timestampField
    }

    /// Checks the `Runflow-Signature` header of a delivery.
    public func verify(header: (String) -> String?, body: Data, now: Date) -> SignedDelivery? {
        verify(header(signatureHeader), body: body, now: now)
    }

    /// Whether `header` is a valid, recent signature of `body` (false when the header is missing).
    public func isValid(_ header: String?, body: Data, now: Date = Date()) -> Bool {
        verify(header, body: body, now: now) != nil
    }

    /// What a valid, recent signature vouches for: when the delivery was
    /// signed and a digest of its body; nil when `header` is missing, wrong
    /// or stale. Two deliveries with the same `replayKey` are one delivery
    /// however their headers are spelled (`sha256=` or not, hex in either
    /// case, extra candidates, spaces), so a replay is judged by this.
    public func verify(_ header: String?, body: Data, now: Date = Date()) -> SignedDelivery? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        let key = SymmetricKey(data: Data(secret.utf8))
        if header.contains("v1=") {
            var timestamp: String? = nil
            var signatures: [String] = []
            for item in header.split(separator: ",") {
                let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2 else { continue }
                if pair[0] == "t" { timestamp = pair[1] }
                if pair[0] == "v1" { signatures.append(pair[1]) }
            }
            guard let timestamp, let seconds = Double(timestamp), abs(now.timeIntervalSince1970 - seconds) <= tolerance
            else { return nil }
            let signed = Data((timestamp + ".").utf8) + body
            guard signatures.contains(where: { Self.matches($0, signed, key) }) else { return nil }
            return SignedDelivery(signedAt: Date(timeIntervalSince1970: seconds), body: body)
        }
        let hex = header.hasPrefix("sha256=") ? String(header.dropFirst(7)) : header
        guard Self.matches(hex, body, key) else { return nil }
        // Signed, but when? The body says, and the signature covers it.
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let text = object[timestampField] as? String, let sent = Self.date(text),
            abs(now.timeIntervalSince(sent)) <= tolerance
        else { return nil }
        return SignedDelivery(signedAt: sent, body: body)
    }

    private static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    /// The `t=UNIX,v1=HEX` header for `body` (what a sender would write).
    public func header(for body: Data, at time: Date = Date()) -> String {
        let timestamp = String(Int(time.timeIntervalSince1970))
        let code = HMAC<SHA256>.authenticationCode(
            for: Data((timestamp + ".").utf8) + body, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + Data(code).map { String(format: "%02x", $0) }.joined()
    }

    private static func matches(_ hex: String, _ data: Data, _ key: SymmetricKey) -> Bool {
        guard let code = Self.bytes(fromHex: hex) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: data, using: key)
    }

    private static func bytes(fromHex hex: String) -> Data? {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes = Data(capacity: 32)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension ProviderProfile {
    /// Runflow `alibaba/qwen-image-edit-2511` (runflow-qwen-image-edit-2511.md).
    public static let runflowQwenImageEdit2511 = ProviderProfile(
        host: Runflow(),
        id: "runflow-qwen-image-edit-2511",
        aliases: ["runflow"],
        provider: "Runflow",
        model: "alibaba/qwen-image-edit-2511",
        version: .edit2511,
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
