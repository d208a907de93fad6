import Foundation
import QieCore

/// A request ready to send: where, which headers, and its body.
public struct BuiltRequest: Sendable {
    /// The HTTP method, `POST` or `GET`.
    public var method: String
    /// The full URL.
    public var url: String
    /// Headers, the key included; use `redactedHeaders` for anything shown or stored.
    public var headers: [(String, String)]
    /// The body, written out when the request is sent.
    public var body: RequestBody
    /// What qie does after the response because the endpoint cannot.
    public var emulations: [Emulation]
    /// The output format the request asks the endpoint for.
    public var nativeFormat: OutputFormat
    /// The name of the auth header, so it can be hidden.
    var authHeader: String

    /// Headers with the key replaced by `***`.
    public var redactedHeaders: [(String, String)] {
        headers.map { name, value in
            guard name.lowercased() == authHeader.lowercased() else { return (name, value) }
            let scheme = value.split(separator: " ").first.map { String($0) + " " } ?? ""
            return (name, value.contains(" ") ? scheme + "***" : "***")
        }
    }

    /// The whole request as text with the key redacted: request line,
    /// headers, a blank line and the body.
    public func writeRedacted(to sink: inout some ByteSink) throws {
        try sink.append("\(method) \(url) HTTP/1.1\r\n")
        for (name, value) in redactedHeaders { try sink.append("\(name): \(value)\r\n") }
        try sink.append("\r\n")
        try body.write(to: &sink)
    }
}

/// A request body, written out in pieces.
public enum RequestBody: Sendable {
    /// A JSON document.
    case json(JSONValue)
    /// A multipart/form-data body with these parts, separated by `boundary`.
    case multipart(boundary: String, parts: [MultipartPart])
    /// No body (a GET).
    case empty

    /// The `Content-Type` header for this body (empty for no body).
    public var contentType: String {
        switch self {
        case .json: "application/json"
        case .multipart(let boundary, _): "multipart/form-data; boundary=\(boundary)"
        case .empty: ""
        }
    }

    /// Writes the body to `sink` in pieces, reading images as it goes.
    public func write(to sink: inout some ByteSink) throws {
        switch self {
        case .empty:
            break
        case .json(let value):
            try value.write(to: &sink)
        case .multipart(let boundary, let parts):
            for part in parts {
                try sink.append("--\(boundary)\r\n")
                switch part {
                case .field(let name, let value):
                    try sink.append("Content-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
                case .file(let name, let image):
                    try sink.append(
                        "Content-Disposition: form-data; name=\"\(name)\"; filename=\"\(MultipartPart.safeFilename(image.filename))\"\r\nContent-Type: \(image.mimeType)\r\n\r\n"
                    )
                    try sink.appendImage(image, as: .raw)
                    try sink.append("\r\n")
                }
            }
            try sink.append("--\(boundary)--\r\n")
        }
    }

    /// The body in memory (for small bodies and tests; sending streams it).
    public func data() throws -> Data {
        var sink = DataSink()
        try write(to: &sink)
        return sink.data
    }

    /// The body's length in bytes, computed without reading or encoding any
    /// image (from byte counts and file sizes).
    public func contentLength() throws -> Int {
        var sink = CountingSink()
        try write(to: &sink)
        return sink.count
    }

    /// A new reader over the body, which produces it piece by piece: images
    /// are read from memory or disk and base64-encoded as they are read, so
    /// the whole body never exists at once. Each call starts from the
    /// beginning (a retried request streams the body again).
    public func reader() throws -> RequestBodyReader {
        var sink = SegmentSink()
        try write(to: &sink)
        return RequestBodyReader(segments: sink.finish())
    }
}

/// One part of a multipart/form-data body.
public enum MultipartPart: Sendable {
    /// A text field.
    case field(name: String, value: String)
    /// An image file.
    case file(name: String, image: PayloadImage)

    static func safeFilename(_ name: String) -> String {
        String(name.map { $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\\" ? "_" : $0 })
    }
}

/// Makes the documented HTTP requests of an endpoint: submit, poll and event stream (results are
/// downloaded by the client, with no key, under `ResultChecks`).
public enum RequestBuilder {
    /// Builds the documented request for `request` on `profile`, checking every
    /// option against what the endpoint takes. `apiKey` goes in the auth header
    /// (nil leaves the header out, for showing a request).
    /// `flow` picks the submit route (Oxen's queue for polling and events).
    /// `timeout` (seconds, the edit's overall timeout) goes to the host's
    /// own headers where it takes a deadline.
    public static func build(
        _ request: EditRequest, plan: SizePlan, for profile: ProviderProfile, apiKey: String?,
        baseURL: String? = nil, flow: ProviderProfile.Flow? = nil, boundary: String = "qie-" + UUID().uuidString,
        timeout: Double? = nil
    ) throws(ProvidersError) -> BuiltRequest {
        let name = profile.id
        let flow = flow ?? profile.defaultFlow
        guard profile.flow.contains(flow) else {
            throw ProvidersError(
                .unsupportedOption,
                SettingError(.flow, value: flow.rawValue, .notOffered(by: name, offered: profile.flow.map(\.rawValue))))
        }
        if flow == .callback, request.callbackURL == nil {
            throw ProvidersError(
                .invalidOption,
                SettingError(.flow, value: flow.rawValue, .needs([.callbackURL], why: "the address \(name) will POST to")))
        }
        guard !request.prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ProvidersError(.invalidOption, SettingError(.prompt, .explained("is empty; say what to change")))
        }
        guard !request.images.isEmpty else {
            throw ProvidersError(.invalidOption, "no input image: \(name) needs at least one")
        }
        guard request.images.count <= profile.images.maxCount else {
            throw ProvidersError(
                .unsupportedOption,
                "\(name) takes at most \(profile.images.maxCount) input image\(profile.images.maxCount == 1 ? "" : "s"), got \(request.images.count)"
            )
        }
        guard request.numImages >= 1 else {
            throw ProvidersError(
                .invalidOption, SettingError(.numImages, value: String(request.numImages), .invalid(expected: "at least 1")))
        }

        var emulations: [Emulation] = []
        // Output format: the endpoint's own spelling, or a lossless native one converted locally.
        let wanted = request.outputFormat ?? profile.outputFormat.defaultFormat
        let native: OutputFormat
        if profile.outputFormat.spelling(of: wanted) != nil {
            native = wanted
        } else {
            native = profile.outputFormat.formats.contains(.png) ? .png : profile.outputFormat.defaultFormat
            emulations.append(.convertOutput(from: native, to: wanted))
        }

        // Options: each must be a field of the endpoint, or emulated.
        var optionFields: [(String, JSONValue)] = []
        var topLevel: [(String, JSONValue)] = []
        var query: [(String, String)] = []
        for (option, value) in request.setOptions {
            if let field = profile.field(for: option) {
                if case .oneOf(let allowed) = field.kind, case .string(let text) = value, !allowed.contains(text) {
                    throw ProvidersError(
                        .invalidOption,
                        SettingError(option.setting, value: SettingError.quoted(text), .notOffered(by: name, offered: allowed)))
                }
                if let range = field.range, let number = value.numericValue, !range.contains(number) {
                    throw ProvidersError(
                        .invalidOption,
                        SettingError(
                            option.setting, value: value.formText,
                            .invalid(expected: "from \(Self.spelled(range.lowerBound)) to \(Self.spelled(range.upperBound)) at \(name)")))
                }
                if field.inQuery {
                    query.append((field.name, value.formText))
                } else if option == .callbackURL || option == .metadata, profile.envelope == .inputObject {
                    topLevel.append((field.name, value))
                } else {
                    optionFields.append((field.name, value))
                }
            } else if option == .numImages {
                emulations.append(.repeatRequest(times: request.numImages))
            } else {
                throw ProvidersError(
                    .unsupportedOption,
                    SettingError(option.setting, .notTaken(by: name, takes: profile.fields.map(\.option.setting))))
            }
        }
        if let compression = request.outputCompression, !(0...100).contains(compression) {
            throw ProvidersError(
                .invalidOption,
                SettingError(.outputCompression, value: String(compression), .invalid(expected: "from 0 to 100")))
        }
        try profile.host.check(request, plan: plan, for: profile)

        // Sent when the user chose a format (or one is needed for a local
        // conversion); otherwise the endpoint's default applies.
        let fields = RequestFields(
            prompt: request.prompt, imageField: profile.images.field, imagesAsArray: profile.images.isArray,
            images: request.images, sizes: plan.fields.map { ($0.name, $0.value) }, options: optionFields, beside: topLevel,
            outputFormat: request.outputFormat != nil
                ? (profile.outputFormat.field, profile.outputFormat.spelling(of: native)!) : nil,
            boundary: boundary)
        let body = profile.host.body(fields, for: profile)

        var headers: [(String, String)] = [("Content-Type", body.contentType), ("Accept", "application/json")]
        headers += profile.host.requestHeaders(for: flow, timeout: timeout, profile: profile)
        if let apiKey {
            headers.insert((profile.auth.header, "\(profile.auth.scheme) \(apiKey)"), at: 0)
        }
        let route = flow.isAsynchronous ? (profile.routes.enqueue ?? profile.routes.submit) : profile.routes.submit
        var address = url(route, baseURL, profile)
        if !query.isEmpty {
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "&=+?/:#")
            address += "?" + query.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
        }
        return BuiltRequest(
            method: "POST", url: address, headers: headers, body: body, emulations: emulations,
            nativeFormat: native, authHeader: profile.auth.header)
    }

    /// A bound of a range as written in a message: `4`, `0.5`.
    private static func spelled(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)
    }

    /// The GET that fetches finished job `id`'s results, or nil when the
    /// endpoint's polls carry them (no `Routes.result`).
    public static func result(id: String, for profile: ProviderProfile, apiKey: String?, baseURL: String? = nil) -> BuiltRequest? {
        profile.routes.result.map {
            bodiless("GET", route: $0, id: id, accept: "application/json", for: profile, apiKey: apiKey, baseURL: baseURL)
        }
    }

    /// The GET that fetches finished job `id`'s results, sent where and as
    /// `poll` (the job's status GET) is: its base URL and its key.
    public static func result(id: String, for profile: ProviderProfile, following poll: BuiltRequest) -> BuiltRequest? {
        guard let route = profile.routes.result, let pollRoute = profile.routes.poll else { return nil }
        let asked = path(pollRoute, id: id)
        guard let end = poll.url.range(of: asked, options: .backwards) else { return nil }
        var request = poll
        request.url = String(poll.url[..<end.lowerBound]) + path(route, id: id)
        return request
    }

    /// The GET that asks about job `id`, or nil when the endpoint documents no polling.
    public static func poll(id: String, for profile: ProviderProfile, apiKey: String?, baseURL: String? = nil) -> BuiltRequest? {
        profile.routes.poll.map {
            bodiless("GET", route: $0, id: id, accept: "application/json", for: profile, apiKey: apiKey, baseURL: baseURL)
        }
    }

    /// The POST that cancels job `id`, or nil when the endpoint has no cancel route.
    public static func cancel(id: String, for profile: ProviderProfile, apiKey: String?, baseURL: String? = nil) -> BuiltRequest? {
        profile.routes.cancel.map {
            bodiless(profile.routes.cancelMethod, route: $0, id: id, accept: "application/json", for: profile, apiKey: apiKey, baseURL: baseURL)
        }
    }

    /// The GET that opens the endpoint's event stream, or nil when it has none.
    public static func events(for profile: ProviderProfile, apiKey: String?, baseURL: String? = nil) -> BuiltRequest? {
        guard let route = profile.routes.events else { return nil }
        var request = bodiless("GET", route: route, id: nil, accept: "text/event-stream", for: profile, apiKey: apiKey, baseURL: baseURL)
        request.headers.append(("Cache-Control", "no-cache"))
        return request
    }

    /// A request without a body to `route` (`{id}` replaced by `id`, escaped).
    private static func bodiless(
        _ method: String, route: String, id: String?, accept: String, for profile: ProviderProfile, apiKey: String?,
        baseURL: String?
    ) -> BuiltRequest {
        var headers: [(String, String)] = [("Accept", accept)]
        if let apiKey { headers.insert((profile.auth.header, "\(profile.auth.scheme) \(apiKey)"), at: 0) }
        return BuiltRequest(
            method: method, url: url(id.map { path(route, id: $0) } ?? route, baseURL, profile), headers: headers, body: .empty,
            emulations: [], nativeFormat: profile.outputFormat.defaultFormat, authHeader: profile.auth.header)
    }

    /// `route` with `{id}` replaced by `id`, escaped.
    private static func path(_ route: String, id: String) -> String {
        let escaped = id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? id
        return route.replacingOccurrences(of: "{id}", with: escaped)
    }

    /// The URL of `route` on the base URL in use (see `ProviderProfile.Routes.url`).
    private static func url(_ route: String, _ baseURL: String?, _ profile: ProviderProfile) -> String {
        func trimmed(_ base: String) -> String { base.hasSuffix("/") ? String(base.dropLast()) : base }
        let elsewhere = baseURL.map { trimmed($0) != trimmed(profile.baseURL) } ?? false
        return ProviderProfile.Routes.url(route, base: baseURL ?? profile.baseURL, pointedElsewhere: elsewhere)
    }
}
