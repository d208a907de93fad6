import QieCore

/// Everything qie knows about one hosted edit endpoint, as data, from its
/// published document. One file per endpoint in `Profiles/`.
public struct ProviderProfile: Sendable {
    /// Stable id users pass to `--provider`, e.g. `runpod-qwen-image-edit-2511`.
    public var id: String
    /// Short names also accepted by `--provider`.
    public var aliases: [String]
    public var provider: String
    public var model: String
    public var document: String
    /// Scheme and host, e.g. `https://api.runpod.ai`; overridable by `baseURLVariable`.
    public var baseURL: String
    /// Environment variable that points the endpoint elsewhere (for example the emulator).
    public var baseURLVariable: String
    public var routes: Routes
    public var auth: Auth
    public var images: ImageTransport
    public var sizes: SizeRule
    public var outputFormat: OutputFormatField
    /// Optional request fields the endpoint documents, in document order.
    public var fields: [Field]
    /// Where the request's own fields go.
    public var envelope: Envelope
    public var flow: [Flow]
    /// Where the result comes back.
    public var result: ResultLocation
    public var pricing: PricingRule
    /// What the profile assumes where the document is silent.
    public var notes: [String]
    /// The documented callback (webhook) for finished asynchronous jobs.
    public var callback: Callback? = nil
    /// The documented server-sent events stream for finished asynchronous jobs.
    public var events: EventStream? = nil

    public struct Routes: Sendable {
        /// The request that submits an edit.
        public var submit: String
        /// Polling a submitted job; `{id}` is replaced by its id.
        public var poll: String?
        /// An asynchronous submit, when it differs from `submit`.
        public var enqueue: String?
        /// A server-sent events stream.
        public var events: String?
    }

    public struct Auth: Sendable {
        public var header: String
        public var scheme: String
        /// Environment variable the key comes from.
        public var keyVariable: String
    }

    public enum Envelope: Sendable, Equatable {
        /// `{"input": {...}}` with top-level extras such as `callback_url`.
        case inputObject
        /// All fields at the top level of one JSON object.
        case flatJSON
        /// multipart/form-data (OpenAI Images API).
        case multipart
    }

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
    /// endpoint has it, otherwise polling.
    public var defaultFlow: Flow { flow.contains(.synchronous) ? .synchronous : (flow.first ?? .synchronous) }

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
    }

    /// A server-sent events stream announcing finished jobs.
    public struct EventStream: Sendable {
        /// The event names that mean a job ended.
        public var completedEvents: [String]
        /// The data payload's job id field.
        public var idField: String
    }

    public enum ResultLocation: Sendable, Equatable {
        /// A URL at this JSON path (`output.image_url`).
        case url(path: [String])
        /// An array of objects with a `url` (or data URI) each (`outputs[].url`).
        case urlArray(path: [String], key: String)
        /// OpenAI-style `data[].url` or `data[].b64_json`.
        case openAIData

        public var description: String {
            switch self {
            case .url(let path): path.joined(separator: ".")
            case .urlArray(let path, let key): path.joined(separator: ".") + "[]." + key
            case .openAIData: "data[].url | data[].b64_json"
            }
        }
    }

    /// How input images travel.
    public struct ImageTransport: Sendable {
        public var field: String
        /// One value (a string) or an array.
        public var isArray: Bool
        public var maxCount: Int
        /// Inline data URIs (`data:image/png;base64,...`) or multipart file parts.
        public var inline: InlineStyle
        /// Input formats the endpoint decodes.
        public var accepts: [OutputFormat]

        public enum InlineStyle: String, Sendable { case dataURI = "data URI", multipartFile = "multipart file" }
    }

    /// The output format field and the endpoint's own spelling of each value.
    public struct OutputFormatField: Sendable {
        public var field: String
        public var spellings: [(OutputFormat, String)]
        public var defaultFormat: OutputFormat

        public var formats: [OutputFormat] { spellings.map(\.0) }
        public func spelling(of format: OutputFormat) -> String? { spellings.first { $0.0 == format }?.1 }
    }

    /// An optional field of the request.
    public struct Field: Sendable {
        /// The option it maps to.
        public var option: EditOption
        /// The endpoint's field name.
        public var name: String
        public var kind: Kind
        /// The documented default, as text, for listings.
        public var defaultValue: String?

        public enum Kind: Sendable, Equatable {
            case string, integer, number, boolean, object
            case oneOf([String])
        }
    }

    /// Whether `option` is a field of this endpoint.
    public func field(for option: EditOption) -> Field? { fields.first { $0.option == option } }
}

/// The options users can set on an edit, endpoint-independent.
public enum EditOption: String, Sendable, CaseIterable, Codable {
    case negativePrompt = "negative-prompt"
    case seed
    case numImages = "num-images"
    case syncMode = "sync-mode"
    case callbackURL = "callback-url"
    case metadata
    case safetyChecker = "safety-checker"
    case guidanceScale = "guidance-scale"
    case inferenceSteps = "steps"
    case acceleration
    case responseFormat = "response-format"
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
