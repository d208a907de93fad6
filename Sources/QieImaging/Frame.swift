import Foundation
internal import CVips
internal import CVipsShims

extension ImageProcessor {
    /// Prepares an image that is delivered at one size and sent where other
    /// sizes are taken, in one pass: the header is read and checked, the
    /// input decoded once, fitted into `frame` (its size, fit, position and
    /// padding fill) when one is given, then resized as `choose` asks, and
    /// encoded once. Nothing is encoded in between: the frame is computed in
    /// memory, with its alpha where its padding is transparent.
    ///
    /// `choose` gets the input's header and the size of what it resizes: the
    /// frame's output size, or the input's displayed size without a frame.
    /// The returned `geometry` is that resize, from the frame (undoing it
    /// with `restore` gives the frame back); `framing` is how the input was
    /// fitted into the frame; `source` is the input's own header.
    ///
    /// A frame the input already fills exactly changes nothing and is left
    /// out; then, with `reusingUnchanged`, a JPEG needing no change is kept
    /// as it is, metadata removed, as `prepare(file:limits:reusingUnchanged:choosing:)` does.
    public static func prepare(
        file path: String, framedIn frame: ResizeOptions?, limits: ImageLimits = .default, reusingUnchanged: Bool = false,
        choosing choose: (ImageInfo, PixelSize) throws(ImagingError) -> (ResizeOptions?, EncodeOptions)
    ) throws(ImagingError) -> PreparedImage {
        try FileBytes.opening(path) { (source) throws(ImagingError) in
            try prepare(&source, framedIn: frame, limits: limits, reusingUnchanged: reusingUnchanged, choosing: choose)
        }
    }

    /// Like `prepare(file:framedIn:limits:reusingUnchanged:choosing:)`, for
    /// encoded bytes held in memory.
    public static func prepare(
        data: Data, framedIn frame: ResizeOptions?, limits: ImageLimits = .default, reusingUnchanged: Bool = false,
        choosing choose: (ImageInfo, PixelSize) throws(ImagingError) -> (ResizeOptions?, EncodeOptions)
    ) throws(ImagingError) -> PreparedImage {
        var source = FileBytes(data: data)
        return try prepare(&source, framedIn: frame, limits: limits, reusingUnchanged: reusingUnchanged, choosing: choose)
    }

    /// Reads an OpenAI-style mask made for `original` (its header) and
    /// makes its weights for `finish(result:restoring:mode:compositing:encode:limits:)`,
    /// in one pass: its header is checked against `limits` and against the
    /// original (an alpha channel; the original's shape, within 1%: a mask
    /// may be scaled, not distorted) before any pixel is decoded, then it is
    /// decoded once and fitted as the original was: into `frame` (its size,
    /// fit and position; the padding transparent, whatever `frame`'s fill,
    /// since outside the original there is nothing to keep), or to the
    /// original's displayed size without a frame. Only its alpha is kept.
    public static func maskWeights(
        data: Data, for original: ImageInfo, framedIn frame: ResizeOptions?, limits: ImageLimits = .default
    ) throws(ImagingError) -> MaskWeights {
        var source = FileBytes(data: data)
        return try maskWeights(&source, for: original, framedIn: frame, limits: limits)
    }

    /// Like `maskWeights(data:for:framedIn:limits:)`, with the mask read from
    /// a file: its errors name the file.
    public static func maskWeights(
        file path: String, for original: ImageInfo, framedIn frame: ResizeOptions?, limits: ImageLimits = .default
    ) throws(ImagingError) -> MaskWeights {
        try FileBytes.opening(path) { (source) throws(ImagingError) in
            try maskWeights(&source, for: original, framedIn: frame, limits: limits)
        }
    }

    private static func maskWeights(
        _ source: inout FileBytes, for original: ImageInfo, framedIn frame: ResizeOptions?, limits: ImageLimits
    ) throws(ImagingError) -> MaskWeights {
        let info = try ImageProbe.probe(&source)
        try limits.check(info)
        try checkMask(info, for: original)
        var resize = frame ?? ResizeOptions(size: original.displaySize, fit: .fill)
        resize.fill = .colour(.transparent)
        try resize.checked(for: .png)
        try source.readAll()
        let (image, _) = try render(source.bytes, info: info, resize: resize)
        guard image.hasAlpha else { throw noAlphaError() }
        let band = Int32(image.bands - 1)
        let alpha = try image.apply("taking the mask's alpha") { qie_vips_extract_band($0, $1, band) }
        return MaskWeights(size: alpha.size, alpha: try alpha.pixels("decoding the \(info.format.displayName)"))
    }
}

/// A mask's weights for compositing an edited result over its original
/// (`ImageProcessor.maskWeights`): the mask's alpha, decoded once and fitted
/// as the original was, one byte per pixel. 255 keeps the original, 0 takes
/// the edit, and values between blend the two.
public struct MaskWeights: Sendable, Equatable {
    /// The width and height of the weights: the frame's, or the original's as displayed.
    public let size: PixelSize
    /// One byte per pixel, rows top to bottom.
    public let alpha: Data

    init(size: PixelSize, alpha: Data) {
        self.size = size
        self.alpha = alpha
    }

    /// The weights as a one-band image of `size`, scaled when it is not theirs.
    func image(at size: PixelSize) throws(ImagingError) -> VipsImageHandle {
        try ImagingRuntime.start()
        var created: UnsafeMutablePointer<VipsImage>? = nil
        let status = alpha.withUnsafeBytes { buffer in
            qie_vips_from_pixels(
                buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, Int32(self.size.width),
                Int32(self.size.height), 1, &created)
        }
        guard status == 0, let created else { throw VipsFailure.take().error("reading the mask's weights") }
        let weights = VipsImageHandle(taking: created, keeping: nil)
        guard weights.size != size else { return weights }
        let scaled = try ImageProcessor.exactSize(try ImageProcessor.scaled(weights, to: size), size)
        return try scaled.inMemory("scaling the mask")
    }
}

extension ResizeGeometry {
    /// No change at `size`.
    static func identity(_ fit: Fit, _ size: PixelSize) -> ResizeGeometry {
        ResizeGeometry(fit: fit, source: size, resized: size, crop: nil, padding: .none, output: size)
    }

    /// Whether the resize leaves the image as it is: not scaled, cropped or padded.
    var isIdentity: Bool { resized == source && crop == nil && padding.isEmpty }
}

extension VipsImageHandle {
    /// Every pixel computed now and copied out, interleaved, rows top to
    /// bottom. Damage met in the input is reported as such, as `inMemory` does.
    func pixels(_ what: String) throws(ImagingError) -> Data {
        sharingCores()
        var buffer: UnsafeMutableRawPointer? = nil
        var length = 0
        let status = withExtendedLifetime(self) { qie_vips_to_pixels(pointer, &buffer, &length) }
        guard status == 0, let buffer else {
            let failure = VipsFailure.take()
            if let buffer { g_free(buffer) }
            throw failure.error(what, computingPixelsOf: source)
        }
        defer { g_free(buffer) }
        return Data(bytes: buffer, count: length)
    }
}
