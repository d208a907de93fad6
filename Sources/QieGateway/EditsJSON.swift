import Foundation
import NIOCore
import NIOFoundationCompat
import QiePipeline

/// The JSON form of `POST /v1/images/edits`, as OpenAI's API takes it:
/// `images` (up to 16 objects with an `image_url`: an `https://` address or
/// a `data:` URL) and `mask` (one such object) beside the same fields the
/// multipart form sends, numbers and booleans as JSON values.
///
/// ```json
/// {"model": "runpod", "prompt": "Make it night", "n": 2,
///  "images": [{"image_url": "https://example.com/photo.jpg"},
///             {"image_url": "data:image/png;base64,iVBORw0KGgo..."}]}
/// ```
///
/// Each image becomes a file in the request's upload folder, exactly as a
/// multipart file part does, so both forms are checked by `EditsRequest`
/// alike. Remote images are fetched before anything is reserved or sent,
/// with the checks results get (`ResultChecks`: public addresses only unless
/// allowed, each redirect checked, at most `maxResultBytes`, within the
/// download deadline).
struct EditsJSON: Decodable {
    /// An image given by reference: OpenAI's `{"image_url": ...}` or `{"file_id": ...}`.
    struct Reference: Decodable {
        var imageURL: String?
        var fileID: String?
        /// Keys other than those two, refused by name.
        var unknown: [String] = []

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            for key in container.allKeys {
                switch key.stringValue {
                case "image_url": imageURL = try container.decodeIfPresent(String.self, forKey: key)
                case "file_id": fileID = try container.decodeIfPresent(String.self, forKey: key)
                default: unknown.append(key.stringValue)
                }
            }
        }
    }

    /// Any key.
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// The text fields, numbers and booleans written as the multipart form writes them.
    var fields: [String: String] = [:]
    var images: [Reference]?
    var mask: Reference?
    /// A field whose value is of a type it cannot have, with what it should be.
    var mistyped: (field: String, expected: String)?

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            let name = key.stringValue
            switch name {
            case "images":
                do { images = try container.decodeIfPresent([Reference].self, forKey: key) } catch {
                    mistyped = mistyped ?? (name, "a list of objects with an image_url")
                }
            case "mask":
                do { mask = try container.decodeIfPresent(Reference.self, forKey: key) } catch {
                    mistyped = mistyped ?? (name, "an object with an image_url")
                }
            default:
                if try container.decodeNil(forKey: key) { continue }
                if let text = try? container.decode(String.self, forKey: key) {
                    fields[name] = text
                } else if let number = try? container.decode(Int.self, forKey: key) {
                    fields[name] = String(number)
                } else if let flag = try? container.decode(Bool.self, forKey: key) {
                    fields[name] = String(flag)
                } else if let number = try? container.decode(Double.self, forKey: key) {
                    fields[name] = String(number)
                } else {
                    mistyped = mistyped ?? (name, "a string, a number or a boolean")
                }
            }
        }
    }

    /// Whether a content type is JSON (`application/json`, with or without parameters).
    static func isJSON(contentType: String?) -> Bool {
        guard let type = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() else {
            return false
        }
        return type == "application/json"
    }

    /// The most images the JSON form takes, as OpenAI's.
    static let maxImages = 16

    /// Reads a JSON body (at most `limit` bytes), and makes the form it
    /// stands for under `directory`: its images fetched (remote ones with
    /// `fetch`) or decoded into files.
    static func read<Body: AsyncSequence>(
        _ body: Body, limit: Int, directory: String, fetch: @escaping @Sendable (String, String) async throws -> Data
    ) async throws(GatewayError) -> EditsForm where Body.Element == ByteBuffer {
        var received = ByteBuffer()
        do {
            for try await chunk in body {
                guard received.readableBytes + chunk.readableBytes <= limit else { throw GatewayError.tooLarge(limit: limit) }
                var chunk = chunk
                received.writeBuffer(&chunk)
            }
        } catch let error as GatewayError {
            throw error
        } catch let slow as ClientTooSlow {
            throw GatewayError(
                status: 408, message: "\(slow); the connection is closed (send the request at once, or faster)",
                type: "invalid_request_error", code: "client_too_slow")
        } catch {
            throw GatewayError.invalid(nil, "the body could not be read: \(error)", code: "invalid_body")
        }
        let parsed: EditsJSON
        do {
            parsed = try JSONDecoder().decode(EditsJSON.self, from: received)
        } catch {
            throw GatewayError.invalid(
                nil, "the body is not a JSON object (\(Self.describe(error))); send the fields as one JSON object, or as multipart/form-data",
                code: "invalid_json")
        }
        if let (field, expected) = parsed.mistyped {
            throw GatewayError.invalid(field, "\(field) must be \(expected)", code: "invalid_type")
        }
        // Every reference is checked before anything is fetched.
        let images = parsed.images ?? []
        guard images.count <= maxImages else {
            throw GatewayError.invalid("images", "at most \(maxImages) images per request; got \(images.count)")
        }
        var named: [(param: String, field: String, address: String)] = []
        for (index, reference) in images.enumerated() {
            named.append(("images[\(index)]", "image[]", try address(of: reference, param: "images[\(index)]")))
        }
        if let mask = parsed.mask { named.append(("mask", "mask", try address(of: mask, param: "mask"))) }

        let form = try EditsForm.empty(in: directory)
        do {
            let files = try await withThrowingTaskGroup(of: (Int, EditsForm.FilePart).self) { group in
                for (index, item) in named.enumerated() {
                    let path = form.folder + "/\(index)"
                    group.addTask {
                        let data = try await Self.bytes(of: item.address, param: item.param, fetch: fetch)
                        do {
                            try data.write(to: URL(fileURLWithPath: path), options: .withoutOverwriting)
                        } catch {
                            throw GatewayError(status: 500, message: "cannot store the upload: \(error.localizedDescription)", type: "server_error")
                        }
                        return (index, EditsForm.FilePart(field: item.field, filename: nil, path: path, byteCount: data.count))
                    }
                }
                var files: [(Int, EditsForm.FilePart)] = []
                for try await file in group { files.append(file) }
                return files.sorted { $0.0 < $1.0 }.map(\.1)
            }
            form.files = files
        } catch {
            form.remove()
            throw error as? GatewayError ?? GatewayError.invalid(nil, "\(error)", code: "invalid_image_url")
        }
        form.fields = parsed.fields
        form.imageParam = "images"
        return form
    }

    /// The address an image reference names, or why it is refused.
    private static func address(of reference: Reference, param: String) throws(GatewayError) -> String {
        if let key = reference.unknown.sorted().first {
            throw .invalid("\(param).\(key)", "Unknown parameter: '\(param).\(key)'.", code: "unknown_parameter")
        }
        if reference.fileID != nil {
            throw .invalid(
                "\(param).file_id",
                "\(param).file_id cannot be honoured: this gateway has no Files API; give the image as image_url (an https URL or a data URL)")
        }
        guard let address = reference.imageURL?.trimmingCharacters(in: .whitespaces), !address.isEmpty else {
            throw .invalid("\(param).image_url", "\(param) needs an image_url (an https URL or a data URL)", code: "missing_required_parameter")
        }
        return address
    }

    /// The image's bytes: a data URL decoded, an http(s) address fetched.
    private static func bytes(
        of address: String, param: String, fetch: @Sendable (String, String) async throws -> Data
    ) async throws -> Data {
        if address.lowercased().hasPrefix("data:") {
            guard let decoded = DataURI.decode(address) else {
                throw GatewayError.invalid(
                    "\(param).image_url", "\(param).image_url is not a base64 data URL (data:image/png;base64,...)", code: "invalid_image_url")
            }
            return Data(decoded.bytes)
        }
        let scheme = URL(string: address)?.scheme?.lowercased()
        guard scheme == "https" || scheme == "http" else {
            throw GatewayError.invalid(
                "\(param).image_url", "\(param).image_url must be an https URL or a data URL; got \(ResultChecks.shown(address))",
                code: "invalid_image_url")
        }
        do {
            return try await fetch(address, param)
        } catch let error as ClientError {
            // The hint names the operator's setting; the client is told what is wrong.
            throw GatewayError.invalid("\(param).image_url", error.message, code: "invalid_image_url")
        }
    }

    /// A decoding error in a few words.
    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): context.debugDescription
        case DecodingError.typeMismatch(_, let context): context.debugDescription
        default: "\(error)"
        }
    }
}
