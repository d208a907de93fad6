/// The one error type of the imaging module.
///
/// Every message says what was found and what to do about it. `file` names the
/// input when there is one; `description` puts it first, so a batch can print
/// the error as it is.
public struct ImagingError: Error, Sendable, Equatable, CustomStringConvertible {
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

    public let kind: Kind
    /// What went wrong and what to do, without the file name.
    public let reason: String
    /// The file concerned, when the input came from one.
    public var file: String?

    public init(_ kind: Kind, _ reason: String, file: String? = nil) {
        self.kind = kind
        self.reason = reason
        self.file = file
    }

    public var description: String {
        if let file { return "\(file): \(reason)" }
        return reason
    }

    /// The same error, attributed to `file` unless it already names one.
    public func attributed(to file: String) -> ImagingError {
        var copy = self
        if copy.file == nil { copy.file = file }
        return copy
    }
}
