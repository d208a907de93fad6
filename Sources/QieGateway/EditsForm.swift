import Foundation
import MultipartKit
import NIOCore
import QieFiles

/// A `multipart/form-data` body as the OpenAI SDKs send `images.edit`: file
/// parts (`image`, `image[]`, `mask`) are streamed to files in a folder of
/// their own as they arrive, in writes of up to 1 MiB, so a large body is
/// never held in memory; text fields are kept. What a client can make the
/// gateway hold is bounded: at most `maxParts` parts, each text field up to
/// `fieldLimit` bytes and all of them `textLimit`, and at most
/// `headerLimit` bytes of a part's headers (or of anything before the first
/// part) read without a part to show for it.
final class EditsForm {
    /// A file part, on disk.
    struct FilePart {
        var field: String
        var filename: String?
        var path: String
        var byteCount: Int
    }

    /// File parts in the order they came.
    var files: [FilePart] = []
    /// Text fields: the last value of each name wins, as with the OpenAI API.
    var fields: [String: String] = [:]
    /// The folder holding the file parts; removed by `remove()`.
    let folder: String
    /// The request field the images came in, as errors name it: `image`
    /// (multipart), or `images` (the JSON form).
    var imageParam = "image"

    /// The longest text field, bytes (a prompt of 32,000 characters fits).
    static let fieldLimit = 256 << 10
    /// All text fields together, bytes.
    static let textLimit = 1 << 20
    /// The most parts in one body: images, a mask and the text fields.
    static let maxParts = 64
    /// The most headers of one part.
    static let maxPartHeaders = 16
    /// Bytes the parser may take in without a header, a body byte or a part
    /// ending: a part's headers, or the preamble.
    static let headerLimit = 16 << 10
    /// Bytes of a file part gathered before they are written.
    static let writeSize = 1 << 20

    init(folder: String) { self.folder = folder }

    /// Deletes the file parts.
    func remove() { try? FileManager.default.removeItem(atPath: folder) }

    /// The boundary of a `multipart/form-data` content type, or nil.
    static func boundary(contentType: String?) -> String? {
        guard let contentType else { return nil }
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for part in parts.dropFirst() where part.lowercased().hasPrefix("boundary=") {
            var value = String(part.dropFirst("boundary=".count))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty ? nil : value
        }
        return nil
    }

    /// A form with no fields or files yet, its folder made under `directory`.
    static func empty(in directory: String) throws(GatewayError) -> EditsForm {
        let folder = directory + "/upload-" + UUID().uuidString
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw GatewayError(status: 500, message: "cannot store the upload: \(error.localizedDescription)", type: "server_error")
        }
        return EditsForm(folder: folder)
    }

    /// Reads `body` with `boundary`, at most `limit` bytes, into files under `directory`.
    static func read<Body: AsyncSequence>(
        _ body: Body, boundary: String, limit: Int, directory: String
    ) async throws(GatewayError) -> EditsForm where Body.Element == ByteBuffer {
        let form = try empty(in: directory)
        let reader = PartReader(form: form)
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in reader.header(name, value) }
        parser.onBody = { buffer in reader.body(&buffer) }
        parser.onPartComplete = { reader.complete() }
        var total = 0
        do {
            for try await chunk in body {
                total += chunk.readableBytes
                if total > limit { throw GatewayError.tooLarge(limit: limit) }
                // Fed in slices, so that bytes held by the parser without a
                // callback (a header being read) are seen before they pile up.
                var rest = chunk
                while rest.readableBytes > 0, let slice = rest.readSlice(length: min(rest.readableBytes, 4096)) {
                    try parser.execute(slice)
                    if let error = reader.failure { throw error }
                    reader.unseen += slice.readableBytes
                    if reader.unseen > headerLimit {
                        throw GatewayError.invalid(
                            nil, "a multipart part's headers (or the bytes before the first part) are longer than \(headerLimit >> 10) KiB",
                            code: "invalid_multipart")
                    }
                }
            }
            try reader.flush()
            if let error = reader.failure { throw error }
        } catch let error as GatewayError {
            reader.close()
            form.remove()
            throw error
        } catch let slow as ClientTooSlow {
            reader.close()
            form.remove()
            throw GatewayError(
                status: 408, message: "\(slow); the connection is closed (send the request at once, or faster)",
                type: "invalid_request_error", code: "client_too_slow")
        } catch {
            reader.close()
            form.remove()
            throw GatewayError.invalid(
                nil, "the body is not valid multipart/form-data (\(error)); send the fields and files as the OpenAI SDK does",
                code: "invalid_multipart")
        }
        reader.close()
        if reader.partOpen {
            form.remove()
            throw GatewayError.invalid(nil, "the multipart body ends inside a part: it was cut short", code: "invalid_multipart")
        }
        return form
    }

    /// Follows the parser's callbacks for one part after another.
    private final class PartReader {
        let form: EditsForm
        var headers: [String: String] = [:]
        var handle: FileHandle?
        var current: FilePart?
        var text: [UInt8] = []
        /// A file part's bytes not written yet.
        var pending: [UInt8] = []
        var started = false
        var partOpen = false
        var failure: GatewayError?
        /// Bytes given to the parser since its last callback.
        var unseen = 0
        var parts = 0
        var headerCount = 0
        var textTotal = 0

        init(form: EditsForm) { self.form = form }

        func header(_ name: String, _ value: String) {
            unseen = 0
            headerCount += 1
            if headerCount > EditsForm.maxPartHeaders, failure == nil {
                failure = .invalid(nil, "a multipart part has more than \(EditsForm.maxPartHeaders) headers", code: "invalid_multipart")
            }
            headers[name.lowercased()] = value
            partOpen = true
        }

        func body(_ buffer: inout ByteBuffer) {
            unseen = 0
            partOpen = true
            if !started { start() }
            guard failure == nil else { return }
            if handle != nil {
                pending.append(contentsOf: buffer.readableBytesView)
                current?.byteCount += buffer.readableBytes
                if pending.count >= EditsForm.writeSize { write() }
            } else {
                text.append(contentsOf: buffer.readableBytesView)
                textTotal += buffer.readableBytes
                if text.count > EditsForm.fieldLimit {
                    failure = .invalid(fieldName, "\(fieldName ?? "a field") is longer than \(EditsForm.fieldLimit >> 10) KiB")
                } else if textTotal > EditsForm.textLimit {
                    failure = .invalid(fieldName, "the text fields together are longer than \(EditsForm.textLimit >> 20) MiB")
                }
            }
        }

        /// Writes what a file part gathered.
        private func write() {
            guard let handle, !pending.isEmpty else { return }
            do {
                try handle.write(contentsOf: pending)
                pending.removeAll(keepingCapacity: true)
            } catch {
                failure = GatewayError(status: 500, message: "cannot store the upload: \(error)", type: "server_error")
            }
        }

        /// Writes what is gathered; throws what failed.
        func flush() throws(GatewayError) {
            write()
            if let failure { throw failure }
        }

        func complete() {
            unseen = 0
            if !started { start() }
            if let current {
                write()
                try? handle?.close()
                handle = nil
                form.files.append(current)
            } else if let name = fieldName {
                form.fields[name] = String(decoding: text, as: UTF8.self)
            }
            current = nil
            text = []
            headers = [:]
            headerCount = 0
            started = false
            partOpen = false
        }

        func close() { try? handle?.close() }

        /// The part's `name`, from its Content-Disposition.
        var fieldName: String? { Self.parameter("name", in: headers["content-disposition"]) }

        private func start() {
            started = true
            parts += 1
            guard parts <= EditsForm.maxParts else {
                failure = .invalid(nil, "the body has more than \(EditsForm.maxParts) parts", code: "invalid_multipart")
                return
            }
            let disposition = headers["content-disposition"]
            let filename = Self.parameter("filename", in: disposition)
            guard let name = fieldName else {
                failure = .invalid(nil, "a multipart part has no name in its Content-Disposition", code: "invalid_multipart")
                return
            }
            // Files: anything sent with a filename, and the image fields however sent.
            guard filename != nil || ["image", "image[]", "mask"].contains(name) else { return }
            let path = form.folder + "/part-\(form.files.count)"
            guard let opened = try? PrivateFile.createNew(path) else {
                failure = GatewayError(status: 500, message: "cannot store the upload", type: "server_error")
                return
            }
            handle = opened
            current = FilePart(field: name, filename: filename, path: path, byteCount: 0)
        }

        /// A parameter of a header value such as `form-data; name="image[]"; filename="a.png"`.
        static func parameter(_ key: String, in value: String?) -> String? {
            guard let value else { return nil }
            for piece in value.split(separator: ";").dropFirst() {
                let pair = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2, pair[0].lowercased() == key else { continue }
                var text = pair[1]
                if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
                return text.replacingOccurrences(of: "\\\"", with: "\"")
            }
            return nil
        }
    }
}
