import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

/// A small document a host publishes for anyone to read (such as the public
/// keys its callbacks are signed with), fetched without a key.
public enum PublishedDocument {
    /// The body of `url` when it answers 200 within ten seconds and 1 MiB.
    public static func fetch(_ url: String) async throws -> Data {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        } catch {
            throw ClientError(kind: .network, message: "\(url) could not be fetched (\(EditClient.describe(error)))")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw ClientError(kind: .rejected, message: "\(url) answered HTTP \(response.status.code)", status: Int(response.status.code))
        }
        return Data(buffer: body)
    }
}
