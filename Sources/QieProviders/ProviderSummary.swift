import Foundation
import QieCore

/// What an endpoint accepts, as plain values: what `qie providers` lists,
/// in text and (`--json`) as this value encoded, one object per endpoint.
/// `Codable`, so a tool reads back what qie wrote.
public struct ProviderSummary: Sendable, Codable, Equatable {
    /// The endpoint's request routes, relative to its base URL.
    public struct Routes: Sendable, Codable, Equatable {
        /// Where edits are sent (POST).
        public var submit: String
        /// Where jobs are queued instead (POST), where the endpoint has a queue.
        public var enqueue: String?
        /// Where a job's status is asked (GET; `{id}` is the job).
        public var poll: String?
        /// The server-sent event stream (GET).
        public var events: String?
        /// Where a finished job's results are fetched (GET), where a poll does not carry them.
        public var result: String? = nil
        /// How a job given up is cancelled, as method and route (`POST /v2/.../cancel/{id}`), where the endpoint can cancel.
        public var cancel: String? = nil
    }

    /// How the key is sent.
    public struct Auth: Sendable, Codable, Equatable {
        /// The header (`Authorization`).
        public var header: String
        /// The scheme before the key (`Bearer`).
        public var scheme: String
        /// The environment variable the key is read from.
        public var keyVariable: String
    }

    /// How input images travel.
    public struct Images: Sendable, Codable, Equatable {
        /// The request field.
        public var field: String
        /// Whether the field is an array.
        public var isArray: Bool
        /// The most images one request takes (the image edited and its references).
        public var maxCount: Int
        /// `data URI` or `multipart file`.
        public var inline: String
        /// Input formats the endpoint decodes.
        public var accepts: [OutputFormat]
    }

    /// A format the endpoint returns, and how its field spells it.
    public struct FormatSpelling: Sendable, Codable, Equatable {
        /// The format.
        public var format: OutputFormat
        /// The field's value for it.
        public var spelling: String
    }

    /// An optional request field.
    public struct Field: Sendable, Codable, Equatable {
        /// The setting it carries (as the library names it: `negativePrompt`).
        public var setting: Setting
        /// The endpoint's field name.
        public var name: String
        /// The documented default, as text.
        public var defaultValue: String?
    }

    /// The profile's id (what `--provider` and a gateway's `model` take).
    public var id: String
    /// Other names it answers to.
    public var aliases: [String]
    /// Who runs the endpoint.
    public var provider: String
    /// The model it serves.
    public var model: String
    /// The model release it runs: endpoints of one release can be routed among.
    public var version: ModelVersion
    /// The document the profile follows.
    public var document: String
    /// The documented base URL.
    public var baseURL: String
    /// The environment variable that replaces the base URL when set.
    public var baseURLVariable: String
    /// The routes.
    public var routes: Routes
    /// How the key is sent.
    public var auth: Auth
    /// How input images travel.
    public var images: Images
    /// The sizes it takes, in words.
    public var sizes: String
    /// The output format field.
    public var outputFormatField: String
    /// The formats it returns (others are converted locally).
    public var outputFormats: [FormatSpelling]
    /// The format returned when none is asked.
    public var defaultOutputFormat: OutputFormat
    /// Its optional fields.
    public var fields: [Field]
    /// The flows it offers (`sync`, `poll`, `callback`, `sse`).
    public var flows: [ProviderProfile.Flow]
    /// Where the result is in its answer (`output.image_url`).
    public var result: String
    /// The price in words (`$0.02 per image`, `not published`).
    public var price: String
    /// Whether the endpoint publishes a price (estimates are unknown otherwise, unless one is set).
    public var pricePublished: Bool
    /// Assumptions the profile makes where the document is silent.
    public var notes: [String]

    /// The summary of `profile`.
    public init(_ profile: ProviderProfile) {
        id = profile.id
        aliases = profile.aliases
        provider = profile.provider
        model = profile.model
        document = profile.document
        baseURL = profile.baseURL
        baseURLVariable = profile.baseURLVariable
        routes = Routes(
            submit: profile.routes.submit, enqueue: profile.routes.enqueue, poll: profile.routes.poll, events: profile.routes.events,
            result: profile.routes.result, cancel: profile.routes.cancel.map { "\(profile.routes.cancelMethod) \($0)" })
        version = profile.version
        auth = Auth(header: profile.auth.header, scheme: profile.auth.scheme, keyVariable: profile.auth.keyVariable)
        images = Images(
            field: profile.images.field, isArray: profile.images.isArray, maxCount: profile.images.maxCount,
            inline: profile.images.inline.rawValue, accepts: profile.images.accepts)
        sizes = profile.sizes.summary
        outputFormatField = profile.outputFormat.field
        outputFormats = profile.outputFormat.spellings.map { FormatSpelling(format: $0.0, spelling: $0.1) }
        defaultOutputFormat = profile.outputFormat.defaultFormat
        fields = profile.fields.map { Field(setting: $0.option.setting, name: $0.name, defaultValue: $0.defaultValue) }
        flows = profile.flow
        result = profile.result.description
        price = profile.pricing.summary
        pricePublished = profile.pricing != .unpublished
        notes = profile.notes
    }

    /// Every endpoint qie knows, in `ProviderCatalog` order.
    public static var all: [ProviderSummary] { ProviderCatalog.all.map(ProviderSummary.init) }
}
