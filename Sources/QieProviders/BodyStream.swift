import Foundation

/// Reads one image of a request body in chunks, encoded as it goes: base64
/// for data URIs, raw bytes for multipart parts. A file is read from disk
/// chunk by chunk and never held whole.
public struct PayloadImageReader {
    /// Bytes of input read per chunk: a multiple of 3, so base64 chunks join
    /// without padding in between.
    public static let chunkSize = 3 * 64 * 1024

    private enum Source {
        case memory(Data, offset: Int)
        case file(FileHandle, path: String)
        case done
    }

    private var source: Source
    private let encoding: PayloadEncoding
    /// Raw input read ahead of the caller's buffer.
    private var input: Data = Data()

    /// A reader over `image`. URLs are read as their text.
    public init(_ image: PayloadImage, encoding: PayloadEncoding) throws {
        self.encoding = encoding
        switch image {
        case .url(let url): source = .memory(Data(url.utf8), offset: 0)
        case .bytes(let data, _, _): source = .memory(data, offset: 0)
        case .file(let path, _):
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw ProvidersError(.invalidOption, "\(path): cannot be read for the request body")
            }
            source = .file(handle, path: path)
        }
    }

    /// The encoded length of `image`, from its byte count or file size.
    public static func encodedLength(of image: PayloadImage, as encoding: PayloadEncoding) throws -> Int {
        let count: Int
        switch image {
        case .url(let url): count = url.utf8.count
        case .bytes(let data, _, _): count = data.count
        case .file(let path, _):
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw ProvidersError(.invalidOption, "\(path): cannot be read for the request body")
            }
            defer { try? handle.close() }
            count = Int(try handle.seekToEnd())
        }
        return encoding == .base64 ? Base64Encoder.encodedCount(count) : count
    }

    /// The largest input that fits `capacity` output bytes once encoded.
    private func inputFitting(_ capacity: Int) -> Int {
        encoding == .base64 ? capacity / 4 * 3 : capacity
    }

    /// Fills `buffer` with the next encoded bytes and returns how many; 0 at
    /// the end. `buffer` must hold at least 4 bytes.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let wanted = min(Self.chunkSize, inputFitting(buffer.count))
        precondition(wanted > 0, "payload reader buffer too small")
        let chunk: Data
        switch source {
        case .done:
            return 0
        case .memory(let data, let offset):
            let end = min(data.count, offset + wanted)
            chunk = data.subdata(in: data.startIndex + offset..<data.startIndex + end)
            source = end >= data.count ? .done : .memory(data, offset: end)
        case .file(let handle, let path):
            do {
                chunk = try handle.read(upToCount: wanted) ?? Data()
            } catch {
                throw ProvidersError(.invalidOption, "\(path): reading it for the request body failed: \(error)")
            }
            if chunk.count < wanted {
                try? handle.close()
                source = .done
            }
        }
        if chunk.isEmpty { return 0 }
        return chunk.withUnsafeBytes { raw in
            switch encoding {
            case .base64:
                return Base64Encoder.encode(raw, into: buffer)
            case .raw:
                buffer.copyMemory(from: raw)
                return raw.count
            }
        }
    }
}

/// A body cut into literal bytes and the images between them, so it can be
/// produced again from the start, piece by piece.
enum BodySegment {
    case bytes([UInt8])
    case image(PayloadImage, PayloadEncoding)
}

/// Records a body's structure: literal bytes as they come, images as
/// placeholders to be read when the body is streamed.
struct SegmentSink: ByteSink {
    private var segments: [BodySegment] = []
    private var pending: [UInt8] = []

    mutating func append(_ bytes: UnsafeRawBufferPointer) throws { pending.append(contentsOf: bytes) }

    mutating func appendImage(_ image: PayloadImage, as encoding: PayloadEncoding) throws {
        flush()
        segments.append(.image(image, encoding))
    }

    private mutating func flush() {
        if !pending.isEmpty { segments.append(.bytes(pending)) }
        pending = []
    }

    mutating func finish() -> [BodySegment] {
        flush()
        return segments
    }
}

/// Produces a request body piece by piece into the caller's buffers (for a
/// socket): literal JSON or multipart text as recorded, images read and
/// encoded only when their turn comes. Memory stays at one chunk whatever the
/// images' sizes. Make one with `RequestBody.reader()`.
public struct RequestBodyReader {
    private var segments: [BodySegment]
    private var index = 0
    private var offset = 0
    private var image: PayloadImageReader?

    init(segments: [BodySegment]) { self.segments = segments }

    /// Fills `buffer` (at least 4 bytes) with the next bytes of the body and
    /// returns how many; 0 once the body is over.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while index < segments.count {
            switch segments[index] {
            case .bytes(let bytes):
                let count = min(buffer.count, bytes.count - offset)
                bytes.withUnsafeBytes { source in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + count]))
                }
                offset += count
                if offset >= bytes.count {
                    index += 1
                    offset = 0
                }
                if count > 0 { return count }
            case .image(let payload, let encoding):
                if image == nil { image = try PayloadImageReader(payload, encoding: encoding) }
                let count = try image!.read(into: buffer)
                if count > 0 { return count }
                image = nil
                index += 1
            }
        }
        return 0
    }
}
