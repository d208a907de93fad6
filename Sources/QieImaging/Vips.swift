import Foundation
import Synchronization
internal import CVips
internal import CVipsShims

/// Process-wide libvips state.
public enum ImagingRuntime {
    /// libvips starts with one worker thread per image pipeline: qie runs one
    /// image per core, which measures faster than sharing cores inside each
    /// pipeline. Work handed to `offload(_:)` shares out the cores no other
    /// offloaded image is using (an image alone has them all); `setThreadsPerImage`
    /// fixes the count instead. Holds why libvips did not start (nil when
    /// it did), taken on the thread that ran the start-up.
    private static let startFailure: VipsFailure? = qie_vips_start("qie", 1) == 0 ? nil : VipsFailure.take()
    /// Set once libvips is running: per-thread clean-up must not touch it before.
    private static let running = Atomic<Bool>(false)
    /// The count `setThreadsPerImage` fixed; 0: offloaded work shares out the cores.
    private static let fixedThreads = Atomic<Int>(0)
    /// Jobs running in `offload(_:)` now.
    private static let offloaded = Atomic<Int>(0)
    private static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Worker threads libvips gives each image pipeline, offloaded work included.
    public static func setThreadsPerImage(_ count: Int) throws(ImagingError) {
        try start()
        fixedThreads.store(max(1, count), ordering: .relaxed)
        vips_concurrency_set(Int32(max(1, count)))
    }

    /// Worker threads for the pipelines of the work running here, when it
    /// was offloaded: its share of the cores. Nil: libvips' own count.
    @TaskLocal static var threadsHere: Int?

    /// Starts libvips (once). Throws when libvips cannot start.
    static func start() throws(ImagingError) {
        if let startFailure {
            throw ImagingError(.processingFailed, "libvips failed to start: \(startFailure.message)", stage: .start)
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
    /// thread's libvips buffers afterwards. The work counts towards the
    /// caller's `ImagingCount`, if it has one.
    public static func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let count = ImagingCount.current
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                // The cores shared out among the jobs running when this one
                // starts: alone, its pipelines run on every core; among as
                // many jobs as cores, on one each, as before.
                let jobs = offloaded.add(1, ordering: .relaxed).newValue
                let fixed = fixedThreads.load(ordering: .relaxed)
                let threads = fixed > 0 ? nil : max(1, cores / jobs)
                let result = Result { try ImagingCount.with(count) { try $threadsHere.withValue(threads, operation: work) } }
                offloaded.subtract(1, ordering: .relaxed)
                continuation.resume(with: result)
                endOfJobOnThisThread()
            }
        }
    }

    /// How many libvips operation classes free their liborc code under
    /// liborc's mutex (`qie_vips_orc_frees_locked`): three with libvips 8.14
    /// and liborc, none without liborc.
    static var orcFreesLocked: Int {
        _ = try? start()
        return Int(qie_vips_orc_frees_locked())
    }

    /// The libvips version this build runs against, for version listings.
    public static var libvipsVersion: String {
        String(cString: vips_version_string())
    }
}

/// Blocking image work started on another thread now and waited for
/// later, within one call: the two inputs of a composite decode at once,
/// each decoder on its own core. The work keeps the caller's
/// `ImagingCount` and share of the cores.
final class ConcurrentImageWork<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written once by the worker before `done` is signalled, read after.
    private var result: Result<T, ImagingError>?

    init(_ work: @escaping () throws(ImagingError) -> T) {
        let count = ImagingCount.current
        let threads = ImagingRuntime.threadsHere
        let unchecked = UncheckedWork(work: work)
        DispatchQueue.global().async { [self] in
            result = ImagingCount.with(count) {
                ImagingRuntime.$threadsHere.withValue(threads) { Result { () throws(ImagingError) in try unchecked.work() } }
            }
            ImagingRuntime.endOfJobOnThisThread()
            done.signal()
        }
    }

    /// Waits for the work to end: what it made, or its error.
    func value() throws(ImagingError) -> T {
        done.wait()
        return try result!.get()
    }

    private struct UncheckedWork: @unchecked Sendable {
        let work: () throws(ImagingError) -> T
    }
}

/// A failed `qie_vips_*` call, as the shim recorded it on this thread.
struct VipsFailure {
    /// Nil only when the shim recorded nothing, which a failing wrapper never does.
    let stage: ImagingError.Stage?
    /// The libvips operation, such as `pngsave_buffer`.
    let operation: String
    /// libvips' reason, cleaned by the shim.
    let message: String

    /// Takes this thread's record. Call right after the failing call, before
    /// any other `qie_vips_*` call on the thread.
    static func take() -> VipsFailure {
        var record = qie_vips_error()
        guard qie_vips_last_error(&record) == 0 else {
            return VipsFailure(stage: nil, operation: "", message: "unknown libvips error")
        }
        let stage: ImagingError.Stage? =
            switch record.stage {
            case QIE_STAGE_START: .start
            case QIE_STAGE_LOAD: .load
            case QIE_STAGE_TRANSFORM: .transform
            case QIE_STAGE_SAVE: .save
            default: nil
            }
        let operation = cString(in: record.operation)
        let message = cString(in: record.message)
        return VipsFailure(
            stage: stage, operation: operation,
            message: message.isEmpty ? "unknown libvips error in \(operation)" : message)
    }

    /// The error for `what` failing. A loader that fails has found the input
    /// damaged: that is `.corrupt` whatever `kind` the caller expects.
    func error(_ what: String, kind: ImagingError.Kind = .processingFailed) -> ImagingError {
        ImagingError(stage == .load ? .corrupt : kind, "\(what) failed: \(message)", stage: stage)
    }

    /// The error for `what` failing while it computed pixels (a save, a copy to
    /// memory, a pixel read). libvips decodes lazily, so the input may be what
    /// failed: when the image reads `source` and it does not decode on its
    /// own, the input is corrupt and the decoder's message says why.
    func error(_ what: String, computingPixelsOf source: EncodedSource?) -> ImagingError {
        source?.decodeFailure() ?? error(what)
    }
}

/// The text of a fixed-size C `char` array, up to its first NUL.
func cString<Tuple>(in array: Tuple) -> String {
    withUnsafeBytes(of: array) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// Encoded bytes that images read lazily, with what they were found to be.
struct EncodedSource {
    let bytes: PinnedBytes
    let format: ImageFormat
    /// What libvips' loaders stop at: errors, not warnings. The decode check
    /// uses the same, so it fails exactly when the pipeline's loader does.
    let failOn = Int32(VIPS_FAIL_ON_ERROR.rawValue)

    /// Nil when the bytes decode on their own; otherwise the `.corrupt`
    /// error with the decoder's message. Decodes the whole input again, so it
    /// belongs on failure paths only.
    func decodeFailure() -> ImagingError? {
        ImagingCount.current?.countDecode()
        let status = withExtendedLifetime(bytes) { qie_vips_decodes(bytes.base, bytes.count, failOn) }
        guard status != 0 else { return nil }
        let failure = VipsFailure.take()
        return ImagingError(
            .corrupt,
            "corrupt or truncated \(format.displayName): \(failure.message); re-export or download it again",
            stage: .load)
    }
}

/// Owns one reference to a libvips image and drops it when released.
final class VipsImageHandle {
    let pointer: UnsafeMutablePointer<VipsImage>
    /// The encoded bytes this image (or one it derives from) reads lazily.
    let source: EncodedSource?

    init(taking pointer: UnsafeMutablePointer<VipsImage>, keeping source: EncodedSource?) {
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
    /// Uncoded unsigned 8-bit samples.
    var isPlainUchar: Bool {
        vips_image_get_format(pointer) == VIPS_FORMAT_UCHAR && vips_image_get_coding(pointer) == VIPS_CODING_NONE
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

    /// Asks libvips to compute this image's pixels on the work's share of
    /// the cores (`ImagingRuntime.threadsHere`), when it has one. Called on
    /// an image about to be computed (saved, copied to memory), which no
    /// other pipeline shares.
    func sharingCores() {
        guard let threads = ImagingRuntime.threadsHere else { return }
        vips_image_set_int(pointer, "concurrency", Int32(threads))
    }

    /// Runs one `qie_vips_*` call producing an image; failure becomes an
    /// `ImagingError` typed by the stage the shim recorded (a failing loader
    /// means a corrupt input), with libvips' message.
    static func make(
        _ what: String, keeping source: EncodedSource?,
        _ body: (UnsafeMutablePointer<UnsafeMutablePointer<VipsImage>?>) -> Int32
    ) throws(ImagingError) -> VipsImageHandle {
        try make(keeping: source, body) { $0.error(what) }
    }

    private static func make(
        keeping source: EncodedSource?, _ body: (UnsafeMutablePointer<UnsafeMutablePointer<VipsImage>?>) -> Int32,
        failed: (VipsFailure) -> ImagingError
    ) throws(ImagingError) -> VipsImageHandle {
        var out: UnsafeMutablePointer<VipsImage>? = nil
        let status = body(&out)
        guard status == 0, let image = out else {
            // Taken before anything else can run a wrapper on this thread.
            let failure = VipsFailure.take()
            if let image = out { g_object_unref(UnsafeMutableRawPointer(image)) }
            throw failed(failure)
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

    /// This image passed on unchanged, and a copy in memory that fills as
    /// the pass-through is computed: once the pass-through has been computed
    /// in full (encoded), the copy holds every pixel, and a second output
    /// (a preview) is made from it without computing the pipeline again.
    /// Read the copy only after that.
    func teed() throws(ImagingError) -> (passing: VipsImageHandle, copy: VipsImageHandle) {
        try withExtendedLifetime(self) { () throws(ImagingError) -> (VipsImageHandle, VipsImageHandle) in
            var copy: UnsafeMutablePointer<VipsImage>? = nil
            let passing = try VipsImageHandle.make("keeping a copy of the pixels", keeping: source) { qie_vips_tee(pointer, $0, &copy) }
            guard let copy else { throw ImagingError(.processingFailed, "keeping a copy of the pixels failed") }
            return (passing, VipsImageHandle(taking: copy, keeping: nil))
        }
    }

    /// Computes every pixel now and holds them in memory. This is where a lazy
    /// decode meets damage in the input, which is then reported as such.
    func inMemory(_ what: String) throws(ImagingError) -> VipsImageHandle {
        sharingCores()
        return try withExtendedLifetime(self) { () throws(ImagingError) -> VipsImageHandle in
            try VipsImageHandle.make(keeping: source, { qie_vips_copy_memory(pointer, $0) }) {
                $0.error(what, computingPixelsOf: source)
            }
        }
    }
}
