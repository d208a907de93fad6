/// Every setting a user can give qie, named for what it is rather than how a
/// front end spells it. Errors name settings by these values; each front end
/// renders them in its own vocabulary (the command line as `--max-cost`, the
/// OpenAI-compatible gateway as a request field), so no library message
/// carries one front end's spelling.
public enum Setting: String, Sendable, Codable, CaseIterable {
    /// What to edit and where results go: input paths, output folder, prompt, prompt manifest, reference images.
    case inputs, output, prompt, manifest, references
    /// The endpoint and the size asked of it.
    case endpoint, size, aspectRatio, resolution, fit, position, background
    /// How results are encoded, and whether they are restored to the input's size.
    case format, quality, compression, effort, lossless, chroma, keepICC, restore
    /// Optional fields of an endpoint's request.
    case negativePrompt, seed, numImages, syncMode, callbackURL, callbackListen, metadata, safetyChecker
    /// More optional fields of an endpoint's request.
    case guidanceScale, inferenceSteps, acceleration, responseFormat, outputCompression
    /// How a run sends requests and waits for results.
    case flow, concurrency, rate, timeout, requestTimeout, connectTimeout, pollInterval, baseURL, retryFailed
    /// Sending again what may already have been paid for, and where keys may go.
    case retryUncertain, allowInsecureHTTP
    /// What results from an endpoint must pass: where they come from, their size, their download time, their bytes.
    case allowPrivateResults, maxResultBytes, downloadTimeout, keepResultBytes
    /// Where input images given as URLs may be fetched from.
    case allowPrivateInputs
    /// How much of an endpoint's event stream is held: its longest line and its largest event.
    case maxEventLineBytes, maxEventBytes
    /// What inputs may be: references outside the run's folders, file sizes,
    /// links leading outside the inputs.
    case allowOutsideReferences, maxFileBytes, followLinks
    /// Spending limits and prices.
    case maxCost, pricePerImage, pricePerMegapixel, megapixelRounding
    /// Limits checked from an image's header before decoding.
    case maxMegapixels, maxSide
    /// The endpoint's key (read from the environment).
    case apiKey
    /// How outputs are named (a template), and whether inputs whose output exists already are skipped.
    case outputName, skipExisting
    /// Where a run's jobs are kept (a shared store's URL), and how long a worker's claim on a job lasts.
    case ledger, lease

    /// The setting's name in library messages: the name of the property
    /// that holds it in the library's configuration values (`maxCost`).
    public var name: String { rawValue }
}

/// Text that names settings, rendered by whoever shows it: `Phrase` keeps the
/// settings as data so a front end can spell them its own way.
///
/// ```swift
/// let hint: Phrase = "raise \(setting: .maxSide) only if you trust this file"
/// hint.rendered()                               // "raise maxSide only if ..."
/// hint.rendered { $0 == .maxSide ? "--max-side" : $0.name }  // "raise --max-side only if ..."
/// ```
public struct Phrase: Sendable, Equatable, Codable, CustomStringConvertible, ExpressibleByStringInterpolation {
    /// One piece of the text.
    public enum Part: Sendable, Equatable, Codable {
        /// Literal text.
        case text(String)
        /// A setting, spelled by the renderer.
        case setting(Setting)
    }

    /// The pieces, in order.
    public var parts: [Part]

    /// A phrase made of `parts`.
    public init(parts: [Part]) { self.parts = parts }

    /// A phrase of plain text.
    public init(stringLiteral value: String) { parts = value.isEmpty ? [] : [.text(value)] }

    /// A phrase written with `\(setting: ...)` interpolations.
    public init(stringInterpolation: Interpolation) { parts = stringInterpolation.parts }

    /// Builds a `Phrase` from a string literal with interpolated settings.
    public struct Interpolation: StringInterpolationProtocol {
        var parts: [Part] = []

        /// Reserves room for the literal and interpolations.
        public init(literalCapacity: Int, interpolationCount: Int) {}

        /// Appends literal text.
        public mutating func appendLiteral(_ literal: String) { append(.text(literal)) }

        /// Appends a setting, to be spelled by the renderer.
        public mutating func appendInterpolation(setting: Setting) { append(.setting(setting)) }

        /// Appends a value as text.
        public mutating func appendInterpolation(_ value: some CustomStringConvertible) { append(.text(value.description)) }

        /// Appends another phrase, keeping its settings as data.
        public mutating func appendInterpolation(_ phrase: Phrase) { phrase.parts.forEach { append($0) } }

        /// Text next to text is one part, so equal phrases have equal parts.
        private mutating func append(_ part: Part) {
            switch (parts.last, part) {
            case (_, .text("")): break
            case (.text(let before)?, .text(let text)): parts[parts.count - 1] = .text(before + text)
            default: parts.append(part)
            }
        }
    }

    /// The text with each setting spelled by `naming`.
    public func rendered(naming: (Setting) -> String = \.name) -> String {
        parts.map { part in
            switch part {
            case .text(let text): text
            case .setting(let setting): naming(setting)
            }
        }.joined()
    }

    /// The text with settings named as in the library.
    public var description: String { rendered() }
}

/// An error whose message names settings, so each front end can word it in
/// its own vocabulary. `description` names settings as the library does.
public protocol SettingNamingError: Error, CustomStringConvertible {
    /// The message with each setting spelled by `naming`.
    func message(naming: (Setting) -> String) -> String
}

extension SettingNamingError {
    /// The message with settings named as in the library (`maxCost`).
    public var description: String { message(naming: \.name) }
}

/// A setting whose value cannot be used, with what was given and what is
/// accepted, as data. The library never spells a flag: front ends render the
/// message with `message(naming:)`.
public struct SettingError: SettingNamingError, Sendable, Equatable {
    /// What is wrong with the setting.
    public enum Problem: Sendable, Equatable {
        /// The value is malformed or out of range; `expected` says what is accepted.
        case invalid(expected: Phrase)
        /// The setting has no value where one is needed; `hint` says what to give.
        case missing(hint: Phrase)
        /// `endpoint` does not take this value (`what` describes it in words,
        /// such as "size 1000x1000"); `accepts` says what it takes.
        case notAccepted(by: String, what: String, accepts: String)
        /// `endpoint` does not offer this value; it offers `offered`.
        case notOffered(by: String, offered: [String])
        /// `endpoint` has no such field; it takes `takes` (besides the format and the size).
        case notTaken(by: String, takes: [Setting])
        /// The setting (with this value) needs one of `settings`; `why` explains.
        case needs([Setting], why: Phrase?)
        /// The setting only applies together with `setting` set to `value`.
        case onlyWith(Setting, value: String?)
        /// Anything else, worded with the settings it concerns.
        case explained(Phrase)
    }

    /// The setting concerned.
    public var setting: Setting
    /// The value given, as the user wrote it (quoted where it is text); nil when absent.
    public var value: String?
    /// What is wrong.
    public var problem: Problem

    /// An error about `setting` with `value`.
    public init(_ setting: Setting, value: String? = nil, _ problem: Problem) {
        self.setting = setting
        self.value = value
        self.problem = problem
    }

    /// `"text"` with the quotes, for values that are words rather than numbers.
    public static func quoted(_ text: String) -> String { "\"\(text)\"" }

    /// The message, with settings spelled by `naming`.
    public func message(naming: (Setting) -> String) -> String {
        let name = naming(setting)
        let given = value.map { " " + $0 } ?? ""
        switch problem {
        case .invalid(let expected):
            return "\(name) must be \(expected.rendered(naming: naming))" + (value.map { "; got \($0)" } ?? "")
        case .missing(let hint):
            return "\(name) is missing: \(hint.rendered(naming: naming))"
        case .notAccepted(let endpoint, let what, let accepts):
            return "\(endpoint) does not take \(what); it accepts \(accepts)"
        case .notOffered(let endpoint, let offered):
            return "\(endpoint) does not offer \(name)\(given); it offers \(offered.joined(separator: ", "))"
        case .notTaken(let endpoint, let takes):
            let list = takes.isEmpty ? "no optional fields" : takes.map(naming).joined(separator: ", ")
            return "\(endpoint) does not take \(name); it takes \(list), \(naming(.format)) and the size"
        case .needs(let settings, let why):
            let list = settings.map(naming).joined(separator: " or ")
            return "\(name)\(given) needs \(list)" + (why.map { ", " + $0.rendered(naming: naming) } ?? "")
        case .onlyWith(let other, let otherValue):
            return "\(name) goes with \(naming(other))\(otherValue.map { " " + $0 } ?? "")"
        case .explained(let phrase):
            return "\(name)\(given) \(phrase.rendered(naming: naming))"
        }
    }
}
