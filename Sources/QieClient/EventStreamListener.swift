import AsyncHTTPClient
import Foundation
import NIOCore
import QieProviders

/// How much of an event stream is held at once. A stream that sends a line
/// or an event over these is closed, and its jobs are polled instead.
///
/// The defaults are far above what a stream of job events needs (Oxen's
/// `media_generation_completed` carries an id, a status and a URL: a few
/// hundred bytes) and far below what would matter to memory (one stream per
/// run): an account's stream also carries events qie does not read, so a
/// cap near the expected size could close it over someone else's event,
/// while a stream that never ends a line or an event cannot make qie hold
/// more than these.
public struct EventStreamLimits: Sendable, Codable, Equatable {
    /// The longest line kept, in bytes (1 MiB): any field, comment or
    /// unknown line, counted until its line end.
    public var maxLineBytes: Int
    /// The largest event kept, in bytes (4 MiB): its `event:` name and
    /// every `data:` line, until the blank line that ends it.
    public var maxEventBytes: Int

    /// Limits of `maxLineBytes` per line and `maxEventBytes` per event.
    public init(maxLineBytes: Int = 1 << 20, maxEventBytes: Int = 4 << 20) {
        self.maxLineBytes = maxLineBytes
        self.maxEventBytes = maxEventBytes
    }
}

/// Parses a server-sent events stream (text/event-stream) fed in arbitrary
/// chunks: `event:` and `data:` fields, comments and blank-line dispatch, with
/// `\n`, `\r\n` or `\r` line ends. It holds at most one line and one event,
/// each within its `EventStreamLimits`.
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

    /// A line or an event over its limit: the stream cannot be read on
    /// without holding more than the limits allow.
    public struct Overflow: Error, Sendable, Equatable {
        /// What went over: a line or an event.
        public enum Part: String, Sendable { case line, event }
        /// What went over.
        public var part: Part
        /// Its limit, in bytes.
        public var limit: Int

        /// `part` went over `limit` bytes.
        public init(part: Part, limit: Int) {
            self.part = part
            self.limit = limit
        }
    }

    private var line: [UInt8] = []
    private var name = ""
    private var data: [String] = []
    /// Bytes of the event being read: its name and data lines.
    private var eventBytes = 0
    private var lastWasCR = false
    private let limits: EventStreamLimits

    /// A parser that holds a line and an event within `limits`.
    public init(limits: EventStreamLimits = EventStreamLimits()) { self.limits = limits }

    /// Feeds bytes; returns the events they complete. Throws `Overflow`
    /// (and should be fed no more) as soon as a line or an event passes its limit.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(Overflow) -> [Event] {
        var events: [Event] = []
        for byte in bytes {
            if byte == 0x0A, lastWasCR {
                lastWasCR = false
                continue
            }
            lastWasCR = byte == 0x0D
            if byte == 0x0A || byte == 0x0D {
                if let event = try endLine() { events.append(event) }
            } else {
                guard line.count < limits.maxLineBytes else { throw Overflow(part: .line, limit: limits.maxLineBytes) }
                line.append(byte)
            }
        }
        return events
    }

    private mutating func endLine() throws(Overflow) -> Event? {
        defer { line.removeAll(keepingCapacity: line.capacity <= 64 * 1024) }
        if line.isEmpty {
            defer {
                name = ""
                data = []
                eventBytes = 0
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
        case "event":
            eventBytes += value.utf8.count - name.utf8.count
            name = String(value)
        case "data":
            eventBytes += value.utf8.count + 1
            data.append(String(value))
        default:
            return nil
        }
        guard eventBytes <= limits.maxEventBytes else { throw Overflow(part: .event, limit: limits.maxEventBytes) }
        return nil
    }
}

/// Listens to an endpoint's event stream (Oxen's `/api/events`) and posts a
/// wake-up signal for every job-ended event; the waiting job then polls for
/// its result. Reconnects with backoff (on the client's clock) when the
/// stream drops, so a lost stream only slows jobs down to their polling
/// interval. A stream that sends a line or an event over `limits` is closed
/// and not opened again: its signals are closed with the reason, and every
/// job waiting on them is polled from then on, as if no stream had been
/// asked for (each such job carries the reason among its warnings).
public struct EventStreamListener: Sendable {
    /// The endpoint whose stream is read.
    public let profile: ProviderProfile
    /// The GET that opens the stream.
    public let request: BuiltRequest
    /// Where job-ended signals are posted.
    public let signals: JobSignals
    /// The longest line and the largest event read.
    public let limits: EventStreamLimits
    private let client: EditClient

    /// A listener that opens `request` with `client` and posts to `signals`,
    /// reading lines and events within `limits`.
    public init(
        client: EditClient, request: BuiltRequest, profile: ProviderProfile, signals: JobSignals,
        limits: EventStreamLimits = EventStreamLimits()
    ) {
        self.client = client
        self.request = request
        self.profile = profile
        self.signals = signals
        self.limits = limits
    }

    /// Runs until the task is cancelled, or until the stream goes over its
    /// limits (then `signals` are closed with the error's message).
    /// `onConnected` is called each time the stream is open (for tests and progress).
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
                    var parser = EventStreamParser(limits: limits)
                    // Leaving this loop drops the body, which closes the connection.
                    for try await chunk in response.body {
                        for event in try parser.feed(chunk.readableBytesView) where spec.completedEvents.contains(event.name) {
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
            } catch let overflow as EventStreamParser.Overflow {
                signals.close(reason: Self.message(overflow, endpoint: profile.id))
                return
            } catch {
                failures += 1
            }
            guard !Task.isCancelled else { return }
            let delay = client.retry.delay(after: min(failures, 8), retryAfter: nil) + 0.25
            try? await client.clock.sleep(for: delay)
        }
    }

    /// What a stream over its limit is told as: the cap, its setting, and
    /// what happens instead.
    static func message(_ overflow: EventStreamParser.Overflow, endpoint: String) -> String {
        let (what, setting) = overflow.part == .line ? ("a line", Setting.maxEventLineBytes) : ("an event", .maxEventBytes)
        return "\(endpoint): the event stream sent \(what) over the \(overflow.limit)-byte limit (\(setting.name)); it was closed and jobs are polled instead"
    }
}
