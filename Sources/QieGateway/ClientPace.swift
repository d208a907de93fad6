import Foundation
import NIOCore
import NIOHTTPTypes
import QiePipeline

/// How slow a client may be before the gateway hangs up: a connection
/// holds a task, memory and a file descriptor, so one that trickles its
/// request (slowloris) is cut off, as Apache's `mod_reqtimeout` does.
public struct ClientDeadlines: Sendable, Equatable {
    /// Seconds a connection may take to send a request's headers, from
    /// when it opened or its last answer ended (an idle keep-alive
    /// connection is closed after this too).
    public var headerSeconds: TimeInterval = 30
    /// Seconds a body may take before its pace is judged.
    public var bodyGraceSeconds: TimeInterval = 10
    /// The slowest average pace a body may arrive at after the grace,
    /// bytes per second since its headers (1 KiB/s: a 64 MiB upload may
    /// take up to 18 hours; a trickle of a few bytes is cut off).
    public var minimumBodyRate: Double = 1024

    /// The defaults.
    public init() {}
}

/// The error a request's body ends with when its client was too slow.
struct ClientTooSlow: Error, CustomStringConvertible {
    var rate: Double
    var description: String { "the body arrived slower than \(Int(rate)) bytes per second" }
}

/// Watches one connection's pace and closes it when a request's headers
/// or body fall behind `ClientDeadlines`. Sits after the HTTP decoder, so
/// it sees heads, body parts and ends; it checks on a timer of the event
/// loop (every `tick`), reading time from the gateway's clock.
final class ClientPace: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Stage {
        /// Waiting for a request's headers since `since`.
        case headers(since: Date)
        /// Reading a body that started at `since`, `bytes` so far.
        case body(since: Date, bytes: Int)
        /// The request is read; the gateway is answering it.
        case answering
    }

    private let deadlines: ClientDeadlines
    private let clock: any QieClock
    private let tick: TimeAmount
    private var stage: Stage
    private var timer: RepeatedTask?
    /// Whether the client closed its connection or its sending side.
    private var gone = false
    /// What to do if the client goes away before the answer in progress is written.
    private var goneActions: [@Sendable () -> Void] = []

    init(deadlines: ClientDeadlines, clock: any QieClock, tick: TimeAmount = .seconds(1)) {
        self.deadlines = deadlines
        self.clock = clock
        self.tick = tick
        stage = .headers(since: clock.now())
    }

    func handlerAdded(context: ChannelHandlerContext) {
        stage = .headers(since: clock.now())
        // Cancelled when the handler goes or the connection closes, which
        // breaks the cycle between the handler and its timer.
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in
            bound.value.handler.check(bound.value.context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        clientGone()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server allows half-closed connections: a client that went
        // away shows as its input closing, not (yet) as the channel closing.
        if let event = event as? ChannelEvent, event == .inputClosed { clientGone() }
        context.fireUserInboundEventTriggered(event)
    }

    /// Runs `action` (on the event loop) once if the client goes away
    /// before the answer in progress is written; at once if it has gone.
    func whenGone(_ action: @escaping @Sendable () -> Void) {
        if gone { action() } else { goneActions.append(action) }
    }

    private func clientGone() {
        gone = true
        let actions = goneActions
        goneActions = []
        for action in actions { action() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            stage = .body(since: clock.now(), bytes: 0)
        case .body(let buffer):
            if case .body(let since, let bytes) = stage { stage = .body(since: since, bytes: bytes + buffer.readableBytes) }
        case .end:
            stage = .answering
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // The answer is out: the next request's headers are timed from
            // here, and its client's going away concerns it no longer.
            if case .answering = stage { stage = .headers(since: clock.now()) }
            goneActions = []
        }
        context.write(data, promise: promise)
    }

    private func check(_ context: ChannelHandlerContext) {
        let now = clock.now()
        switch stage {
        case .headers(let since):
            if now.timeIntervalSince(since) > deadlines.headerSeconds { context.close(promise: nil) }
        case .body(let since, let bytes):
            let elapsed = now.timeIntervalSince(since)
            guard elapsed > deadlines.bodyGraceSeconds, Double(bytes) < deadlines.minimumBodyRate * elapsed else { return }
            // The request's handler reads the body: it ends with this error,
            // which the gateway answers (and logs) as 408 before the close.
            stage = .answering
            context.fireErrorCaught(ClientTooSlow(rate: deadlines.minimumBodyRate))
            context.close(promise: nil)
        case .answering:
            break
        }
    }
}
