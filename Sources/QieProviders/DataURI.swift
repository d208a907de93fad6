import ExtrasBase64
import Foundation
import QieCore

/// Base64 data URIs for inline transport, encoded in chunks.
public enum DataURI {
    /// `data:image/png;base64,...` for bytes held in memory.
    public static func make(_ data: Data, format: OutputFormat) -> String {
        var sink = DataSink()
        try? JSONValue.image(.bytes(data, format: format, filename: "")).write(to: &sink)
        return String(decoding: sink.data.dropFirst().dropLast(), as: UTF8.self)
    }

    /// Decodes a data URI: its media type and bytes. Nil when it is not one.
    public static func decode(_ uri: String) -> (mediaType: String, bytes: [UInt8])? {
        guard uri.hasPrefix("data:"), let comma = uri.firstIndex(of: ",") else { return nil }
        let header = uri[uri.index(uri.startIndex, offsetBy: 5)..<comma]
        guard header.hasSuffix(";base64") else { return nil }
        let mediaType = String(header.dropLast(7))
        guard let bytes = try? String(uri[uri.index(after: comma)...]).base64decoded() else { return nil }
        return (mediaType, bytes)
    }
}
