import Dispatch

/// Standard output and error for command-line front ends: unbuffered writes,
/// terminal detection, and Ctrl-C as an event rather than the end of the process.
public enum Terminal {
    /// Whether `descriptor` (1 for standard output, 2 for standard error) is a terminal.
    public static func isTerminal(_ descriptor: Int32) -> Bool { Platform.isTerminal(descriptor) }

    /// Writes `text` whole to `descriptor` (retrying short writes); errors are ignored.
    public static func write(_ descriptor: Int32, _ text: String) {
        var text = text
        text.withUTF8 { try? Platform.write(descriptor, UnsafeRawBufferPointer($0)) }
    }

    /// Calls `handler` on each Ctrl-C instead of ending the process, until
    /// the returned source is cancelled.
    public static func onInterrupt(_ handler: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
        Platform.ignoreInterruptSignal()
        let source = DispatchSource.makeSignalSource(signal: Platform.interruptSignal, queue: .global())
        source.setEventHandler(handler: handler)
        source.resume()
        return source
    }

    /// Ends the process at once with `status`, without unwinding (a second Ctrl-C).
    public static func exitNow(_ status: Int32) -> Never { Platform.exitNow(status) }
}
