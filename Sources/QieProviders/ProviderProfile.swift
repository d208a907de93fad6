import Foundation
import QieCore

/// Everything qie knows about one hosted edit endpoint, as data, from its
/// published document. Each is declared by its host (`EndpointHost`), in
/// that host's file in `Hosts/`.
public struct ProviderProfile: Sendable {
    /// The host that sells the endpoint: how its requests, answers,
    /// cancels, callbacks and emulation go.
    public var host: any EndpointHost
    /// Stable id that names the endpoint (in `EditOptions.endpoint`, `ProviderCatalog.profile(named:)`), e.g. `runpod-qwen-image-edit-2511`.
    public var id: String
    /// Short names accepted wherever the id is.
    public var aliases: [String]
    /// The company that hosts the endpoint, such as `RunPod`.
    public var provider: String
    /// The model name as the endpoint spells it.
    public var model: String
    /// The open model release the endpoint runs, as qie names it: endpoints
    /// of one version are interchangeable for routing.
    public var version: ModelVersion
    /// The file name of the published document the profile follows.
    public var document: String
    /// Scheme and host, e.g. `https://api.runpod.ai`; overridable by `baseURLVariable`.
    public var baseURL: String
    /// Environment variable that points the endpoint elsewhere (for example the emulator).
    public var baseURLVariable: String
    /// The paths requests go to.
    public var routes: Routes
    /// How the API key is sent.
    public var auth: Auth
    /// How input images travel.
    public var images: ImageTransport
    /// The output sizes the endpoint takes.
    public var sizes: SizeRule
    /// The output format field and its values.
    public var outputFormat: OutputFormatField
    /// Optional request fields the endpoint documents, in document order.
    public var fields: [Field]
    /// Where the request's own fields go.
    public var envelope: Envelope
    /// The ways a request can be sent and waited for, in order of preference.
    public var flow: [Flow]
    /// The largest request body the endpoint takes, per flow, when it publishes one.
    public var requestLimits: RequestLimits = RequestLimits()
    /// Where the result comes back.
    public var result: ResultLocation
    /// How the endpoint charges.
    public var pricing: PricingRule
    /// What the profile assumes where the document is silent.
    public var notes: [String]
    /// The documented callback (webhook) for finished asynchronous jobs.
    public var callback: Callback? = nil
    /// The documented server-sent events stream for finished asynchronous jobs.
    public var events: EventStream? = nil

    /// The paths of an endpoint's requests, relative to its base URL.
    public struct Routes: Sendable {
        /// The request that submits an edit.
        public var submit: String
        /// Polling a submitted job; `{id}` is replaced by its id.
        public var poll: String?
        /// An asynchronous submit, when it differs from `submit`.
        public var enqueue: String?
        /// A server-sent events stream.
        public var events: String?
        /// Cancelling a submitted job; `{id}` is replaced by its id.
        public var cancel: String?
        /// Fetching a finished job's results, where a poll only says that it
        /// finished (`ResponseOutcome.finished`); `{id}` is replaced by its id.
        public var result: String? = nil
        /// The HTTP method of `cancel`.
        public var cancelMethod = "POST"

        /// The routes of an endpoint.
        public init(submit: String, poll: String? = nil, enqueue: String? = nil, events: String? = nil, cancel: String? = nil) {
            self.submit = submit
            self.poll = poll
            self.enqueue = enqueue
            self.events = events
            self.cancel = cancel
        }

        /// The routes of an endpoint whose finished jobs' results are
        /// fetched at `result`, and whose cancel is sent with `cancelMethod`.
        public init(
            submit: String, poll: String?, enqueue: String?, result: String?, cancel: String?, cancelMethod: String
        ) {
            self.init(submit: submit, poll: poll, enqueue: enqueue, cancel: cancel)
            self.result = result
            self.cancelMethod = cancelMethod
        }

        /// The full URL of `route` on `base`. A route may be an absolute URL
        /// on another host than the base (a host that answers synchronous
        /// edits on a host of their own): it is used as it is, unless the
        /// base was pointed elsewhere (`pointedElsewhere`: an emulator, a
        /// proxy), where it is reached at `BASE/HOST/PATH`.
        public static func url(_ route: String, base: String, pointedElsewhere: Bool) -> String {
            let base = base.hasSuffix("/") ? String(base.dropLast()) : base
            guard route.contains("://") else { return base + route }
            return pointedElsewhere ? base + path(onOneAddress: route) : route
        }

        /// The path at which `route` is served when every route is on one
        /// address: a relative route as it is, an absolute one as `/HOST/PATH`.
        public static func path(onOneAddress route: String) -> String {
            guard let url = URL(string: route), let host = url.host, route.contains("://") else { return route }
            return "/" + host + url.path
        }
    }

    /// How the API key is sent.
    public struct Auth: Sendable {
        /// The header that carries the key, such as `Authorization`.
        public var header: String
        /// The word before the key in that header, such as `Bearer`.
        public var scheme: String
        /// Environment variable the key comes from.
        public var keyVariable: String
    }

    /// How the request's fields are laid out in the body.
    public enum Envelope: Sendable, Equatable {
        /// `{"input": {...}}` with top-level extras such as `callback_url`.
        case inputObject
        /// All fields at the top level of one JSON object.
        case flatJSON
        /// All fields at the top level of one JSON object with no `model`
        /// field: the route names the model.
        case routedJSON
        /// multipart/form-data (OpenAI Images API).
        case multipart
    }

    /// How a request is sent and its result waited for.
    public enum Flow: String, Sendable, Codable, CaseIterable {
        /// One request answered with the result.
        case synchronous = "sync"
        /// Submit, then poll the job until it ends.
        case polling = "poll"
        /// Submit with a callback URL; the endpoint POSTs the result (polling stays as a fallback).
        case callback
        /// Submit, then wait for the job's event on the endpoint's event stream (polling as a fallback).
        case serverSentEvents = "sse"

        /// Whether the job is submitted and then waited for.
        public var isAsynchronous: Bool { self != .synchronous }
    }

    /// The flow used when the user does not choose one: synchronous where the
    /// endpoint has it, otherwise polling. One edit waited for by a caller
    /// (the gateway, `Editor` used alone) answers soonest this way.
    public var defaultFlow: Flow { flow.contains(.synchronous) ? .synchronous : (flow.first ?? .synchronous) }

    /// The flow a folder run uses when the user does not choose one: polling
    /// where the endpoint offers it, so the job's id is recorded milliseconds
    /// after sending and a killed run asks about the job rather than paying
    /// for it again; otherwise `defaultFlow`.
    public var defaultRunFlow: Flow { flow.contains(.polling) ? .polling : defaultFlow }

    /// The largest request bodies an endpoint takes, in bytes as sent (after
    /// base64), where it publishes them.
    public struct RequestLimits: Sendable, Equatable {
        /// The limit on synchronous submissions (RunPod `runsync`).
        public var synchronous: Int?
        /// The limit on asynchronous submissions (RunPod `/run`).
        public var asynchronous: Int?
        /// Status polls per second the endpoint publishes as its rate limit
        /// (RunPod `/status`: 2000 per 10 s), or nil where none is published.
        public var pollsPerSecond: Double?

        /// Body limits in bytes and the status route's rate; nil where none is published.
        public init(synchronous: Int? = nil, asynchronous: Int? = nil, pollsPerSecond: Double? = nil) {
            self.synchronous = synchronous
            self.asynchronous = asynchronous
            self.pollsPerSecond = pollsPerSecond
        }

        /// The limit for a submission in `flow`, if there is one.
        public func limit(for flow: Flow) -> Int? { flow.isAsynchronous ? asynchronous : synchronous }
    }

    /// A callback the endpoint POSTs when a job reaches a terminal state.
    public struct Callback: Sendable {
        /// Header carrying the signature, when the account has a signing secret.
        public var signatureHeader: String
        /// Header naming the delivery (sent on every callback).
        public var deliveryHeader: String
        /// Environment variable holding the signing secret.
        public var secretVariable: String
        /// The payload's job id field.
        public var idField: String
        /// What stands for the secret when its variable is unset (where
        /// deliveries are checked against keys the host publishes: their
        /// address); nil leaves deliveries unchecked.
        public var defaultSecret: String? = nil
    }

    /// A server-sent events stream announcing finished jobs.
    public struct EventStream: Sendable {
        /// The event names that mean a job ended.
        public var completedEvents: [String]
        /// The data payload's job id field.
        public var idField: String
    }

    /// Where the result image is found in the endpoint's answer.
    public enum ResultLocation: Sendable, Equatable {
        /// A URL at this JSON path (`output.image_url`).
        case url(path: [String])
        /// An array of objects with a `url` (or data URI) each (`outputs[].url`).
        case urlArray(path: [String], key: String)
        /// OpenAI-style `data[].url` or `data[].b64_json`.
        case openAIData
        /// Every URL (or data URI) at this path, where a step ending in `[]`
        /// is each element of the array under that name
        /// (`output.choices[].message.content[].image`).
        case urls(path: [String])
        /// An array of URL (or data URI) strings at this JSON path (`output[]`).
        case urlList(path: [String])

        /// The location as a path, such as `output.outputs[].url`.
        public var description: String {
            switch self {
            case .url(let path): path.joined(separator: ".")
            case .urlArray(let path, let key): path.joined(separator: ".") + "[]." + key
            case .openAIData: "data[].url | data[].b64_json"
            case .urls(let path): path.joined(separator: ".")
            case .urlList(let path): path.joined(separator: ".") + "[]"
            }
        }
    }

    /// How input images travel.
    public struct ImageTransport: Sendable {
        /// The request field that holds the images.
        public var field: String
        /// One value (a string) or an array.
        public var isArray: Bool
        /// The most images one request takes (the image to edit and its references).
        public var maxCount: Int
        /// Inline data URIs (`data:image/png;base64,...`) or multipart file parts.
        public var inline: InlineStyle
        /// Input formats the endpoint decodes.
        public var accepts: [OutputFormat]

        /// How image bytes are sent: as `data URI` strings in JSON, or as `multipart file` parts.
        public enum InlineStyle: String, Sendable { case dataURI = "data URI", multipartFile = "multipart file" }
    }

    /// The output format field and the endpoint's own spelling of each value.
    public struct OutputFormatField: Sendable {
        /// The request field that names the output format.
        public var field: String
        /// Each format the endpoint returns, with the value the field takes for it.
        public var spellings: [(OutputFormat, String)]
        /// The format returned when the request names none.
        public var defaultFormat: OutputFormat

        /// The formats the endpoint returns.
        public var formats: [OutputFormat] { spellings.map(\.0) }
        /// The field's value for `format`, or nil when the endpoint cannot return it.
        public func spelling(of format: OutputFormat) -> String? { spellings.first { $0.0 == format }?.1 }
    }

    /// An optional field of the request.
    public struct Field: Sendable {
        /// The option it maps to.
        public var option: EditOption
        /// The endpoint's field name.
        public var name: String
        /// The type of value the field takes.
        public var kind: Kind
        /// The documented default, as text, for listings.
        public var defaultValue: String?
        /// The documented range of a number, checked before sending.
        public var range: ClosedRange<Double>? = nil
        /// Sent as a query parameter of the submission's URL, not in its body.
        public var inQuery = false

        /// The type of value a field takes.
        public enum Kind: Sendable, Equatable {
            /// A JSON string, integer, number, boolean or object.
            case string, integer, number, boolean, object
            /// A string from this list.
            case oneOf([String])
        }
    }

    /// Whether `option` is a field of this endpoint.
    public func field(for option: EditOption) -> Field? { fields.first { $0.option == option } }
}

/// The releases of Qwen Image Edit that hosts sell, by qie's names for them.
/// The same release sold by several hosts gives the same edit, so a request
/// may go to whichever of them routing picks.
public enum ModelVersion: String, Sendable, Codable, CaseIterable {
    /// The first release, `qwen-image-edit`.
    case edit = "qwen-image-edit"
    /// The September 2025 release, `qwen-image-edit-2509`.
    case edit2509 = "qwen-image-edit-2509"
    /// `qwen-image-edit-plus`, as hosts sell it under that name (its inputs
    /// are the 2509 release's; hosts do not all say which weights run).
    case editPlus = "qwen-image-edit-plus"
    /// The November 2025 release, `qwen-image-edit-2511`.
    case edit2511 = "qwen-image-edit-2511"
}

/// The options users can set on an edit, endpoint-independent.
public enum EditOption: String, Sendable, CaseIterable, Codable {
    /// What the result should not show.
    case negativePrompt = "negative-prompt"
    /// A fixed random seed.
    case seed
    /// How many outputs one request makes.
    case numImages = "num-images"
    /// The endpoint's synchronous-mode switch.
    case syncMode = "sync-mode"
    /// The address the endpoint POSTs a finished job to.
    case callbackURL = "callback-url"
    /// Key-value pairs kept with the job.
    case metadata
    /// Whether the safety checker runs.
    case safetyChecker = "safety-checker"
    /// How closely the result follows the prompt.
    case guidanceScale = "guidance-scale"
    /// The number of inference steps.
    case inferenceSteps = "steps"
    /// The acceleration level.
    case acceleration
    /// Whether results come back as URLs or base64 (OpenAI-style endpoints).
    case responseFormat = "response-format"
    /// Compression of lossy results, 0-100 (OpenAI-style endpoints).
    case outputCompression = "output-compression"

    /// The setting this option is.
    public var setting: Setting {
        switch self {
        case .negativePrompt: .negativePrompt
        case .seed: .seed
        case .numImages: .numImages
        case .syncMode: .syncMode
        case .callbackURL: .callbackURL
        case .metadata: .metadata
        case .safetyChecker: .safetyChecker
        case .guidanceScale: .guidanceScale
        case .inferenceSteps: .inferenceSteps
        case .acceleration: .acceleration
        case .responseFormat: .responseFormat
        case .outputCompression: .outputCompression
        }
    }
}
