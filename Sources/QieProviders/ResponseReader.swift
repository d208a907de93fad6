import ExtrasBase64
import Foundation
import QieCore

/// An edited image as an endpoint returned it.
public enum ResultImage: Sendable, Equatable {
    /// A URL to download (at once: some expire).
    case url(String)
    /// Image bytes that came inline (a data URI or base64 field).
    case inline(Data)
}

/// What a response says about the job.
public enum ResponseOutcome: Sendable, Equatable {
    /// Finished: the result images, and the cost the endpoint reported (USD).
    case completed(images: [ResultImage], reportedCost: Decimal?, requestID: String?)
    /// Accepted and still running: poll `requestID`.
    case pending(requestID: String, status: String)
    /// The endpoint says it failed, with its own words.
    case failed(message: String, requestID: String?)
    /// Finished, and its results (or its failure) are fetched apart, at the
    /// profile's `Routes.result`: the job is not sent again.
    case finished(requestID: String)
}

/// Reads each endpoint's documented response shapes.
public enum ResponseReader {
    /// Interprets a response body from `profile`: a submission's answer, a
    /// poll's or a callback's payload. `status` is the HTTP status; `jobID` the
    /// id already known when polling (for answers that leave it out).
    /// A reported cost that is not a finite amount >= 0 is ignored (the
    /// estimate stands) and `warn` is told why.
    public static func read(
        _ body: Data, status: Int, from profile: ProviderProfile, jobID: String? = nil,
        warn: (String) -> Void = { _ in }
    ) throws(ProvidersError) -> ResponseOutcome {
        let json = try? JSONSerialization.jsonObject(with: body)
        guard (200..<300).contains(status) else {
            return .failed(message: errorMessage(json, body: body, status: status, profile: profile), requestID: nil)
        }
        guard let object = json as? [String: Any] else {
            throw ProvidersError(
                .invalidResponse,
                "\(profile.id) answered HTTP \(status) with \(describe(body)) instead of JSON; the endpoint or a proxy in front of it is misbehaving")
        }
        return try profile.host.read(object, for: profile, jobID: jobID, warn: warn)
    }

    /// A job's answer in the common shape: a `status` word (`failed`,
    /// `cancelled`, `error`, `timed_out` end it; `completed`, `succeeded`,
    /// `success` finish it; any other keeps it pending under `id`), its
    /// results at `profile.result`, and a reported `cost`. Hosts read their
    /// own fields and pass them here.
    public static func job(
        _ answer: [String: Any], for profile: ProviderProfile, id: String?, error: String?, cost: Any?,
        warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome {
        let id = id.map(safeID)
        if let state = (answer["status"] as? String)?.lowercased() {
            switch state {
            case "failed", "cancelled", "canceled", "error", "timed_out":
                return .failed(message: Sanitized.text(error ?? "the job ended as \(state)"), requestID: id)
            case "completed", "succeeded", "success":
                break
            default:
                if let id { return .pending(requestID: id, status: Sanitized.text(state, limit: 40)) }
            }
        }
        let images = try results(answer, profile: profile)
        guard !images.isEmpty else {
            throw ProvidersError(
                .invalidResponse, "\(profile.id) reported success but its response has no image at \(profile.result.description)")
        }
        return .completed(images: images, reportedCost: reportedCost(cost, profile: profile, warn: warn), requestID: id)
    }

    /// A reported cost, when it is a finite amount >= 0 (a number, or a
    /// string holding one); anything else is ignored with a warning.
    static func reportedCost(_ value: Any?, profile: ProviderProfile, warn: (String) -> Void) -> Decimal? {
        guard let value, !(value is NSNull) else { return nil }
        let number: Double?
        let text: String
        switch value {
        case let value as NSNumber:
            number = value.doubleValue
            text = value.stringValue
        case let value as String:
            number = Double(value.trimmingCharacters(in: .whitespaces))
            text = value
        default:
            number = nil
            text = "\(value)"
        }
        guard let number, number.isFinite, number >= 0, let amount = Decimal(string: text) ?? Decimal(string: "\(number)")
        else {
            warn("\(profile.id) reported a cost of \(Sanitized.text(text, limit: 40)), which is not an amount >= 0; it is ignored and the estimate kept")
            return nil
        }
        return amount
    }

    /// A job id as the endpoint gave it when it is printable and at most 200
    /// characters; otherwise made so (it is shown, stored and put in URLs).
    public static func safeID(_ id: String) -> String { Sanitized.isClean(id, limit: 200) ? id : Sanitized.text(id, limit: 200) }

    private static func results(_ object: [String: Any], profile: ProviderProfile) throws(ProvidersError) -> [ResultImage] {
        func value(_ path: [String]) -> Any? {
            var current: Any? = object
            for key in path { current = (current as? [String: Any])?[key] }
            return current
        }
        switch profile.result {
        case .url(let path):
            return try (value(path) as? String).map { text throws(ProvidersError) in [try image(fromURLOrDataURI: text, profile)] } ?? []
        case .urlArray(let path, let key):
            var images: [ResultImage] = []
            for entry in (value(path) as? [[String: Any]]) ?? [] {
                if let text = entry[key] as? String { images.append(try image(fromURLOrDataURI: text, profile)) }
            }
            return images
        case .urlList(let path):
            var images: [ResultImage] = []
            for case let text as String in (value(path) as? [Any]) ?? [] { images.append(try image(fromURLOrDataURI: text, profile)) }
            return images
        case .openAIData:
            var images: [ResultImage] = []
            for entry in (object["data"] as? [[String: Any]]) ?? [] {
                if let base64 = entry["b64_json"] as? String {
                    guard let bytes = try? base64.base64decoded() else {
                        throw ProvidersError(.invalidResponse, "\(profile.id) returned b64_json that is not valid base64")
                    }
                    images.append(.inline(Data(bytes)))
                } else if let url = entry["url"] as? String {
                    images.append(try image(fromURLOrDataURI: url, profile))
                }
            }
            return images
        case .urls(let path):
            var values: [Any] = [object]
            for step in path {
                let name = step.hasSuffix("[]") ? String(step.dropLast(2)) : step
                values = values.compactMap { ($0 as? [String: Any])?[name] }
                if step.hasSuffix("[]") { values = values.flatMap { ($0 as? [Any]) ?? [] } }
            }
            var images: [ResultImage] = []
            for case let text as String in values { images.append(try image(fromURLOrDataURI: text, profile)) }
            return images
        }
    }

    private static func image(fromURLOrDataURI text: String, _ profile: ProviderProfile) throws(ProvidersError) -> ResultImage {
        if text.hasPrefix("data:") {
            guard let decoded = DataURI.decode(text) else {
                throw ProvidersError(.invalidResponse, "\(profile.id) returned a data URI that is not valid base64")
            }
            return .inline(Data(decoded.bytes))
        }
        return .url(text)
    }

    /// The endpoint's own words for an HTTP error, in any of the documented shapes.
    public static func errorMessage(_ json: Any?, body: Data, status: Int, profile: ProviderProfile) -> String {
        var said: String? = nil
        if let object = json as? [String: Any] {
            if let error = object["error"] as? [String: Any] {
                said = error["message"] as? String
            } else {
                said = (object["error"] as? String) ?? (object["error_message"] as? String)
                    ?? (object["message"] as? String) ?? (object["detail"] as? String) ?? validationErrors(object["detail"])
            }
        }
        let words = said.map { Sanitized.text($0) } ?? (body.isEmpty ? "an empty body" : describe(body))
        return "\(profile.id) answered HTTP \(status): \(words)"
    }

    /// A validation error list as FastAPI and pydantic write it
    /// (`[{"loc": ["body", "field"], "msg": "...", "type": "..."}]`), as
    /// `field: msg; ...`; nil for anything else.
    static func validationErrors(_ value: Any?) -> String? {
        guard let items = value as? [[String: Any]], !items.isEmpty else { return nil }
        let lines = items.compactMap { item -> String? in
            guard let message = item["msg"] as? String else { return nil }
            let place = ((item["loc"] as? [Any]) ?? []).map { "\($0)" }.filter { $0 != "body" }.joined(separator: ".")
            return place.isEmpty ? message : "\(place): \(message)"
        }
        return lines.isEmpty ? nil : lines.joined(separator: "; ")
    }

    /// A short, safe description of a non-JSON body.
    static func describe(_ body: Data) -> String {
        if body.isEmpty { return "an empty body" }
        let text = Sanitized.text(String(decoding: body.prefix(120), as: UTF8.self), limit: 120)
        if text.lowercased().contains("<html") || text.lowercased().hasPrefix("<!doctype") {
            return "an HTML page (\"\(text.prefix(60))…\")"
        }
        return "\"\(text)\(body.count > 120 ? "…" : "")\""
    }
}
