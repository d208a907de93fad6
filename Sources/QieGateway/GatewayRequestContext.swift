import Hummingbird
import NIOCore

/// The gateway's request context: Hummingbird's core context, and the
/// client's connection, so an edit its client no longer waits for can be
/// given up.
public struct GatewayRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The client's connection.
    let channel: any Channel
    /// The id of the gateway key the request came with (`local` without
    /// keys configured), once `GatewayKeyMiddleware` has checked it.
    var keyID = "-"
    /// The edits request's log line, which `RequestLogMiddleware` writes.
    var requestLog: RequestLogBox?

    /// The context of a request that came in on `source`'s channel.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Runs `action` once if the client goes away (closes its connection
    /// or its sending side) before this request's answer is written.
    func whenClientGone(_ action: @escaping @Sendable () -> Void) {
        let channel = self.channel
        channel.eventLoop.execute {
            // The pace handler watches every served connection (a request
            // driven in process, as HummingbirdTesting's router mode does,
            // has no connection to lose).
            try? channel.pipeline.syncOperations.handler(type: ClientPace.self).whenGone(action)
        }
    }
}
