/// The one error type of the imaging module.
///
/// Every message says what was found and what to do about it. `file` names the
/// input when there is one; `description` puts it first, so a batch can print
/// the error as it is.
public struct ImagingError: SettingNamingError, Sendable, Equatable {
    /// What kind of failure it was, for deciding what to do (skip, retry, report).
    public enum Kind: String, Sendable, Equatable, Codable {
        /// The file or buffer holds no bytes.
        case empty
        /// The content is not an image format qie recognises.
        case notAnImage
        /// A recognised format that qie refuses to decode (SVG, PDF, ...).
        case refusedFormat
        /// The header states dimensions over the configured limits.
        case tooLarge
        /// The header or the data is malformed or cut short.
        case corrupt
        /// An option has a value out of range or one that cannot apply.
        case invalidOption
        /// libvips failed while processing or encoding.
        case processingFailed
        /// The file could not be read.
        case unreadable
    }

    /// The step of image work that failed.
    public enum Stage: String, Sendable, Equatable, Codable {
        /// libvips itself did not start; no image was involved.
        case start
        /// Decoding the input: its header or its pixels are damaged. Lazy
        /// decoding means this can be found while encoding; the stage says
        /// what failed, not when.
        case load
        /// An operation between decoding and encoding (resize, crop, colour
        /// conversion, ...).
        case transform
        /// The encoder, with an input that decodes.
        case save
    }

    /// What kind of failure it was.
    public let kind: Kind
    /// What went wrong and what to do, without the file name.
    public let reason: String
    /// The file concerned, when the input came from one.
    public var file: String?
    /// Which step of decoding, processing or encoding failed: `.load` for a
    /// damaged input (every `.corrupt` error), `.save` for an encoder failure.
    /// Nil for errors found before any image work (an unreadable or empty
    /// file, a refused format, limits, options).
    public let stage: Stage?
    /// What the user can change about it, naming the setting concerned
    /// (for example the limit that refused the file); shown after the reason.
    public var hint: Phrase?
    /// The setting whose value was refused, for `.invalidOption` errors.
    public var setting: SettingError?

    /// An error of `kind`; `reason` says what was found and what to do;
    /// `stage` says which step of image work failed, when one did.
    public init(_ kind: Kind, _ reason: String, file: String? = nil, stage: Stage? = nil, hint: Phrase? = nil) {
        self.kind = kind
        self.reason = reason
        self.file = file
        self.stage = stage
        self.hint = hint
    }

    /// An `.invalidOption` error for a refused setting.
    public init(_ setting: SettingError, file: String? = nil) {
        self.init(.invalidOption, setting.description, file: file)
        self.setting = setting
    }

    /// The reason and its hint, without the file name, settings spelled by `naming`.
    public func reason(naming: (Setting) -> String) -> String {
        if let setting { return setting.message(naming: naming) }
        return reason + (hint.map { " (\($0.rendered(naming: naming)))" } ?? "")
    }

    /// The file (when known), the reason and its hint.
    public func message(naming: (Setting) -> String) -> String {
        let text = reason(naming: naming)
        if let file { return "\(file): \(text)" }
        return text
    }

    /// The same error with `input` (such as "the mask") before its reason,
    /// for calls that read several inputs and must say which one failed.
    func concerning(_ input: String) -> ImagingError {
        var copy = ImagingError(kind, "\(input): \(reason)", file: file, stage: stage, hint: hint)
        copy.setting = setting
        return copy
    }

    /// The same error, attributed to `file` unless it already names one.
    public func attributed(to file: String) -> ImagingError {
        var copy = self
        if copy.file == nil { copy.file = file }
        return copy
    }
}
