import Foundation
import Logging
import QiePipeline

/// The gateway's log lines on standard error, one per event: text
/// (`TIME LEVEL MESSAGE key=value ...`, logfmt-style) or a JSON object.
/// Whatever a request carried into a line cannot forge another one: in
/// text, a value with a space, `=`, `"` or a control character is quoted,
/// and control characters are written as escapes (`\n`, `\u{1b}`); JSON
/// escapes them itself.
///
/// ```swift
/// let logger = Logger(label: "qie-serve") { _ in GatewayLogHandler(format: .json) }
/// ```
public struct GatewayLogHandler: LogHandler {
    /// How each line is written.
    public enum Format: String, Sendable, CaseIterable {
        /// `TIME LEVEL MESSAGE key=value ...`.
        case text
        /// One JSON object per line.
        case json
    }

    /// How each line is written.
    public let format: Format
    /// Metadata every line carries.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level written.
    public var logLevel: Logger.Level = .info
    private let write: @Sendable (String) -> Void

    /// A handler writing lines in `format` to standard error (or to `write`).
    public init(format: Format, write: @escaping @Sendable (String) -> Void = { Terminal.write(2, $0) }) {
        self.format = format
        self.write = write
    }

    /// One item of `metadata`.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line for `event`.
    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let time = ISO8601DateFormatter().string(from: Date())
        switch format {
        case .text:
            var line = "\(time) \(event.level) \(Self.escaped("\(event.message)", quoting: false))"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                line += " \(Self.escaped(key, quoting: false))=\(Self.escaped("\(value)", quoting: true))"
            }
            write(line + "\n")
        case .json:
            var object: [String: String] = ["time": time, "level": "\(event.level)", "message": "\(event.message)"]
            for (key, value) in merged { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            write(String(decoding: data, as: UTF8.self) + "\n")
        }
    }

    /// `text` with every control character (C0, DEL, C1, and the line and
    /// paragraph separators) written as an escape; with `quoting`, in
    /// double quotes when it holds a space, `=`, `"`, `\` or an escape, or is empty.
    static func escaped(_ text: String, quoting: Bool) -> String {
        var out = ""
        var quote = quoting && text.isEmpty
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"; quote = quoting
            case "\r": out += "\\r"; quote = quoting
            case "\t": out += "\\t"; quote = quoting
            case "\"" where quoting, "\\" where quoting: out += "\\" + String(scalar); quote = true
            case " ", "=": out.unicodeScalars.append(scalar); quote = quote || quoting
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += "\\u{" + String(scalar.value, radix: 16) + "}"
                    quote = quoting
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return quote ? "\"" + out + "\"" : out
    }

    /// A value taken from a request, cut to `limit` characters (marked with
    /// `…`), so a client cannot fill the log with one field.
    static func capped(_ text: String, limit: Int = 100) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }
}
