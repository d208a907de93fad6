import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to a port on 127.0.0.1, for tests that send what
/// no HTTP client would: a request cut short, headers a byte at a time, a
/// body that never comes. Reads block on a thread of their own (never on
/// the tests' cooperative pool), each bounded by `guardSeconds` against a
/// server that never answers.
public final class RawConnection: @unchecked Sendable {
    private let socket: Int32

    /// Connects to `127.0.0.1:port`.
    public init(port: Int, guardSeconds: Int = 120) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw RawConnectionError.failed("socket") }
        var timeout = timeval(tv_sec: guardSeconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(socket)
            throw RawConnectionError.failed("connect to port \(port)")
        }
    }

    deinit { close(socket) }

    /// Goes away: shuts the connection in both directions, as a client
    /// that gave up (or died) does.
    public func hangUp() { Glibc.shutdown(socket, Int32(SHUT_RDWR)) }

    /// Sends `text` (or `data`) as it is.
    public func send(_ text: String) throws { try send(Data(text.utf8)) }

    public func send(_ data: Data) throws {
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = Glibc.send(socket, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                guard sent > 0 else { throw RawConnectionError.failed("send") }
                offset += sent
            }
        }
    }

    /// Reads until the server closes the connection (or the guard passes):
    /// everything it sent, and whether it closed.
    public func readToEnd() async -> (data: Data, closed: Bool) {
        await onThread { self.readBlocking(until: { _ in false }) }
    }

    /// Reads until an HTTP response's head has arrived, with as much of its
    /// body as came with it, or the connection closed.
    public func readResponseHead() async -> (data: Data, closed: Bool) {
        await onThread { self.readBlocking(until: { $0.range(of: Data("\r\n\r\n".utf8)) != nil }) }
    }

    /// Reads until `text` has arrived (with what came before it), or the connection closed.
    public func read(until text: String) async -> (data: Data, closed: Bool) {
        await onThread { self.readBlocking(until: { $0.range(of: Data(text.utf8)) != nil }) }
    }

    /// The body of a raw HTTP/1.1 response (`head`, blank line, body) sent
    /// with `Transfer-Encoding: chunked`, its chunks joined: as much as
    /// arrived whole.
    public static func chunkedBody(of response: Data) -> Data {
        guard let split = response.range(of: Data("\r\n\r\n".utf8)) else { return Data() }
        var rest = response[split.upperBound...]
        var body = Data()
        while let line = rest.range(of: Data("\r\n".utf8)),
            let size = Int(String(decoding: rest[..<line.lowerBound], as: UTF8.self), radix: 16), size > 0,
            rest.distance(from: line.upperBound, to: rest.endIndex) >= size + 2
        {
            let start = line.upperBound
            let end = rest.index(start, offsetBy: size)
            body.append(rest[start..<end])
            rest = rest[rest.index(end, offsetBy: 2)...]
        }
        return body
    }

    private func readBlocking(until done: (Data) -> Bool) -> (data: Data, closed: Bool) {
        var all = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !done(all) {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count == 0 { return (all, true) }
            if count < 0 {
                if errno == EINTR { continue }
                // The guard passed, or the connection was reset: closed either way.
                return (all, errno == ECONNRESET)
            }
            all.append(contentsOf: buffer[0..<count])
        }
        return (all, false)
    }

    private func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: work()) }.start()
        }
    }
}

/// A raw connection's step that failed.
public enum RawConnectionError: Error {
    case failed(String)
}
