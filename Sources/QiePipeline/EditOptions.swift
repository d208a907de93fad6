import Foundation
import QieClient
import QieImaging
import QieProviders

/// What every edit on an endpoint is asked, as a value: the endpoint, the
/// size and how to reach it, the prompt and request fields, what to do with
/// the result, and how to wait. `Codable`, so a run can store it and resume
/// from it; keys are never part of it (they come from the environment).
public struct EditOptions: Sendable, Codable, Equatable {
    /// The endpoint: a profile id or alias (see `ProviderCatalog`). With
    /// `routing`, the first of its endpoints.
    public var endpoint: String
    /// Several endpoints of one model release, each image sent to the one
    /// its policy ranks first (see `Routing`); nil: `endpoint` alone.
    public var routing: Routing?
    /// The size asked of the endpoint (planned from each input's shape when automatic).
    public var size: SizeRequest = .automatic
    /// How the input reaches the planned size: `contain` (pad), `cover` (crop) or `fill` (stretch).
    public var fit: Fit = .contain
    /// Where the image sits in the padding, or which part a crop keeps.
    public var position: Position = .centre
    /// What fills the padding.
    public var background: PaddingFill = .colour(.white)
    /// The edit instruction for inputs that bring none of their own.
    public var prompt: String?
    /// What to keep out of the result (where the endpoint takes it).
    public var negativePrompt: String?
    /// The seed, for reproducible results (where the endpoint takes it).
    public var seed: Int?
    /// Results per input: the endpoint's own count field where it has one,
    /// otherwise repeated requests.
    public var numImages: Int = 1
    /// Endpoint-specific request fields, each refused where the endpoint lacks it.
    public var fields = EndpointFields()
    /// The format of the results; asked of the endpoint when it can produce
    /// it, converted locally otherwise. Nil keeps what the endpoint returns.
    public var format: OutputFormat?
    /// Quality 1-100 when converting.
    public var quality: Int?
    /// Undo the padding on the result: `exact` (the input's own size) or
    /// `aspect` (its shape at the result's scale). Nil keeps the result as returned.
    public var restore: RestoreMode?
    /// Header limits every input and reference is checked against before decoding.
    public var limits = ImageLimits.default
    /// How results come back; nil takes the endpoint's default (synchronous
    /// where it has it, else polling).
    public var flow: ProviderProfile.Flow?
    /// Where the endpoint POSTs results with the callback flow.
    public var callback: CallbackOptions?
    /// How long to wait, and how often to ask.
    public var timeouts = Timeouts()
    /// Send to this address instead of the endpoint's (for example a local
    /// emulator); nil takes the endpoint's base-URL variable, then its own address.
    public var baseURL: String?
    /// Prices for endpoints that publish none, or to override theirs.
    public var price = PriceOverride()
    /// How billed megapixels round.
    public var rounding = MegapixelRounding.none
    /// Send the key over plain `http` to a host that is not loopback. Off:
    /// such a base URL is refused, since anyone on the path could read the key.
    public var allowInsecureHTTP = false
    /// Fetch results from loopback, private and link-local addresses even
    /// when the endpoint itself is on the public internet. Off: such result
    /// addresses (and redirects to them) are refused before connecting.
    public var allowPrivateResults = false
    /// Fetch input images given as URLs (`ImageSource.url`, the gateway's
    /// `image_url`) from loopback, private and link-local addresses. Off:
    /// such addresses (and redirects to them) are refused before connecting;
    /// inputs are otherwise fetched as results are (`maxResultBytes`, the
    /// download deadline).
    public var allowPrivateInputs = false
    /// Largest result accepted, in bytes (64 MiB).
    public var maxResultBytes = 64 << 20
    /// The longest line read from an endpoint's event stream, in bytes
    /// (1 MiB; see `EventStreamLimits`): a longer one closes the stream and
    /// its jobs are polled instead.
    public var maxEventLineBytes = EventStreamLimits().maxLineBytes
    /// The largest event read from an endpoint's event stream, in bytes
    /// (4 MiB): a larger one closes the stream and its jobs are polled instead.
    public var maxEventBytes = EventStreamLimits().maxEventBytes
    /// Write the endpoint's own bytes when a result needs no conversion,
    /// after the same checks (decoded in full within `limits`). Off: every
    /// result is re-encoded from its pixels, without the endpoint's metadata.
    public var keepResultBytes = false
    /// With a value, each result also gets a small copy for showing
    /// (`EditedImage.preview`), made from the pixels its finishing decodes
    /// anyway: a shrink and a small encode, never a second decode. Nil (the
    /// default): no preview.
    public var preview: PreviewOptions?

    /// Options for `endpoint` with every default.
    public init(endpoint: String) { self.endpoint = endpoint }

    /// Reads stored options; options they do not mention (stored by an
    /// earlier qie) take their defaults.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        var options = EditOptions(endpoint: try values.decode(String.self, forKey: .endpoint))
        func take<Value: Decodable>(_ key: CodingKeys, _ path: WritableKeyPath<EditOptions, Value>) throws {
            if let value = try values.decodeIfPresent(Value.self, forKey: key) { options[keyPath: path] = value }
        }
        func take<Value: Decodable>(_ key: CodingKeys, _ path: WritableKeyPath<EditOptions, Value?>) throws {
            options[keyPath: path] = try values.decodeIfPresent(Value.self, forKey: key)
        }
        try take(.routing, \.routing)
        try take(.size, \.size)
        try take(.fit, \.fit)
        try take(.position, \.position)
        try take(.background, \.background)
        try take(.prompt, \.prompt)
        try take(.negativePrompt, \.negativePrompt)
        try take(.seed, \.seed)
        try take(.numImages, \.numImages)
        try take(.fields, \.fields)
        try take(.format, \.format)
        try take(.quality, \.quality)
        try take(.restore, \.restore)
        try take(.limits, \.limits)
        try take(.flow, \.flow)
        try take(.callback, \.callback)
        try take(.timeouts, \.timeouts)
        try take(.baseURL, \.baseURL)
        try take(.price, \.price)
        try take(.rounding, \.rounding)
        try take(.allowInsecureHTTP, \.allowInsecureHTTP)
        try take(.allowPrivateResults, \.allowPrivateResults)
        try take(.allowPrivateInputs, \.allowPrivateInputs)
        try take(.maxResultBytes, \.maxResultBytes)
        try take(.keepResultBytes, \.keepResultBytes)
        try take(.preview, \.preview)
        try take(.maxEventLineBytes, \.maxEventLineBytes)
        try take(.maxEventBytes, \.maxEventBytes)
        self = options
    }

    /// The endpoint's profile.
    public func profile() throws(SettingError) -> ProviderProfile {
        do {
            return try ProviderCatalog.profile(named: endpoint)
        } catch {
            throw error.setting ?? SettingError(.endpoint, value: SettingError.quoted(endpoint), .explained("is not known"))
        }
    }

    /// The flow used: the one chosen, or the endpoint's default.
    public func resolvedFlow(for profile: ProviderProfile) -> ProviderProfile.Flow { flow ?? profile.defaultFlow }

    /// Requests sent per input: one when the endpoint has a count field,
    /// `numImages` otherwise (each request then asks for one image). Routed
    /// requests ask for one image each, so each is routed on its own.
    public func requestsPerInput(on profile: ProviderProfile) -> Int {
        profile.field(for: .numImages) == nil || routing != nil ? max(1, numImages) : 1
    }

    /// Images each request asks for.
    public func imagesPerRequest(on profile: ProviderProfile) -> Int {
        profile.field(for: .numImages) == nil || routing != nil ? 1 : numImages
    }

    /// The estimated price of one request for an input planned as `plan`.
    public func estimate(_ plan: SizePlan, on profile: ProviderProfile) -> CostEstimate {
        CostEstimator.estimate(
            profile, outputSize: plan.expectedOutput, images: imagesPerRequest(on: profile), override: price,
            rounding: rounding)
    }

    /// Plans an input of `size` (as displayed) for the endpoint.
    public func plan(_ size: PixelSize, on profile: ProviderProfile) throws(ProvidersError) -> SizePlan {
        try SizePlanner.plan(input: size, for: profile, request: self.size, fit: fit, position: position)
    }

    /// Checks what planning and pricing need, before any header is read:
    /// the endpoint (routing's endpoints: known, each once, one release), a
    /// fit an endpoint can be sent (contain, cover or fill) and at least one
    /// image. A size an endpoint does not take is each file's error (with
    /// routing, that endpoint is left out for it), as `qie plan` and `qie
    /// cost` report it.
    public func validatePlanning() throws(SettingError) {
        _ = try candidateProfiles()
        if numImages < 1 { throw SettingError(.numImages, value: String(numImages), .invalid(expected: "at least 1")) }
        if ![Fit.contain, .cover, .fill].contains(fit) {
            throw SettingError(
                .fit, value: fit.rawValue,
                .invalid(expected: "contain, cover or fill for an endpoint: the endpoint needs its exact size"))
        }
    }

    /// Checks everything that can be checked before any image is read, with
    /// `imageCount` images per request (the input and its references).
    public func validate(imageCount: Int = 1) throws(SettingError) {
        try validatePlanning()
        if routing != nil {
            if let flow, flow == .callback || flow == .serverSentEvents {
                throw SettingError(
                    .flow, value: flow.rawValue, .explained("cannot be routed: each endpoint has its own listener; use sync or poll"))
            }
            // Every endpoint of the route takes the request as asked, but a
            // size one does not take only leaves it out (for every image).
            let profiles = try candidateProfiles()
            var sizeRefusals: [SettingError] = []
            for profile in profiles {
                do throws(SettingError) {
                    try on(profile).validate(imageCount: imageCount)
                } catch {
                    guard [.size, .aspectRatio, .resolution].contains(error.setting) else { throw error }
                    sizeRefusals.append(error)
                }
            }
            if sizeRefusals.count == profiles.count, let first = sizeRefusals.first { throw first }
            return
        }
        let profile = try profile()
        if let prompt, prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw SettingError(.prompt, .explained("is empty; say what to change"))
        }
        if let quality, !(1...100).contains(quality) {
            throw SettingError(.quality, value: String(quality), .invalid(expected: "an integer from 1 to 100"))
        }
        try timeouts.validate()
        if !(limits.maxMegapixels > 0) {
            throw SettingError(.maxMegapixels, value: "\(limits.maxMegapixels)", .invalid(expected: "positive"))
        }
        if limits.maxSide < 1 { throw SettingError(.maxSide, value: "\(limits.maxSide)", .invalid(expected: "positive")) }
        if maxResultBytes < 1024 {
            throw SettingError(.maxResultBytes, value: String(maxResultBytes), .invalid(expected: "at least 1024 bytes"))
        }
        for (setting, value) in [(Setting.maxEventLineBytes, maxEventLineBytes), (.maxEventBytes, maxEventBytes)] where value < 1024 {
            throw SettingError(setting, value: String(value), .invalid(expected: "at least 1024 bytes"))
        }
        if let baseURL, URL(string: baseURL)?.host == nil || !["http", "https"].contains(URL(string: baseURL)?.scheme ?? "") {
            throw SettingError(
                .baseURL, value: SettingError.quoted(baseURL), .invalid(expected: "an http(s) URL such as http://127.0.0.1:8787"))
        }
        for (setting, value) in [(Setting.pricePerImage, price.perImage), (.pricePerMegapixel, price.perMegapixel)] {
            if let value, value < 0 { throw SettingError(setting, value: "\(value)", .invalid(expected: "a price in USD such as 0.02")) }
        }
        let flow = resolvedFlow(for: profile)
        if !profile.flow.contains(flow) {
            throw SettingError(.flow, value: flow.rawValue, .notOffered(by: profile.id, offered: profile.flow.map(\.rawValue)))
        }
        if flow == .callback {
            guard let callback else {
                throw SettingError(.flow, value: flow.rawValue, .needs([.callbackURL], why: "the address \(profile.id) will POST to"))
            }
            _ = try callback.listenAddress()
        } else if callback != nil {
            throw SettingError(.callbackURL, .onlyWith(.flow, value: ProviderProfile.Flow.callback.rawValue))
        }
        if imageCount > profile.images.maxCount {
            let most = profile.images.maxCount
            throw SettingError(
                .references, value: String(imageCount - 1),
                .explained(
                    "is too many: \(profile.id) takes at most \(most) image\(most == 1 ? "" : "s") per request, the input and \(most - 1) reference\(most - 1 == 1 ? "" : "s")"
                ))
        }
        // The request as it would be built, with stand-in images: every field,
        // enum and size the endpoint would refuse is refused now.
        var request = editRequest(prompt: prompt ?? "-", seed: seed, negativePrompt: negativePrompt, profile: profile)
        request.images = Array(repeating: .url("https://example.invalid/check.png"), count: imageCount)
        do {
            let plan = try self.plan(PixelSize(width: 1024, height: 1024), on: profile)
            _ = try RequestBuilder.build(request, plan: plan, for: profile, apiKey: nil, flow: flow)
        } catch {
            throw error.setting ?? SettingError(.endpoint, value: profile.id, .explained("refuses the request: \(error.message)"))
        }
    }

    /// The request for one input (its images are filled in by the caller).
    func editRequest(prompt: String, seed: Int?, negativePrompt: String?, profile: ProviderProfile) -> EditRequest {
        var request = EditRequest(
            prompt: prompt, images: [], outputFormat: format, negativePrompt: negativePrompt, seed: seed,
            numImages: imagesPerRequest(on: profile))
        request.callbackURL = callback?.url
        fields.apply(to: &request)
        return request
    }

    /// The wait policy for accepted jobs.
    /// How jobs on `profile` are waited for: planned polls (fixed with
    /// `pollInterval`), from 0.5 s before anything is learned, at most half
    /// the endpoint's published poll rate (50 a second where it publishes none).
    func waitPolicy(on profile: ProviderProfile) -> WaitPolicy {
        WaitPolicy(
            firstInterval: 0.5, timeout: timeouts.overall, fixedInterval: timeouts.pollInterval,
            maxPollsPerSecond: profile.requestLimits.pollsPerSecond.map { $0 / 2 } ?? 50)
    }
}

/// Endpoint-specific request fields; each is sent only where the endpoint
/// documents it, and refused (naming what the endpoint takes) elsewhere.
public struct EndpointFields: Sendable, Codable, Equatable {
    /// Results inline as data URIs (Runflow, Lumenfall `sync_mode`).
    public var syncMode: Bool?
    /// `url` or `b64_json` (Lumenfall `response_format`).
    public var responseFormat: String?
    /// 0-100 for lossy formats (Lumenfall `output_compression`).
    public var outputCompression: Int?
    /// Guidance scale (Runflow `guidance_scale`, Lumenfall `cfg_scale`).
    public var guidanceScale: Double?
    /// Inference steps (`num_inference_steps`).
    public var inferenceSteps: Int?
    /// Acceleration: `none`, `regular` or `high` (Runflow, Lumenfall).
    public var acceleration: String?
    /// The endpoint's safety checker on or off (`enable_safety_checker`).
    public var safetyChecker: Bool?
    /// Key-value pairs attached to the job (Runflow `metadata`).
    public var metadata: [String: String] = [:]

    /// No fields set.
    public init() {}

    func apply(to request: inout EditRequest) {
        request.syncMode = syncMode
        request.responseFormat = responseFormat
        request.outputCompression = outputCompression
        request.guidanceScale = guidanceScale
        request.inferenceSteps = inferenceSteps
        request.acceleration = acceleration
        request.safetyChecker = safetyChecker
        request.metadata = metadata
    }

    /// The fields as canonical text, for a job's identity.
    var identity: [String: String] {
        var options: [String: String] = [:]
        options["guidanceScale"] = guidanceScale.map { "\($0)" }
        options["steps"] = inferenceSteps.map(String.init)
        options["acceleration"] = acceleration
        options["safetyChecker"] = safetyChecker.map { "\($0)" }
        options["outputCompression"] = outputCompression.map(String.init)
        return options
    }
}

/// How long to wait and how often to ask, in seconds.
public struct Timeouts: Sendable, Codable, Equatable {
    /// Longest wait to connect.
    public var connect: Double = 10
    /// Longest wait for one HTTP answer.
    public var request: Double = 300
    /// Longest wait for one edit, from submission to result.
    public var overall: Double = 1800
    /// Poll at exactly this cadence (seconds); nil plans polls from the
    /// jobs that ended before (see `PollPlanner`).
    public var pollInterval: Double?
    /// Longest one result download may take, start to end (a result that
    /// trickles in is cut off too, not only one that stalls).
    public var download: Double = 120

    /// The defaults: 10 s to connect, 300 s per answer, 1800 s per edit,
    /// planned polls, 120 s per result download.
    public init() {}

    /// Reads stored timeouts; those not mentioned (stored by an earlier qie) take their defaults.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        connect = try values.decodeIfPresent(Double.self, forKey: .connect) ?? connect
        request = try values.decodeIfPresent(Double.self, forKey: .request) ?? request
        overall = try values.decodeIfPresent(Double.self, forKey: .overall) ?? overall
        pollInterval = try values.decodeIfPresent(Double.self, forKey: .pollInterval)
        download = try values.decodeIfPresent(Double.self, forKey: .download) ?? download
    }

    func validate() throws(SettingError) {
        for (setting, value) in [
            (Setting.timeout, overall), (.requestTimeout, request), (.connectTimeout, connect), (.pollInterval, pollInterval ?? 1),
            (.downloadTimeout, download),
        ] where !(value > 0) {
            throw SettingError(setting, value: "\(value)", .invalid(expected: "a positive number of seconds"))
        }
    }
}

/// The callback flow's addresses: the public URL the endpoint POSTs to, and
/// where the local listener binds.
public struct CallbackOptions: Sendable, Codable, Equatable {
    /// The address the endpoint POSTs to (it must reach the listener, for
    /// example through a tunnel).
    public var url: String
    /// `HOST:PORT` the listener binds; nil takes the URL's own host and port
    /// when it is a local address.
    public var listen: String?

    /// Callbacks to `url`, listened for at `listen` (or the URL's own address).
    public init(url: String, listen: String? = nil) {
        self.url = url
        self.listen = listen
    }

    /// Where the listener binds.
    public func listenAddress() throws(SettingError) -> (host: String, port: Int) {
        if let listen {
            let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2, let last = parts.last, let port = Int(last), (1...65535).contains(port) else {
                throw SettingError(
                    .callbackListen, value: SettingError.quoted(listen), .invalid(expected: "HOST:PORT, for example 0.0.0.0:8788"))
            }
            return (parts.dropLast().joined(separator: ":"), port)
        }
        guard let parsed = URL(string: url), let host = parsed.host, ["http", "https"].contains(parsed.scheme ?? "") else {
            throw SettingError(.callbackURL, value: SettingError.quoted(url), .invalid(expected: "an http(s) URL"))
        }
        guard ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) else {
            throw SettingError(
                .callbackURL, value: url,
                .explained(
                    "is not a local address: say where to listen with \(setting: .callbackListen) HOST:PORT (the URL must reach it, for example through a tunnel)"
                ))
        }
        return (host == "localhost" ? "127.0.0.1" : host, parsed.port ?? (parsed.scheme == "https" ? 443 : 80))
    }
}

extension OutputFormat {
    /// Parses `jpeg`, `jpg`, `png`, `webp`, `avif` or `gif` (any case) for `setting`.
    public init(parsing text: String, for setting: Setting = .format) throws(SettingError) {
        guard let format = OutputFormat(name: text) else {
            throw SettingError(setting, value: SettingError.quoted(text), .invalid(expected: "jpeg, jpg, png, webp, avif or gif"))
        }
        self = format
    }
}

extension Decimal {
    /// Parses an amount in USD for `setting` (`5`, `12.50`); `positive`
    /// refuses zero as well as negative amounts.
    public init(usd text: String, for setting: Setting, positive: Bool = false) throws(SettingError) {
        guard let value = Decimal(string: text), positive ? value > 0 : value >= 0 else {
            throw SettingError(
                setting, value: SettingError.quoted(text),
                .invalid(expected: positive ? "a positive amount in USD such as 5 or 12.50" : "a price in USD such as 0.02"))
        }
        self = value
    }
}
