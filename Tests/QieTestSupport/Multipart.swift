import Foundation

/// A multipart/form-data body, as the OpenAI SDK builds one.
public struct Multipart: Sendable {
    /// The boundary between parts.
    public let boundary = "qie-test-\(UUID().uuidString)"
    private(set) var data = Data()

    /// An empty form.
    public init() {}

    /// Adds a text field.
    public mutating func field(_ name: String, _ value: String) {
        data.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8))
    }

    /// Adds a file part.
    public mutating func file(_ name: String, _ bytes: Data, filename: String = "image.png", type: String = "application/octet-stream") {
        data.append(
            Data(
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: \(type)\r\n\r\n"
                    .utf8))
        data.append(bytes)
        data.append(Data("\r\n".utf8))
    }

    /// The whole body, closing boundary included.
    public var bytes: Data {
        var all = data
        all.append(Data("--\(boundary)--\r\n".utf8))
        return all
    }

    /// The request's content type.
    public var contentType: String { "multipart/form-data; boundary=\(boundary)" }
}

/// A form built by `build`.
public func multipart(_ build: (inout Multipart) -> Void) -> Multipart {
    var form = Multipart()
    build(&form)
    return form
}
