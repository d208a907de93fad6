import Foundation
import QieFiles
internal import CCodecShims
internal import CVips
internal import CVipsShims

/// Reads image headers: format, size, orientation, channels, depth, alpha and
/// animation, without decoding pixels.
public enum ImageProbe {
    /// How much of a file a probe reads first. JPEG, PNG and WebP headers fit in
    /// it almost always (EXIF thumbnails and ICC profiles included); when they
    /// do not, the probe reads the whole file.
    static let headerWindow = 64 * 1024

    /// Probes a file. Reads only the start of JPEG, PNG and WebP files.
    public static func probe(file path: String) throws(ImagingError) -> ImageInfo {
        do {
            var source = try FileBytes(path: path, prefix: headerWindow)
            return try probe(&source)
        } catch {
            throw error.attributed(to: path)
        }
    }

    /// Probes an in-memory image.
    public static func probe(data: Data) throws(ImagingError) -> ImageInfo {
        var source = FileBytes(data: data)
        return try probe(&source)
    }

    static func probe(_ source: inout FileBytes) throws(ImagingError) -> ImageInfo {
        let format = try identify(source)
        switch format {
        case .jpeg, .png, .webp:
            while true {
                var header = qie_image_header()
                let base = source.bytes.base.assumingMemoryBound(to: UInt8.self)
                let count = source.bytes.count
                let status: qie_probe_status =
                    switch format {
                    case .jpeg: qie_probe_jpeg(base, count, &header)
                    case .png: qie_probe_png(base, count, &header)
                    default: qie_probe_webp(base, count, &header)
                    }
                switch status {
                case QIE_PROBE_OK:
                    return ImageInfo(header: header, format: format, byteCount: source.totalSize)
                case QIE_PROBE_NEED_MORE_DATA where !source.isComplete:
                    try source.readAll()
                case QIE_PROBE_NEED_MORE_DATA:
                    throw ImagingError(
                        .corrupt,
                        "truncated \(format.displayName): the file ends inside its header (\(source.totalSize) bytes); re-export or download it again",
                        stage: .load)
                default:
                    throw ImagingError(
                        .corrupt, "corrupt \(format.displayName): \(cString(in: header.error)); re-export or download it again",
                        stage: .load)
                }
            }
        case .gif, .avif, .heic, .tiff:
            try source.readAll()
            return try probeWithVips(source.bytes, format: format)
        }
    }

    /// Sniffs the content and refuses what is not an accepted image.
    static func identify(_ source: FileBytes) throws(ImagingError) -> ImageFormat {
        if source.totalSize == 0 {
            throw ImagingError(.empty, "the file is empty (0 bytes); nothing to decode")
        }
        let sniffed = FormatSniffer.sniff(source.bytes.prefix(FormatSniffer.window))
        switch sniffed {
        case .image(let format):
            return format
        case .refused(let name, let advice):
            throw ImagingError(.refusedFormat, "\(name) is not accepted: \(advice)")
        case .unknown:
            let excerpt = FormatSniffer.excerpt(source.bytes.prefix(64))
            throw ImagingError(
                .notAnImage,
                "not an image: the content is not \(ImageFormat.acceptedList) (it starts with \(excerpt)); whatever its name says, qie reads the content"
            )
        }
    }

    /// GIF, AVIF, HEIC and TIFF: libvips reads the header lazily; no pixels are
    /// decoded here.
    private static func probeWithVips(_ data: PinnedBytes, format: ImageFormat) throws(ImagingError) -> ImageInfo {
        try ImagingRuntime.start()
        let source = EncodedSource(bytes: data, format: format)
        let image = try VipsImageHandle.make("reading the \(format.displayName) header", keeping: source) {
            out in qie_vips_open_buffer(data.base, data.count, source.failOn, 1, out)
        }
        let pages = image.pageCount
        return ImageInfo(
            format: format, width: image.width, height: image.height, orientation: image.orientation,
            channels: image.bands, bitDepth: image.bitsPerSample, hasAlpha: image.hasAlpha,
            isAnimated: format == .gif && pages > 1, frameCount: pages,
            colourModel: image.interpretationName, hasICCProfile: image.hasICCProfile, byteCount: data.count)
    }
}

extension ImageInfo {
    fileprivate init(header: qie_image_header, format: ImageFormat, byteCount: Int) {
        let model: String =
            switch header.colour_model {
            case Int32(QIE_COLOUR_GREY.rawValue): "grey"
            case Int32(QIE_COLOUR_GREY_ALPHA.rawValue): "grey+alpha"
            case Int32(QIE_COLOUR_RGBA.rawValue): "rgba"
            case Int32(QIE_COLOUR_PALETTE.rawValue): "palette"
            case Int32(QIE_COLOUR_CMYK.rawValue): "cmyk"
            case Int32(QIE_COLOUR_YCCK.rawValue): "ycck"
            case Int32(QIE_COLOUR_YCBCR.rawValue): "ycbcr"
            default: "rgb"
            }
        self.init(
            format: format, width: Int(header.width), height: Int(header.height),
            orientation: Int(header.orientation), channels: Int(header.channels),
            bitDepth: Int(header.bit_depth), hasAlpha: header.has_alpha != 0,
            isAnimated: header.is_animated != 0,
            frameCount: header.frame_count > 0 ? Int(header.frame_count) : nil,
            colourModel: model, hasICCProfile: header.has_icc_profile != 0, byteCount: byteCount)
    }
}

/// Bytes at a fixed address, freed when the last owner lets go. libvips reads
/// lazily from the buffer an image was opened on, so every image handle
/// derived from it keeps it alive.
final class PinnedBytes {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(capacity: Int) {
        base = UnsafeMutableRawPointer.allocate(byteCount: max(1, capacity), alignment: 16)
        count = capacity
    }

    convenience init(copying data: Data) {
        self.init(capacity: data.count)
        data.copyBytes(to: base.assumingMemoryBound(to: UInt8.self), count: data.count)
    }

    private init(base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    deinit {
        base.deallocate()
    }

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// A view of the first `length` bytes, valid while this object lives.
    func prefix(_ length: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: min(length, count))
    }

    /// A copy of the first `length` bytes, after a short read.
    func truncated(to length: Int) -> PinnedBytes {
        let copy = PinnedBytes(capacity: length)
        copy.base.copyMemory(from: base, byteCount: length)
        return copy
    }
}

/// The bytes of an input: a prefix of a file that can grow to the whole file,
/// or a complete buffer.
struct FileBytes {
    private(set) var bytes: PinnedBytes
    let totalSize: Int
    private let path: String?

    var isComplete: Bool { bytes.count >= totalSize }

    init(data: Data) {
        bytes = PinnedBytes(copying: data)
        totalSize = data.count
        path = nil
    }

    /// Opens `path` and reads up to `prefix` bytes (everything when nil).
    init(path: String, prefix: Int?) throws(ImagingError) {
        self.path = path
        // Opening a named pipe must not wait for a writer; the type check
        // below then refuses it.
        let descriptor: Int32
        let status: Platform.Status
        do {
            descriptor = try Platform.openForReading(path)
        } catch {
            throw FileBytes.openError(error)
        }
        defer { Platform.close(descriptor) }
        do {
            status = try Platform.status(of: descriptor)
        } catch {
            throw FileBytes.openError(error)
        }
        if status.kind == .directory {
            throw ImagingError(.unreadable, "is a folder, not a file")
        }
        guard status.kind == .regular else {
            throw ImagingError(.unreadable, "is not a regular file (device, pipe or socket); copy the image to a file")
        }
        let size = Int(status.size)
        totalSize = size
        let wanted = prefix.map { min($0, size) } ?? size
        bytes = try FileBytes.read(descriptor, count: wanted)
    }

    /// `body` run on the file at `path`, opened with its header window read;
    /// errors, the file's own and `body`'s, name the file.
    static func opening<T>(_ path: String, _ body: (inout FileBytes) throws(ImagingError) -> T) throws(ImagingError) -> T {
        do {
            var source = try FileBytes(path: path, prefix: ImageProbe.headerWindow)
            return try body(&source)
        } catch {
            throw error.attributed(to: path)
        }
    }

    mutating func readAll() throws(ImagingError) {
        guard !isComplete, let path else { return }
        self = try FileBytes(path: path, prefix: nil)
    }

    private static func read(_ descriptor: Int32, count: Int) throws(ImagingError) -> PinnedBytes {
        let bytes = PinnedBytes(capacity: count)
        var filled = 0
        while filled < count {
            let n: Int
            do {
                n = try Platform.read(descriptor, into: UnsafeMutableRawBufferPointer(start: bytes.base + filled, count: count - filled))
            } catch {
                throw openError(error)
            }
            if n == 0 { break }
            filled += n
        }
        return filled < count ? bytes.truncated(to: filled) : bytes
    }

    static func openError(_ error: PlatformError) -> ImagingError {
        if error.isMissing { return ImagingError(.unreadable, "no such file") }
        if error.isDenied { return ImagingError(.unreadable, "permission denied (\(error.text)); check the file's permissions") }
        return ImagingError(.unreadable, "cannot be read: \(error.text)")
    }
}
