import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import QieImaging
import QieProviders

/// The one error type of the client module. Messages name the endpoint and
/// say what it said; they never contain a key.
public struct ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The connection failed or timed out, after every retry.
        case network
        /// The endpoint answered with an error or a failed job.
        case rejected
        /// The answer could not be read, or the result is not an image.
        case badResponse
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }
}

/// When to try again and how long to wait: exponential backoff with full
/// jitter, honouring `Retry-After`; on network errors, 5xx and 429 only.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double

    public init(maxAttempts: Int = 4, baseDelay: Double = 0.5, maxDelay: Double = 20) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    public static func shouldRetry(status: Int) -> Bool { status == 429 || (500...599).contains(status) }

    /// Seconds to wait before attempt `attempt + 1` (attempt counts from 1).
    public func delay(after attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter { return min(maxDelay, max(0, retryAfter)) }
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...ceiling)
    }

    /// `Retry-After` as seconds or an HTTP date.
    public static func parseRetryAfter(_ value: String?, now: Date = Date()) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value) { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSince(now)) }
    }
}

/// Sends edit requests and fetches results over one shared, pooled HTTP client.
public final class EditClient: Sendable {
    private let http: HTTPClient
    public let retry: RetryPolicy
    /// Longest wait for one request's answer.
    public let requestTimeout: TimeAmount
    /// Largest response or result accepted.
    public let maxBodyBytes: Int

    /// - Parameter connectionsPerHost: connections kept open to one endpoint;
    ///   at least the number of requests meant to be in flight at once
    ///   (AsyncHTTPClient's default of 8 would queue the rest).
    public init(
        retry: RetryPolicy = RetryPolicy(), connectTimeout: TimeAmount = .seconds(10),
        requestTimeout: TimeAmount = .seconds(300), maxBodyBytes: Int = 100 * 1024 * 1024,
        connectionsPerHost: Int = 32
    ) {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, connectionsPerHost)
        configuration.timeout = .init(connect: connectTimeout, read: requestTimeout)
        configuration.redirectConfiguration = .follow(max: 5, allowCycles: false)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.maxBodyBytes = maxBodyBytes
    }

    /// Closes the pooled connections. Call once, when done.
    public func shutdown() async throws { try await http.shutdown() }

    /// Sends a built request and reads the endpoint's answer, retrying network
    /// errors, 5xx and 429 (never other 4xx).
    public func send(_ request: BuiltRequest, to profile: ProviderProfile) async throws -> ResponseOutcome {
        let body = try request.body.data()
        var attempt = 0
        while true {
            attempt += 1
            var outgoing = HTTPClientRequest(url: request.url)
            outgoing.method = .POST
            for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
            outgoing.body = .bytes(ByteBuffer(data: body))
            let status: Int
            let data: Data
            let retryAfter: String?
            do {
                let response = try await http.execute(outgoing, timeout: requestTimeout)
                status = Int(response.status.code)
                retryAfter = response.headers.first(name: "Retry-After")
                data = Data(buffer: try await response.body.collect(upTo: maxBodyBytes))
            } catch {
                guard attempt < retry.maxAttempts else {
                    throw ClientError(
                        kind: .network,
                        message: "\(profile.id): no answer from \(host(request.url)) after \(attempt) attempts (\(error)); check the network or the base URL")
                }
                try await Task.sleep(for: .seconds(retry.delay(after: attempt, retryAfter: nil)))
                continue
            }
            if RetryPolicy.shouldRetry(status: status), attempt < retry.maxAttempts {
                let wait = retry.delay(after: attempt, retryAfter: RetryPolicy.parseRetryAfter(retryAfter))
                try await Task.sleep(for: .seconds(wait))
                continue
            }
            do {
                return try ResponseReader.read(data, status: status, from: profile)
            } catch {
                throw ClientError(kind: .badResponse, message: error.message)
            }
        }
    }

    /// The bytes of a result, downloaded at once (some URLs expire) or decoded
    /// from inline data, and checked to be an image.
    public func fetch(_ result: ResultImage, from profile: ProviderProfile) async throws -> Data {
        let data: Data
        switch result {
        case .inline(let bytes):
            data = bytes
        case .url(let url):
            var attempt = 0
            while true {
                attempt += 1
                do {
                    let response = try await http.execute(HTTPClientRequest(url: url), timeout: requestTimeout)
                    let status = Int(response.status.code)
                    let body = Data(buffer: try await response.body.collect(upTo: maxBodyBytes))
                    if RetryPolicy.shouldRetry(status: status), attempt < retry.maxAttempts {
                        try await Task.sleep(for: .seconds(retry.delay(after: attempt, retryAfter: nil)))
                        continue
                    }
                    guard (200..<300).contains(status) else {
                        throw ClientError(
                            kind: .badResponse,
                            message: "\(profile.id): the result at \(url) answered HTTP \(status)\(status == 404 || status == 403 ? " (expired or removed)" : "")")
                    }
                    data = body
                    break
                } catch let error as ClientError {
                    throw error
                } catch {
                    guard attempt < retry.maxAttempts else {
                        throw ClientError(kind: .network, message: "\(profile.id): downloading \(url) failed: \(error)")
                    }
                    try await Task.sleep(for: .seconds(retry.delay(after: attempt, retryAfter: nil)))
                }
            }
        }
        do {
            _ = try ImageProbe.probe(data: data)
        } catch {
            throw ClientError(kind: .badResponse, message: "\(profile.id): the result is not an image: \(error.reason)")
        }
        return data
    }

    private func host(_ url: String) -> String {
        URL(string: url)?.host ?? url
    }
}
