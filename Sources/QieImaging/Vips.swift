import Foundation
import Synchronization
internal import CVips
internal import CVipsShims

/// Process-wide libvips state.
public enum ImagingRuntime {
    /// libvips starts with one worker thread per image pipeline: qie runs one
    /// image per core, which measures faster than sharing cores inside each
    /// pipeline. `setThreadsPerImage` changes it.
    private static let started: Bool = qie_vips_start("qie", 1) == 0
    /// Set once libvips is running: per-thread clean-up must not touch it before.
    private static let running = Atomic<Bool>(false)

    /// Worker threads libvips gives each image pipeline.
    public static func setThreadsPerImage(_ count: Int) throws(ImagingError) {
        try start()
        vips_concurrency_set(Int32(max(1, count)))
    }

    /// Starts libvips (once). Throws when libvips cannot start.
    static func start() throws(ImagingError) {
        guard started else {
            throw ImagingError(.processingFailed, "libvips failed to start: \(takeVipsError())")
        }
        running.store(true, ordering: .releasing)
    }

    /// Caps glibc's malloc arenas for the whole process. glibc gives every
    /// thread an arena and keeps freed image buffers in each, so a batch on many
    /// threads holds far more memory than it uses; two arenas measured ~30%
    /// lower peak memory at the same speed. Call early, before threads start.
    /// No effect outside glibc.
    public static func limitMallocArenas(_ count: Int) {
        _ = qie_limit_malloc_arenas(Int32(max(1, count)))
    }

    /// Frees libvips' per-thread buffers. Call at the end of a job on a thread
    /// that may not run another one soon.
    public static func endOfJobOnThisThread() {
        guard running.load(ordering: .acquiring) else { return }
        vips_thread_shutdown()
    }

    /// Runs blocking image work on a Dispatch thread, so async callers do not
    /// hold a cooperative-pool thread during a decode or encode, and frees the
    /// thread's libvips buffers afterwards.
    public static func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try work() })
                endOfJobOnThisThread()
            }
        }
    }

    /// The libvips version this build runs against, for `--version`.
    public static var libvipsVersion: String {
        String(cString: vips_version_string())
    }
}

/// Reads and clears libvips' error buffer (atomically: concurrent jobs do not
/// receive each other's messages once taken).
func takeVipsError() -> String {
    guard let copy = vips_error_buffer_copy() else { return "unknown libvips error" }
    defer { g_free(copy) }
    // Drop the saver's echo of the loader's failure; keep each line once.
    var lines: [String] = []
    for line in String(cString: copy).split(separator: "\n") {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.isEmpty || text.contains("unable to write to") || lines.contains(text) { continue }
        lines.append(text)
    }
    return lines.isEmpty ? "unknown libvips error" : lines.joined(separator: "; ")
}

/// Owns one reference to a libvips image and drops it when released.
final class VipsImageHandle {
    let pointer: UnsafeMutablePointer<VipsImage>
    /// The encoded bytes this image (or one it derives from) reads lazily.
    private let source: PinnedBytes?

    init(taking pointer: UnsafeMutablePointer<VipsImage>, keeping source: PinnedBytes?) {
        self.pointer = pointer
        self.source = source
    }

    deinit {
        g_object_unref(UnsafeMutableRawPointer(pointer))
    }

    var width: Int { Int(vips_image_get_width(pointer)) }
    var height: Int { Int(vips_image_get_height(pointer)) }
    var bands: Int { Int(vips_image_get_bands(pointer)) }
    var hasAlpha: Bool { vips_image_hasalpha(pointer) != 0 }
    var size: PixelSize { PixelSize(width: width, height: height) }
    var isEightBitSRGB: Bool {
        vips_image_get_format(pointer) == VIPS_FORMAT_UCHAR
            && (vips_image_get_interpretation(pointer) == VIPS_INTERPRETATION_sRGB
                || vips_image_get_interpretation(pointer) == VIPS_INTERPRETATION_RGB)
            && (bands == 3 || bands == 4)
    }
    var pageCount: Int { Int(qie_vips_page_count(pointer)) }
    var hasICCProfile: Bool { qie_vips_has_icc(pointer) != 0 }
    var orientation: Int {
        var value: Int32 = 1
        if vips_image_get_typeof(pointer, "orientation") != 0,
            vips_image_get_int(pointer, "orientation", &value) == 0, (1...8).contains(value)
        {
            return Int(value)
        }
        return 1
    }
    var bitsPerSample: Int {
        switch vips_image_get_format(pointer) {
        case VIPS_FORMAT_UCHAR, VIPS_FORMAT_CHAR: 8
        case VIPS_FORMAT_USHORT, VIPS_FORMAT_SHORT: 16
        case VIPS_FORMAT_UINT, VIPS_FORMAT_INT, VIPS_FORMAT_FLOAT: 32
        default: 64
        }
    }
    var interpretationName: String {
        switch vips_image_get_interpretation(pointer) {
        case VIPS_INTERPRETATION_CMYK: "cmyk"
        case VIPS_INTERPRETATION_B_W, VIPS_INTERPRETATION_GREY16: hasAlpha ? "grey+alpha" : "grey"
        default: hasAlpha ? "rgba" : "rgb"
        }
    }

    /// Runs one libvips operation producing an image; failure becomes an
    /// `ImagingError` of `kind` with libvips' message.
    static func make(
        _ what: String, kind: ImagingError.Kind = .processingFailed, keeping source: PinnedBytes?,
        _ body: (UnsafeMutablePointer<UnsafeMutablePointer<VipsImage>?>) -> Int32
    ) throws(ImagingError) -> VipsImageHandle {
        var out: UnsafeMutablePointer<VipsImage>? = nil
        let status = body(&out)
        guard status == 0, let image = out else {
            if let image = out { g_object_unref(UnsafeMutableRawPointer(image)) }
            throw ImagingError(kind, "\(what) failed: \(takeVipsError())")
        }
        return VipsImageHandle(taking: image, keeping: source)
    }

    /// Applies `operation` to this image.
    func apply(
        _ what: String, _ operation: (UnsafeMutablePointer<VipsImage>, UnsafeMutablePointer<UnsafeMutablePointer<VipsImage>?>) -> Int32
    ) throws(ImagingError) -> VipsImageHandle {
        try withExtendedLifetime(self) { () throws(ImagingError) -> VipsImageHandle in
            try VipsImageHandle.make(what, keeping: source) { out in operation(pointer, out) }
        }
    }
}
