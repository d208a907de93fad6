import Foundation
internal import CVips
internal import CVipsShims

/// A decoded image: upright (EXIF orientation applied), 8-bit sRGB with or
/// without alpha, first frame only. Pixels are computed on first use.
///
/// Not `Sendable`: use an image on one task or thread at a time.
public final class Image {
    let handle: VipsImageHandle
    /// The header of the input it was decoded from, when there was one.
    public let info: ImageInfo?

    init(handle: VipsImageHandle, info: ImageInfo?) {
        self.handle = handle
        self.info = info
    }

    /// Decodes a file after checking its header against `limits`.
    public static func decode(file path: String, limits: ImageLimits = .default) throws(ImagingError) -> Image {
        do {
            var source = try FileBytes(path: path, prefix: ImageProbe.headerWindow)
            return try decode(&source, limits: limits)
        } catch {
            throw error.attributed(to: path)
        }
    }

    /// Decodes bytes after checking their header against `limits`.
    public static func decode(data: Data, limits: ImageLimits = .default) throws(ImagingError) -> Image {
        var source = FileBytes(data: data)
        return try decode(&source, limits: limits)
    }

    private static func decode(_ source: inout FileBytes, limits: ImageLimits) throws(ImagingError) -> Image {
        let info = try ImageProbe.probe(&source)
        try limits.check(info)
        try source.readAll()
        let (handle, _) = try ImageProcessor.render(source.bytes, info: info, resize: nil)
        // Decode now, so damage is reported here rather than on first pixel access.
        let decoded = try handle.inMemory("decoding the \(info.format.displayName)")
        return Image(handle: decoded, info: info)
    }

    /// An image from interleaved 8-bit pixels: 1 (grey), 2 (grey + alpha),
    /// 3 (RGB) or 4 (RGBA) channels, rows top to bottom.
    public convenience init(pixels: [UInt8], size: PixelSize, channels: Int) throws(ImagingError) {
        try ImagingRuntime.start()
        // libvips copies the pixels, so nothing needs to stay alive afterwards.
        var status: Int32 = 0
        var created: UnsafeMutablePointer<VipsImage>? = nil
        pixels.withUnsafeBufferPointer { buffer in
            status = qie_vips_from_pixels(
                buffer.baseAddress, buffer.count, Int32(size.width), Int32(size.height), Int32(channels), &created)
        }
        guard status == 0, let created else {
            throw VipsFailure.take().error("creating an image from pixels", kind: .invalidOption)
        }
        var handle = VipsImageHandle(taking: created, keeping: nil)
        if channels < 3 {
            handle = try handle.apply("converting to sRGB") { qie_vips_to_srgb($0, $1) }
        }
        self.init(handle: handle, info: nil)
    }

    /// The decoded width and height (upright).
    public var size: PixelSize { handle.size }
    /// The decoded width in pixels (upright).
    public var width: Int { handle.width }
    /// The decoded height in pixels (upright).
    public var height: Int { handle.height }
    /// 3 (RGB) or 4 (RGBA).
    public var channels: Int { handle.bands }
    /// Whether the image has an alpha channel.
    public var hasAlpha: Bool { handle.hasAlpha }

    /// The samples of one pixel: [r, g, b] or [r, g, b, a].
    public func pixel(x: Int, y: Int) throws(ImagingError) -> [UInt8] {
        guard (0..<width).contains(x), (0..<height).contains(y) else {
            throw ImagingError(.invalidOption, "pixel \(x),\(y) is outside the \(size) image")
        }
        var values = [Double](repeating: 0, count: 4)
        var count: Int32 = 0
        let status = withExtendedLifetime(handle) {
            values.withUnsafeMutableBufferPointer {
                qie_vips_getpoint(handle.pointer, Int32(x), Int32(y), $0.baseAddress, 4, &count)
            }
        }
        guard status == 0 else {
            throw VipsFailure.take().error("reading pixel \(x),\(y)", computingPixelsOf: handle.source)
        }
        return values.prefix(Int(count)).map { UInt8(clamping: Int($0.rounded())) }
    }

    /// Every pixel, interleaved (`channels` bytes each), rows top to bottom:
    /// what `init(pixels:size:channels:)` takes.
    public func pixels() throws(ImagingError) -> [UInt8] {
        [UInt8](try handle.pixels("reading the pixels"))
    }

    /// Encodes the image.
    public func encoded(_ options: EncodeOptions) throws(ImagingError) -> Data {
        try options.checked()
        return try ImageProcessor.encodeImage(handle, options: options)
    }

    /// A small copy of the image, as `options` ask: fitted inside their
    /// side, never enlarged, encoded small.
    public func preview(_ options: PreviewOptions) throws(ImagingError) -> Data {
        try options.checked()
        return try ImageProcessor.previewData(handle, options: options)
    }
}
