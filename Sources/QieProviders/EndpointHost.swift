import Crypto
import Foundation
import QieCore

/// A company that hosts the model, as qie speaks to it: everything that
/// depends on who hosts an endpoint lives in one conforming type, in one file
/// of `Hosts/`. The client, the planner, the callback listener, the emulator
/// and the gateway dispatch through it and name no host themselves.
///
/// A host gives:
/// - its endpoints as data (`profiles`: routes, fields, sizes, prices);
/// - how a request's fields are laid out in a body (`body(_:for:)`; the
///   default lays them out in the profile's `envelope`);
/// - how an answer, a poll and a callback are read (`read(_:for:jobID:warn:)`),
///   and the duration a job took as the host reports it;
/// - how a job is cancelled and what the answer to that means, where the
///   host has a cancel route;
/// - how its callbacks are verified;
/// - how the emulator plays it (the `emulated...` requirements): its answers,
///   job states, errors, events and signed callbacks, so the emulator knows
///   no host either.
///
/// Adding a host: a file in `Hosts/` with a type conforming to this
/// protocol, its line in `ProviderCatalog.hosts`, its golden request tests,
/// and the emulator plays it from the same file.
public protocol EndpointHost: Sendable {
    /// The company's name, as shown (`RunPod`).
    var name: String { get }
    /// The endpoints this host sells, in listing order.
    var profiles: [ProviderProfile] { get }

    // MARK: Requests and answers

    /// The body of a submission, from its fields in the order qie builds
    /// them. The default lays them out in `profile.envelope`.
    func body(_ fields: RequestFields, for profile: ProviderProfile) -> RequestBody

    /// Refuses, before anything is sent, a request the endpoint would refuse
    /// or quietly change (a value out of its range, text it would cut) where
    /// the profile's data cannot say so. The default refuses nothing.
    func check(_ request: EditRequest, plan: SizePlan, for profile: ProviderProfile) throws(ProvidersError)

    /// Reads a 2xx answer that is a JSON object: a submission's answer, a
    /// poll's, a callback's or an event's payload. `jobID` is the id already
    /// known (when polling). Errors are `ProvidersError.invalidResponse`.
    func read(
        _ answer: [String: Any], for profile: ProviderProfile, jobID: String?, warn: (String) -> Void
    ) throws(ProvidersError) -> ResponseOutcome

    /// How long the job took at the host, queue and run, in seconds, as a
    /// poll's answer reports it; nil when it does not say.
    func reportedDuration(_ answer: [String: Any]) -> Double?

    /// What the answer to a cancel (`ProviderProfile.Routes.cancel`) says:
    /// HTTP `status` and the body.
    func readCancel(_ body: Data, status: Int, for profile: ProviderProfile) -> CancelOutcome

    // MARK: Callbacks

    /// The check of this host's signed callbacks with the account's
    /// `secret`; nil when its callbacks carry no signature qie can check.
    func callbackVerifier(secret: String) -> (any CallbackVerifier)?

    // MARK: How the emulator plays it

    /// A new job's id.
    func emulatedJobID(for profile: ProviderProfile) -> String
    /// The host's word for a job in `phase`.
    func emulatedStatus(_ phase: JobPhase, for profile: ProviderProfile) -> String
    /// The answer to a submission the host took as a job (`enqueued`: on
    /// its asynchronous route; else a synchronous one that outlasted its wait).
    func emulatedAcceptance(of job: EmulatedJob, for profile: ProviderProfile, enqueued: Bool) -> EmulatedAnswer
    /// The job as a poll (or, `asCallback`, a callback) describes it.
    func emulatedDescription(of job: EmulatedJob, for profile: ProviderProfile, asCallback: Bool) -> [String: Any]
    /// The answer to a synchronous submission that finished with `results`.
    func emulatedSuccess(_ results: EmulatedResults, for profile: ProviderProfile) -> [String: Any]
    /// An error answer in the host's shape (`param`: the field at fault, where the host names it).
    func emulatedError(_ message: String, param: String?, for profile: ProviderProfile) -> [String: Any]
    /// An error answer in the host's shape for HTTP `status`, for hosts whose
    /// error body names the kind of error. The default is `emulatedError(_:param:for:)`.
    func emulatedError(_ message: String, param: String?, status: Int, for profile: ProviderProfile) -> [String: Any]
    /// A JSON submission's fields as the emulator checks them, for a host
    /// whose body is not in one of the standard envelopes: the prompt as
    /// `prompt`, the images at `profile.images.field`, the optional fields
    /// by name, as `.flatJSON` lays them out without `model`. A body the
    /// host would refuse for its shape throws, in the host's words. nil (the
    /// default) when the body is in `profile.envelope`, which the emulator reads.
    func emulatedFields(of body: [String: Any], for profile: ProviderProfile) throws(EmulatedRefusal) -> [String: Any]?
    /// The answer to a cancel of `job`, which the emulator has just ended
    /// (`wasRunning`: it had started).
    func emulatedCancel(of job: EmulatedJob, for profile: ProviderProfile, wasRunning: Bool) -> EmulatedAnswer
    /// The event the host's stream sends when `job` ends, as its name and
    /// data; nil when the host has no event stream.
    func emulatedEvent(for job: EmulatedJob, profile: ProviderProfile) -> (name: String, data: [String: Any])?
    /// The headers of a callback delivery of `body` (a signature when
    /// `secret` is set).
    func emulatedCallbackHeaders(for body: Data, secret: String?, at time: Date) -> [(String, String)]
    /// The answer to a fetch of `job`'s results (`ProviderProfile.Routes.result`).
    func emulatedResult(of job: EmulatedJob, for profile: ProviderProfile) -> EmulatedAnswer
    /// A refusal with HTTP `status` in the host's shape and with the status
    /// it uses for it (`param`: the field at fault, where the host names it).
    func emulatedRefusal(_ message: String, param: String?, status: Int, for profile: ProviderProfile) -> EmulatedAnswer
    /// JSON documents the host publishes beside its endpoints, by path on
    /// the emulator's address (such as the public keys its callbacks are
    /// signed with, from the emulator's `secret`).
    func emulatedDocuments(secret: String?) -> [(path: String, body: [String: Any])]

    // MARK: Per-request headers, and how the emulator reads them

    /// Headers of the host's own that a submission in `flow` carries (a
    /// synchronous wait, a deadline from the edit's `timeout` in seconds,
    /// when known); none by default.
    func requestHeaders(for flow: ProviderProfile.Flow, timeout: Double?, profile: ProviderProfile) -> [(String, String)]
    /// What a submission's headers (`header(name)`) ask of the emulator:
    /// how long it waits for the result and when the job is ended where it
    /// stands. By default the route decides and nothing is asked.
    func emulatedTerms(header: (String) -> String?, for profile: ProviderProfile) -> EmulatedTerms
    /// Checks the fields of a JSON submission (the whole body) that only
    /// the host knows, removing those it checked: its refusal, or nil. By
    /// default every field is left to the profile's own checks.
    func emulatedCheck(_ body: inout [String: Any], for profile: ProviderProfile) -> EmulatedRefusal?
}

extension EndpointHost {
    /// The body laid out in the profile's envelope.
    public func body(_ fields: RequestFields, for profile: ProviderProfile) -> RequestBody {
        fields.laidOut(in: profile.envelope, model: profile.model)
    }

    /// Nothing refused beyond what the profile says.
    public func check(_ request: EditRequest, plan: SizePlan, for profile: ProviderProfile) throws(ProvidersError) {}

    /// The error shape without the status.
    public func emulatedError(_ message: String, param: String?, status: Int, for profile: ProviderProfile) -> [String: Any] {
        emulatedError(message, param: param, for: profile)
    }

    /// The body is in the profile's envelope.
    public func emulatedFields(of body: [String: Any], for profile: ProviderProfile) throws(EmulatedRefusal) -> [String: Any]? {
        nil
    }

    /// No duration reported.
    public func reportedDuration(_ answer: [String: Any]) -> Double? { nil }

    /// The cancel refused, in the endpoint's words: a host with a cancel route reads its answer itself.
    public func readCancel(_ body: Data, status: Int, for profile: ProviderProfile) -> CancelOutcome {
        .refused(body, status: status, for: profile)
    }

    /// No signature to check.
    public func callbackVerifier(secret: String) -> (any CallbackVerifier)? { nil }

    /// No cancel route: 404 in the host's error shape.
    public func emulatedCancel(of job: EmulatedJob, for profile: ProviderProfile, wasRunning: Bool) -> EmulatedAnswer {
        EmulatedAnswer(status: 404, body: emulatedError("Not found", param: nil, for: profile))
    }

    /// No event stream.
    public func emulatedEvent(for job: EmulatedJob, profile: ProviderProfile) -> (name: String, data: [String: Any])? { nil }

    /// No headers of its own.
    public func emulatedCallbackHeaders(for body: Data, secret: String?, at time: Date) -> [(String, String)] { [] }

    /// The job as a poll describes it.
    public func emulatedResult(of job: EmulatedJob, for profile: ProviderProfile) -> EmulatedAnswer {
        EmulatedAnswer(status: 200, body: emulatedDescription(of: job, for: profile, asCallback: false))
    }

    /// `status` with the host's error shape.
    public func emulatedRefusal(_ message: String, param: String?, status: Int, for profile: ProviderProfile) -> EmulatedAnswer {
        EmulatedAnswer(status: status, body: emulatedError(message, param: param, status: status, for: profile))
    }

    /// None.
    public func emulatedDocuments(secret: String?) -> [(path: String, body: [String: Any])] { [] }

    /// No headers of its own.
    public func requestHeaders(for flow: ProviderProfile.Flow, timeout: Double?, profile: ProviderProfile) -> [(String, String)] { [] }

    /// The route decides; no deadline.
    public func emulatedTerms(header: (String) -> String?, for profile: ProviderProfile) -> EmulatedTerms { EmulatedTerms() }

    /// Nothing of its own to check.
    public func emulatedCheck(_ body: inout [String: Any], for profile: ProviderProfile) -> EmulatedRefusal? { nil }
}

/// What a submission's headers ask of the emulator (`EndpointHost.emulatedTerms`).
public struct EmulatedTerms: Sendable, Equatable {
    /// Set: the submission is taken as a job and answered when it ends or
    /// after this long, whichever comes first (zero: at once), whatever its
    /// route. Nil: a synchronous route waits for the result, another answers at once.
    public var wait: Duration?
    /// Set: a job not ended this long after its submission is ended where
    /// it stands (`EmulatedJob.endedByDeadline`).
    public var deadline: Duration?
    /// Set: the headers are refused with this message (HTTP 400 in the host's shape).
    public var refusal: String?

    /// Terms with these parts.
    public init(wait: Duration? = nil, deadline: Duration? = nil, refusal: String? = nil) {
        self.wait = wait
        self.deadline = deadline
        self.refusal = refusal
    }
}

/// A request's fields, built and checked by `RequestBuilder`, before a host
/// lays them out in a body.
public struct RequestFields: Sendable {
    /// The prompt.
    public var prompt: String
    /// The images' field name and whether it takes an array.
    public var imageField: String
    /// Whether the images travel as an array.
    public var imagesAsArray: Bool
    /// The input images.
    public var images: [PayloadImage]
    /// Size fields, as text (`size`, `aspect_ratio`...).
    public var sizes: [(String, String)]
    /// The option fields the endpoint takes, typed.
    public var options: [(String, JSONValue)]
    /// Fields that live beside the request's own (`callback_url`, `metadata`).
    public var beside: [(String, JSONValue)]
    /// The output format field and its value, when one is sent.
    public var outputFormat: (String, String)?
    /// The multipart boundary, for hosts that take multipart bodies.
    public var boundary: String

    /// The fields laid out in one of the standard envelopes.
    public func laidOut(in envelope: ProviderProfile.Envelope, model: String) -> RequestBody {
        let imageValue: JSONValue = imagesAsArray ? .array(images.map { .image($0) }) : .image(images[0])
        let sizeFields = sizes.map { ($0.0, JSONValue.string($0.1)) }
        let formatField = outputFormat.map { [($0.0, JSONValue.string($0.1))] } ?? []
        switch envelope {
        case .inputObject:
            let input: [(String, JSONValue)] =
                [("prompt", .string(prompt)), (imageField, imageValue)] + sizeFields + options + formatField
            return .json(.object([("input", .object(input))] + beside))
        case .flatJSON:
            let fields: [(String, JSONValue)] =
                [("model", .string(model)), ("prompt", .string(prompt)), (imageField, imageValue)] + sizeFields + options
                + beside + formatField
            return .json(.object(fields))
        case .routedJSON:
            let fields: [(String, JSONValue)] =
                [("prompt", .string(prompt)), (imageField, imageValue)] + sizeFields + options + beside + formatField
            return .json(.object(fields))
        case .multipart:
            var parts: [MultipartPart] = [.field(name: "model", value: model), .field(name: "prompt", value: prompt)]
            let partName = images.count > 1 ? imageField + "[]" : imageField
            parts += images.map { .file(name: partName, image: $0) }
            parts += sizes.map { .field(name: $0.0, value: $0.1) }
            for (name, value) in options + beside { parts.append(.field(name: name, value: value.formText)) }
            if let (name, value) = outputFormat { parts.append(.field(name: name, value: value)) }
            return .multipart(boundary: boundary, parts: parts)
        }
    }
}

/// What an endpoint said to a cancel.
public enum CancelOutcome: Sendable, Equatable {
    /// Cancelled before it ran: nothing was billed.
    case cancelledBeforeRunning
    /// Cancelled, or ended, after it started: it may have been billed.
    case tooLate(status: String)
    /// The endpoint refused the cancel or could not be asked (its words).
    case refused(message: String)

    /// A cancel refused with HTTP `status` and `body`, in the endpoint's words.
    public static func refused(_ body: Data, status: Int, for profile: ProviderProfile) -> CancelOutcome {
        .refused(message: ResponseReader.errorMessage(try? JSONSerialization.jsonObject(with: body), body: body, status: status, profile: profile))
    }
}

/// The phases of a job, whatever a host calls them.
public enum JobPhase: String, Sendable, CaseIterable {
    /// Waiting for a worker.
    case queued
    /// Being worked on.
    case running
    /// Finished with results.
    case succeeded
    /// Ended with an error.
    case failed
    /// Cancelled.
    case cancelled

    /// Whether the job has ended.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// A job as the emulator keeps it, for a host to describe.
public struct EmulatedJob: Sendable {
    /// Its id.
    public var id: String
    /// Where it stands (its host's word for it: `EndpointHost.emulatedStatus`).
    public var phase: JobPhase
    /// When it was submitted, started and ended.
    public var createdAt: Date
    /// When a worker took it.
    public var startedAt: Date?
    /// When it ended.
    public var completedAt: Date?
    /// Its result links, once finished.
    public var urls: [String]
    /// Its error, when it failed.
    public var error: String?
    /// The metadata it was sent with (JSON), when any.
    public var metadata: Data?
    /// The size of its outputs.
    public var outputSize: PixelSize
    /// The seed it ran with.
    public var seed: Int
    /// What it costs at the host's published price, USD.
    public var cost: Decimal
    /// Whether it was ended where it stood because its deadline
    /// (`EmulatedTerms.deadline`) passed.
    public var endedByDeadline = false

    /// A job with these parts.
    public init(
        id: String, phase: JobPhase, createdAt: Date, startedAt: Date? = nil, completedAt: Date? = nil,
        urls: [String] = [], error: String? = nil, metadata: Data? = nil, outputSize: PixelSize, seed: Int, cost: Decimal
    ) {
        self.id = id
        self.phase = phase
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.urls = urls
        self.error = error
        self.metadata = metadata
        self.outputSize = outputSize
        self.seed = seed
        self.cost = cost
    }
}

/// The finished results of a synchronous emulated edit.
public struct EmulatedResults: Sendable {
    /// Links (or data URIs) to the results.
    public var urls: [String]
    /// Results asked for inline as base64.
    public var inline: [Data]
    /// The prompt it ran with.
    public var prompt: String
    /// Whether results were asked for as base64.
    public var returnsBase64: Bool
    /// What it costs at the published price, USD.
    public var cost: Decimal
    /// A cost to report instead, as the JSON text a fault injected.
    public var reportedCost: String?
    /// The size of each result, where the emulator knows it.
    public var outputSize: PixelSize? = nil

    /// Results with these parts.
    public init(urls: [String], inline: [Data], prompt: String, returnsBase64: Bool, cost: Decimal, reportedCost: String?) {
        self.urls = urls
        self.inline = inline
        self.prompt = prompt
        self.returnsBase64 = returnsBase64
        self.cost = cost
        self.reportedCost = reportedCost
    }

    /// The cost as it goes in an answer: the injected value, else the price.
    public var costValue: Any {
        reportedCost.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed) }
            ?? NSDecimalNumber(decimal: cost)
    }
}

/// A submission the emulator refuses for its shape, as its host would:
/// HTTP status, message and the field at fault.
public struct EmulatedRefusal: Error, Sendable {
    /// The HTTP status.
    public var status: Int
    /// The host's words.
    public var message: String
    /// The field at fault, where the host names it.
    public var param: String?

    /// A refusal with `status` (400 unless given), `message` and `param`.
    public init(_ message: String, param: String? = nil, status: Int = 400) {
        self.status = status
        self.message = message
        self.param = param
    }
}

/// An emulated answer: HTTP status and JSON body.
public struct EmulatedAnswer {
    /// The HTTP status.
    public var status: Int
    /// The JSON body.
    public var body: [String: Any]

    /// An answer with `status` and `body`.
    public init(status: Int, body: [String: Any]) {
        self.status = status
        self.body = body
    }
}

/// Checks a host's signed callbacks.
public protocol CallbackVerifier: Sendable {
    /// The header that carries the signature.
    var signatureHeader: String { get }
    /// How far a signed time may be from now, in seconds (deliveries seen
    /// within twice this are replays).
    var tolerance: Double { get }
    /// What a valid, recent signature of `body` vouches for; nil when the
    /// signature (`header(name)`) is missing, wrong or stale.
    func verify(header: (String) -> String?, body: Data, now: Date) -> SignedDelivery?
    /// Where the public keys signatures are checked against are published,
    /// when they are (the listener fetches them, keeps them for
    /// `keySetLifetime` seconds and checks with `verifying(withKeySet:)`).
    var keySetURL: String? { get }
    /// How long fetched keys are kept before they are fetched again, in seconds.
    var keySetLifetime: Double { get }
    /// The check against the keys in `document` (as fetched from
    /// `keySetURL`); nil when it holds no usable key.
    func verifying(withKeySet document: Data) -> (any CallbackVerifier)?
}

extension CallbackVerifier {
    /// No published keys: the check needs nothing fetched.
    public var keySetURL: String? { nil }
    /// A day.
    public var keySetLifetime: Double { 86_400 }
    /// The check as it is.
    public func verifying(withKeySet document: Data) -> (any CallbackVerifier)? { self }
}

extension JSONValue {
    /// The value as a number, when it is one.
    var numericValue: Double? {
        switch self {
        case .integer(let number): Double(number)
        case .number(let number): number
        default: nil
        }
    }

    /// The value as a form field's text.
    var formText: String {
        switch self {
        case .string(let text): text
        case .integer(let number): String(number)
        case .number(let number): String(number)
        case .bool(let flag): flag ? "true" : "false"
        default: ""
        }
    }
}

/// A JSON timestamp as the emulated hosts write them (ISO 8601, UTC).
public func emulatedTimestamp(_ date: Date) -> String { date.formatted(.iso8601) }

/// What a verified callback signature vouches for: the time it was signed
/// at and the SHA-256 of the body it covers.
public struct SignedDelivery: Sendable, Hashable {
    /// When the delivery was signed (the `t=` time, or the body's own time for the bare forms).
    public var signedAt: Date
    /// The SHA-256 of the signed body, in hex.
    public var bodyDigest: String

    /// The delivery of `body` signed at `signedAt`.
    public init(signedAt: Date, body: Data) {
        self.signedAt = signedAt
        bodyDigest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
    }

    /// The same for every spelling of the same signed delivery: its time and body digest.
    public var replayKey: String { "\(signedAt.timeIntervalSince1970):\(bodyDigest)" }
}

