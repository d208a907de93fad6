import Synchronization

/// How many times images were decoded and encoded by the work done inside
/// `counting(_:)`: every time a loader reads an image's pixels (one per
/// image read, however it is resized afterwards) and every time an image is
/// encoded. Headers read without decoding, and bytes passed on as they are,
/// count for nothing.
///
/// It counts the work of the task that calls `counting(_:)`, of its child
/// tasks, and of the blocking work they hand to `ImagingRuntime.offload(_:)`;
/// work started elsewhere (another task, a server's connections) is not
/// counted. Meant for tests and diagnostics: reading it is cheap.
public final class ImagingCount: Sendable {
    private let decoded = Atomic<Int>(0)
    private let encoded = Atomic<Int>(0)

    /// A count at zero.
    public init() {}

    /// Images decoded so far.
    public var decodes: Int { decoded.load(ordering: .relaxed) }
    /// Images encoded so far.
    public var encodes: Int { encoded.load(ordering: .relaxed) }

    /// Runs `body`, counting the image work it does (and its child tasks do) here.
    public func counting<T>(_ body: () async throws -> T) async rethrows -> T {
        try await Self.$current.withValue(self, operation: body)
    }

    /// Runs `body` with `count` as the current count (nil: none), on any
    /// thread: how offloaded work keeps the count of the task that sent it.
    static func with<T>(_ count: ImagingCount?, _ body: () throws -> T) rethrows -> T {
        try $current.withValue(count, operation: body)
    }

    /// The count image work adds to, if any.
    @TaskLocal static var current: ImagingCount?

    func countDecode() { decoded.add(1, ordering: .relaxed) }
    func countEncode() { encoded.add(1, ordering: .relaxed) }
}
