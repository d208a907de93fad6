import ExtrasBase64
import Foundation
import QieImaging
#if canImport(Glibc)
import Glibc
#endif

/// Base64 data URIs for inline transport, encoded in chunks.
public enum DataURI {
    /// Input bytes per chunk: a multiple of 3, so chunks join without padding.
    static let chunk = 3 * 64 * 1024

    /// `data:image/png;base64,...` for bytes held in memory.
    public static func make(_ data: Data, format: OutputFormat) -> String {
        var sink = DataSink()
        try? JSONValue.image(.bytes(data, format: format, filename: "")).write(to: &sink)
        return String(decoding: sink.data.dropFirst().dropLast(), as: UTF8.self)
    }

    /// Encodes `input` into a reused buffer and hands each chunk to `sink`.
    private static func encodeChunks(_ input: UnsafeRawBufferPointer, buffer: inout [UInt8], to sink: inout some ByteSink) throws {
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + chunk)
            let written = buffer.withUnsafeMutableBytes { out in
                Base64Encoder.encode(UnsafeRawBufferPointer(rebasing: input[offset..<end]), into: out)
            }
            try buffer.withUnsafeBytes { try sink.append(UnsafeRawBufferPointer(rebasing: $0[0..<written])) }
            offset = end
        }
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

    /// Writes the base64 of an image's bytes to `sink`, one chunk at a time:
    /// a file is read chunk by chunk, never whole.
    static func writeBase64(of image: PayloadImage, to sink: inout some ByteSink) throws {
        switch image {
        case .url(let url):
            try sink.append(url)
        case .bytes(let data, _, _):
            var buffer = [UInt8](repeating: 0, count: Base64Encoder.encodedCount(chunk))
            try data.withUnsafeBytes { try encodeChunks($0, buffer: &buffer, to: &sink) }
        case .file(let path, _):
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw ProvidersError(.invalidOption, "\(path): cannot be read for the request body: \(String(cString: strerror(errno)))")
            }
            defer { close(descriptor) }
            var buffer = [UInt8](repeating: 0, count: chunk)
            var encoded = [UInt8](repeating: 0, count: Base64Encoder.encodedCount(chunk))
            while true {
                var filled = 0
                while filled < chunk {
                    let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, chunk - filled) }
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 {
                        throw ProvidersError(.invalidOption, "\(path): read failed: \(String(cString: strerror(errno)))")
                    }
                    if n == 0 { break }
                    filled += n
                }
                if filled == 0 { break }
                try buffer.withUnsafeBytes {
                    try encodeChunks(UnsafeRawBufferPointer(rebasing: $0[0..<filled]), buffer: &encoded, to: &sink)
                }
                if filled < chunk { break }
            }
        }
    }
}
