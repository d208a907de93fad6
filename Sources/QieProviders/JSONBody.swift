import Foundation
import QieCore

/// An image in a request: a URL the endpoint fetches, or bytes sent inline.
public enum PayloadImage: Sendable, Equatable {
    /// A URL the endpoint downloads the image from.
    case url(String)
    /// Encoded image bytes, sent as a data URI or a multipart file part.
    case bytes(Data, format: OutputFormat, filename: String)
    /// An encoded image file, read while the body is written (not held in memory).
    case file(path: String, format: OutputFormat)

    var mimeType: String {
        switch self {
        case .url: "application/octet-stream"
        case .bytes(_, let format, _), .file(_, let format): format.mimeType
        }
    }

    var filename: String {
        switch self {
        case .url(let url): url.split(separator: "/").last.map(String.init) ?? "image"
        case .bytes(_, _, let filename): filename
        case .file(let path, _): path.split(separator: "/").last.map(String.init) ?? "image"
        }
    }
}

/// A JSON value whose object keys keep their order, and whose images are
/// written as data URIs while the body streams out.
public indirect enum JSONValue: Sendable, Equatable {
    /// An object, with its members in order.
    case object([(String, JSONValue)])
    /// An array.
    case array([JSONValue])
    /// A string.
    case string(String)
    /// A whole number.
    case integer(Int)
    /// A number with a fraction; non-finite values are written as `null`.
    case number(Double)
    /// `true` or `false`.
    case bool(Bool)
    /// `null`.
    case null
    /// A data URI (`data:image/png;base64,...`) or the URL itself.
    case image(PayloadImage)

    /// Whether two values are equal, objects member by member in order.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.array(let a), .array(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.null, .null): true
        case (.image(let a), .image(let b)): a == b
        default: false
        }
    }

    /// Writes the value to `sink` in pieces; images are read and encoded in
    /// chunks, so a body never holds a whole base64 copy of an image.
    public func write(to sink: inout some ByteSink) throws {
        switch self {
        case .object(let members):
            try sink.append("{")
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { try sink.append(",") }
                try JSONValue.writeString(key, to: &sink)
                try sink.append(":")
                try value.write(to: &sink)
            }
            try sink.append("}")
        case .array(let items):
            try sink.append("[")
            for (index, item) in items.enumerated() {
                if index > 0 { try sink.append(",") }
                try item.write(to: &sink)
            }
            try sink.append("]")
        case .string(let text): try JSONValue.writeString(text, to: &sink)
        case .integer(let value): try sink.append(String(value))
        case .number(let value): try sink.append(value.isFinite ? String(value) : "null")
        case .bool(let value): try sink.append(value ? "true" : "false")
        case .null: try sink.append("null")
        case .image(let image):
            if case .url(let url) = image {
                try JSONValue.writeString(url, to: &sink)
            } else {
                try sink.append("\"data:\(image.mimeType);base64,")
                try sink.appendImage(image, as: .base64)
                try sink.append("\"")
            }
        }
    }

    static func writeString(_ text: String, to sink: inout some ByteSink) throws {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        try sink.append(out)
    }
}

/// How an image's bytes appear in a body.
public enum PayloadEncoding: Sendable, Equatable {
    /// Base64 (the payload of a data URI in JSON).
    case base64
    /// The bytes as they are (a multipart file part).
    case raw
}

/// Where a request body is written: memory, a file, a counter, a stream.
public protocol ByteSink {
    /// Appends bytes.
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws
    /// Appends an image's bytes encoded as `encoding`. The default reads the
    /// image in chunks and appends each one encoded; sinks that only count, or
    /// that defer the image to when the body is streamed, do less.
    mutating func appendImage(_ image: PayloadImage, as encoding: PayloadEncoding) throws
}

extension ByteSink {
    /// Appends text as UTF-8.
    mutating func append(_ text: String) throws {
        var text = text
        try text.withUTF8 { buffer in try append(UnsafeRawBufferPointer(buffer)) }
    }

    /// Reads the image chunk by chunk and appends each chunk encoded.
    public mutating func appendImage(_ image: PayloadImage, as encoding: PayloadEncoding) throws {
        var reader = try PayloadImageReader(image, encoding: encoding)
        var buffer = [UInt8](repeating: 0, count: PayloadImageReader.chunkSize)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
            if count == 0 { break }
            try buffer.withUnsafeBytes { try append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
    }
}

/// Collects a body in memory.
public struct DataSink: ByteSink {
    /// The bytes written so far.
    public private(set) var data = Data()
    /// An empty sink.
    public init() {}
    /// Appends bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws { data.append(contentsOf: bytes) }
}

/// Counts a body's bytes without producing them: images are sized from
/// their byte count or file size, never read or encoded.
public struct CountingSink: ByteSink {
    /// Bytes counted so far.
    public private(set) var count = 0
    /// A sink at zero.
    public init() {}
    /// Counts bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws { count += bytes.count }
    /// Counts an image's encoded length from its size.
    public mutating func appendImage(_ image: PayloadImage, as encoding: PayloadEncoding) throws {
        count += try PayloadImageReader.encodedLength(of: image, as: encoding)
    }
}
