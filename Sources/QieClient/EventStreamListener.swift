import AsyncHTTPClient
import Foundation
import NIOCore
import QieProviders

/// Parses a server-sent events stream (text/event-stream) fed in arbitrary
/// chunks: `event:` and `data:` fields, comments and blank-line dispatch, with
/// `\n`, `\r\n` or `\r` line ends.
public struct EventStreamParser: Sendable {
    /// One dispatched event.
    public struct Event: Sendable, Equatable {
        /// The `event:` field, or `message` when the event had none.
        public var name: String
        /// The `data:` lines, joined with newlines.
        public var data: String

        /// An event named `name` carrying `data`.
        public init(name: String, data: String) {
            self.name = name
            self.data = data
        }
    }

    private var line: [UInt8] = []
    private var name = ""
    private var data: [String] = []
    private var lastWasCR = false
    /// Longest line kept (a misbehaving stream cannot grow memory without end).
    private let maxLine: Int

    /// A parser that keeps at most `maxLine` bytes of any one line.
    public init(maxLine: Int = 1 << 20) { self.maxLine = maxLine }

    /// Feeds bytes; returns the events they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for byte in bytes {
            if byte == 0x0A, lastWasCR {
                lastWasCR = false
                continue
            }
            lastWasCR = byte == 0x0D
            if byte == 0x0A || byte == 0x0D {
                if let event = endLine() { events.append(event) }
            } else if line.count < maxLine {
                line.append(byte)
            }
        }
        return events
    }

    private mutating func endLine() -> Event? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            defer {
                name = ""
                data = []
            }
            guard !data.isEmpty else { return nil }
            return Event(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"))
        }
        if line.first == UInt8(ascii: ":") { return nil }
        let text = String(decoding: line, as: UTF8.self)
        let field: Substring
        var value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            value = text[text.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        } else {
            field = Substring(text)
            value = ""
        }
        switch field {
        case "event": name = String(value)
        case "data": data.append(String(value))
        default: break
        }
        return nil
    }
}

/// Listens to an endpoint's event stream (Oxen's `/api/events`) and posts a
/// wake-up signal for every job-ended event; the waiting job then polls for
/// its result. Reconnects with backoff (on the client's clock) when the
/// stream drops, so a lost stream only slows jobs down to their polling
/// interval.
public struct EventStreamListener: Sendable {
    /// The endpoint whose stream is read.
    public let profile: ProviderProfile
    /// The GET that opens the stream.
    public let request: BuiltRequest
    /// Where job-ended signals are posted.
    public let signals: JobSignals
    private let client: EditClient

    /// A listener that opens `request` with `client` and posts to `signals`.
    public init(client: EditClient, request: BuiltRequest, profile: ProviderProfile, signals: JobSignals) {
        self.client = client
        self.request = request
        self.profile = profile
        self.signals = signals
    }

    /// Runs until the task is cancelled. `onConnected` is called each time the
    /// stream is open (for tests and progress).
    public func run(onConnected: @escaping @Sendable () -> Void = {}) async {
        guard let spec = profile.events else { return }
        var failures = 0
        while !Task.isCancelled {
            do {
                var outgoing = HTTPClientRequest(url: request.url)
                outgoing.method = .GET
                for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
                let response = try await client.http.execute(outgoing, timeout: .seconds(30))
                if (200..<300).contains(Int(response.status.code)) {
                    failures = 0
                    onConnected()
                    var parser = EventStreamParser()
                    for try await chunk in response.body {
                        for event in parser.feed(chunk.readableBytesView) where spec.completedEvents.contains(event.name) {
                            if let object = try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any],
                                let id = object[spec.idField] as? String
                            {
                                signals.post(id, JobSignal(payload: nil))
                            }
                        }
                    }
                } else {
                    // A refused stream (401, 5xx) is not fatal: jobs are polled.
                    _ = try? await response.body.collect(upTo: 64 * 1024)
                    failures += 1
                }
            } catch {
                failures += 1
            }
            guard !Task.isCancelled else { return }
            let delay = client.retry.delay(after: min(failures, 8), retryAfter: nil) + 0.25
            try? await client.clock.sleep(for: delay)
        }
    }
}
