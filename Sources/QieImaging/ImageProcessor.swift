import Foundation
internal import CVips
internal import CVipsShims
internal import CCodecShims

/// An encoded image with what was done to it.
public struct PreparedImage: Sendable {
    /// The encoded bytes.
    public var data: Data
    /// The format `data` is encoded in.
    public var format: OutputFormat
    /// The encoded image's width and height.
    public var size: PixelSize
    /// The input's header.
    public var source: ImageInfo
    /// The resize, crop and padding applied, in displayed (upright) pixels.
    /// For an image fitted into a frame first, the resize of that frame:
    /// undoing it gives the frame back.
    public var geometry: ResizeGeometry
    /// How the input was fitted into the frame asked for before `geometry`
    /// was applied; nil when no frame was asked.
    public var framing: ResizeGeometry? = nil
    /// A small copy of the encoded image, when one was asked
    /// (`finish(result:restoring:mode:compositing:encode:limits:preview:)`)
    /// and could be made.
    public var preview: Data? = nil
}

/// One-shot processing: header check, shrink-on-load decode, normalisation,
/// resize with crop or padding, and encoding.
public enum ImageProcessor {
    /// Reads, checks, normalises, resizes (when `resize` is given) and encodes a file.
    public static func prepare(
        file path: String, resize: ResizeOptions?, encode: EncodeOptions, limits: ImageLimits = .default
    ) throws(ImagingError) -> PreparedImage {
        try prepare(file: path, resize: resize, limits: limits) { _ in encode }
    }

    /// Like `prepare(file:resize:encode:limits:)`, with the encoding chosen from
    /// the input's header (for example to keep the input's format).
    public static func prepare(
        file path: String, resize: ResizeOptions?, limits: ImageLimits = .default,
        encoding: (ImageInfo) throws(ImagingError) -> EncodeOptions
    ) throws(ImagingError) -> PreparedImage {
        try prepare(file: path, limits: limits) { (info) throws(ImagingError) in (resize, try encoding(info)) }
    }

    /// Like `prepare(file:resize:encode:limits:)`, with the resize and the
    /// encoding both chosen from the input's header (for example a size
    /// planned for an endpoint from the input's shape). The header is read once.
    ///
    /// With `reusingUnchanged`, a JPEG that needs no change (JPEG asked, no
    /// resize, upright, 8-bit YCbCr without a colour profile, complete) is
    /// not decoded and encoded again: its own bytes are kept, with their
    /// metadata removed. No generation loss and no encoder time, for callers
    /// that only need an image the receiver accepts (an edit request), not
    /// the quality they asked for.
    public static func prepare(
        file path: String, limits: ImageLimits = .default, reusingUnchanged: Bool = false,
        choosing choose: (ImageInfo) throws(ImagingError) -> (ResizeOptions?, EncodeOptions)
    ) throws(ImagingError) -> PreparedImage {
        try FileBytes.opening(path) { (source) throws(ImagingError) in
            try prepare(&source, limits: limits, reusingUnchanged: reusingUnchanged, choosing: choose)
        }
    }

    /// Reads, checks, normalises, resizes (when `resize` is given) and encodes bytes.
    public static func prepare(
        data: Data, resize: ResizeOptions?, encode: EncodeOptions, limits: ImageLimits = .default
    ) throws(ImagingError) -> PreparedImage {
        var source = FileBytes(data: data)
        return try prepare(&source, limits: limits) { _ in (resize, encode) }
    }

    static func prepare(
        _ source: inout FileBytes, limits: ImageLimits, reusingUnchanged: Bool = false,
        choosing choose: (ImageInfo) throws(ImagingError) -> (ResizeOptions?, EncodeOptions)
    ) throws(ImagingError) -> PreparedImage {
        try prepare(&source, framedIn: nil, limits: limits, reusingUnchanged: reusingUnchanged) {
            (info, _) throws(ImagingError) in try choose(info)
        }
    }

    /// The one pass behind every prepare: the header read and checked, the
    /// input decoded once, fitted into `frame` when given and then resized
    /// as `choose` asks (from the header and the size of what it resizes:
    /// the frame's, or the input's as displayed), encoded once.
    static func prepare(
        _ source: inout FileBytes, framedIn frame: ResizeOptions?, limits: ImageLimits, reusingUnchanged: Bool = false,
        choosing choose: (ImageInfo, PixelSize) throws(ImagingError) -> (ResizeOptions?, EncodeOptions)
    ) throws(ImagingError) -> PreparedImage {
        let info = try ImageProbe.probe(&source)
        let display = info.displaySize
        let framing = frame.map { ResizeGeometry.plan(source: display, target: $0.size, fit: $0.fit, position: $0.position) }
        // A frame the input already fills changes nothing: it is left out.
        let reframes = framing.map { !$0.isIdentity } ?? false
        let (resize, encode) = try choose(info, framing?.output ?? display)
        try encode.checked()
        // The frame is held in memory with its alpha, as a lossless image would keep it.
        try frame?.checked(for: .png)
        try resize?.checked(for: encode.format)
        try limits.check(info)
        try source.readAll()
        if reusingUnchanged, !reframes, info.format == .jpeg, encode.format == .jpeg,
            resize.map({ $0.size == display }) ?? true,
            info.orientation <= 1, info.colourModel == "ycbcr", info.bitDepth == 8, !info.hasICCProfile, !encode.keepICCProfile,
            let kept = MetadataScrub.jpegWithoutMetadata(Data(source.bytes.buffer))
        {
            let geometry = ResizeGeometry.identity(resize?.fit ?? .fill, display)
            return PreparedImage(
                data: kept, format: .jpeg, size: display, source: info, geometry: geometry, framing: framing)
        }
        let flattenOnto = encode.format.supportsAlpha ? nil : encode.flattenBackground
        let image: VipsImageHandle
        let geometry: ResizeGeometry
        if let frame, let framing, reframes {
            // The frame is computed as the input is decoded, and resized for
            // the receiver on the way to the encoder: no pixels are encoded
            // in between.
            var (framed, _) = try render(source.bytes, info: info, resize: frame)
            if let flattenOnto, framed.hasAlpha { framed = try flatten(framed, onto: flattenOnto) }
            if let resize {
                (image, geometry) = try reshaped(framed, resize: resize)
            } else {
                (image, geometry) = (framed, .identity(.fill, framing.output))
            }
        } else {
            (image, geometry) = try render(source.bytes, info: info, resize: resize, flattenOnto: flattenOnto)
        }
        let data = try encodeImage(image, options: encode)
        return PreparedImage(
            data: data, format: encode.format, size: image.size, source: info, geometry: geometry, framing: framing)
    }

    /// Decodes to an upright, 8-bit sRGB (or sRGB + alpha) image, resized and
    /// cropped or padded when `resize` is given. Pixels are computed lazily.
    ///
    /// With `flattenOnto`, alpha is flattened onto that colour before scaling
    /// (for outputs without alpha): the same result as flattening afterwards,
    /// since scaling is linear, but the resize then runs on 8-bit RGB instead of
    /// premultiplied floats.
    static func render(_ bytes: PinnedBytes, info: ImageInfo, resize: ResizeOptions?, flattenOnto: Colour? = nil)
        throws(ImagingError)
        -> (VipsImageHandle, ResizeGeometry)
    {
        try ImagingRuntime.start()
        let display = info.displaySize
        var geometry =
            resize.map { ResizeGeometry.plan(source: display, target: $0.size, fit: $0.fit, position: $0.position) }
            ?? .identity(.fill, display)

        // Shrink-on-load straight to the scaled size, in stored orientation.
        let stored =
            info.isRotatedQuarterTurn
            ? PixelSize(width: geometry.resized.height, height: geometry.resized.width) : geometry.resized
        let source = EncodedSource(bytes: bytes, format: info.format)
        var image = try load(source, info: info, storedSize: stored, flattenOnto: flattenOnto)
        image = try exactSize(image, stored)
        image = try upright(image, orientation: info.orientation)
        image = try importColourProfile(image, info: info)
        image = try eightBitSRGB(image)

        guard let resize else { return (image, geometry) }
        image = try croppedAndPadded(image, geometry: &geometry, resize: resize)
        return (image, geometry)
    }

    /// An upright 8-bit sRGB image (decoded, or computed from one) resized
    /// as `resize` asks, as `render` resizes what it decodes: scaled
    /// (premultiplied when it has alpha), then cropped or padded.
    static func reshaped(_ image: VipsImageHandle, resize: ResizeOptions) throws(ImagingError)
        -> (VipsImageHandle, ResizeGeometry)
    {
        var geometry = ResizeGeometry.plan(source: image.size, target: resize.size, fit: resize.fit, position: resize.position)
        var result = try exactSize(try scaled(image, to: geometry.resized), geometry.resized)
        result = try croppedAndPadded(result, geometry: &geometry, resize: resize)
        return (result, geometry)
    }

    /// `image`, at `geometry.resized`, cropped and padded as `geometry` says;
    /// a content-aware crop is chosen here and written back into `geometry`.
    private static func croppedAndPadded(_ image: VipsImageHandle, geometry: inout ResizeGeometry, resize: ResizeOptions)
        throws(ImagingError) -> VipsImageHandle
    {
        var image = image
        if let crop = geometry.crop {
            if resize.position.isContentAware {
                var left: Int32 = 0, top: Int32 = 0
                let interesting = resize.position == .attention ? VIPS_INTERESTING_ATTENTION : VIPS_INTERESTING_ENTROPY
                image = try image.inMemory("copying for the crop")
                image = try image.apply("choosing the \(resize.position.rawValue) crop") {
                    qie_vips_smartcrop(
                        $0, $1, Int32(crop.width), Int32(crop.height), Int32(interesting.rawValue), &left, &top)
                }
                geometry.crop = PixelRect(x: Int(left), y: Int(top), width: crop.width, height: crop.height)
            } else {
                image = try image.apply("cropping") {
                    qie_vips_extract_area($0, $1, Int32(crop.x), Int32(crop.y), Int32(crop.width), Int32(crop.height))
                }
            }
        }
        if !geometry.padding.isEmpty {
            image = try pad(image, geometry: geometry, fill: resize.fill)
        }
        return image
    }

    static func flatten(_ image: VipsImageHandle, onto colour: Colour) throws(ImagingError)
        -> VipsImageHandle
    {
        let values = [Double(colour.red), Double(colour.green), Double(colour.blue)]
        return try image.apply("flattening alpha") { input, out in
            values.withUnsafeBufferPointer { qie_vips_flatten(input, out, $0.baseAddress, Int32($0.count)) }
        }
    }

    /// Decodes straight to `size` (in stored orientation), shrinking on load
    /// as far as the codec allows while staying at or above the target, as
    /// sharp does: JPEG through libjpeg's scaled IDCT (1/2, 1/4, 1/8), WebP
    /// through libwebp's scaler, then one Lanczos resize for the rest. Other
    /// formats go through libvips' thumbnail pipeline.
    private static func load(
        _ source: EncodedSource, info: ImageInfo, storedSize size: PixelSize, flattenOnto: Colour?
    ) throws(ImagingError) -> VipsImageHandle {
        let bytes = source.bytes, failOn = source.failOn
        let what = "decoding the \(info.format.displayName)"
        ImagingCount.current?.countDecode()
        var loaded: VipsImageHandle
        switch info.format {
        case .jpeg:
            var shrink: Int32 = 1
            for candidate: Int32 in [8, 4, 2] {
                let w = (info.width + Int(candidate) - 1) / Int(candidate)
                let h = (info.height + Int(candidate) - 1) / Int(candidate)
                if w >= size.width && h >= size.height {
                    shrink = candidate
                    break
                }
            }
            loaded = try VipsImageHandle.make(what, keeping: source) {
                qie_vips_jpegload_shrunk(bytes.base, bytes.count, shrink, failOn, $0)
            }
        case .webp where !info.isAnimated:
            let scale = min(1, max(Double(size.width) / Double(info.width), Double(size.height) / Double(info.height)))
            loaded = try VipsImageHandle.make(what, keeping: source) {
                qie_vips_webpload_scaled(bytes.base, bytes.count, scale, failOn, $0)
            }
        case .png where info.bitDepth <= 8 && ["rgb", "rgba", "palette"].contains(info.colourModel):
            // No shrink-on-load for PNG; loading directly lets alpha be flattened first.
            loaded = try VipsImageHandle.make(what, keeping: source) {
                qie_vips_open_buffer(bytes.base, bytes.count, failOn, 1, $0)
            }
        default:
            return try VipsImageHandle.make(what, keeping: source) {
                qie_vips_thumbnail_buffer(
                    bytes.base, bytes.count, Int32(size.width), Int32(size.height), failOn, $0)
            }
        }
        if let flattenOnto, loaded.hasAlpha, loaded.bands == 4 {
            loaded = try flatten(loaded, onto: flattenOnto)
        }
        return try scaled(loaded, to: size)
    }

    /// `image` scaled to about `size` (Lanczos down, bicubic up; libvips
    /// may round a side: `exactSize` settles it), premultiplied when it has
    /// alpha so transparent pixels do not bleed their colour.
    ///
    /// An 8-bit image without alpha enlarged on both sides takes
    /// `enlarged(_:to:)`, the same bicubic several times faster, and one
    /// shrunk at most twice on both sides `shrunk(_:to:atMost:)`, the same
    /// Lanczos 3 (what is left after a JPEG's shrink-on-load always is).
    static func scaled(_ image: VipsImageHandle, to size: PixelSize) throws(ImagingError) -> VipsImageHandle {
        guard image.size != size else { return image }
        if let enlarged = try enlarged(image, to: size) { return enlarged }
        // Up to twice smaller, Lanczos 3 on its own; further, libvips
        // shrinks by whole factors (a box average) before its reduce, which
        // costs less than Lanczos over so many taps.
        if let shrunk = try shrunk(image, to: size, atMost: 2) { return shrunk }
        let hscale = Double(size.width) / Double(image.width)
        let vscale = Double(size.height) / Double(image.height)
        if image.hasAlpha {
            var premultiplied = try image.apply("premultiplying alpha") { qie_vips_premultiply($0, $1) }
            premultiplied = try premultiplied.apply("resizing") { qie_vips_resize($0, $1, hscale, vscale) }
            return try premultiplied.apply("unpremultiplying alpha") { qie_vips_unpremultiply($0, $1) }
        }
        return try image.apply("resizing") { qie_vips_resize($0, $1, hscale, vscale) }
    }

    /// The ways `qie_vips_resample` sums a row across, fastest last.
    enum ResamplePass: Int32, CaseIterable {
        case fastest = 0, plain, ssse3, avx2
    }

    /// Makes every resample sum its rows across as `pass` does (false, and
    /// nothing changed, when the CPU lacks it). Each pass computes the same
    /// integers: for tests that check so.
    static func useResamplePass(_ pass: ResamplePass) -> Bool {
        qie_vips_resample_use(pass.rawValue) == 0
    }

    /// `image` shrunk to exactly `size` with Lanczos 3, as libvips' resize
    /// shrinks, computed lazily by `qie_vips_resample` at a fraction of
    /// libvips 8.14's cost (its horizontal reduce is scalar); nil where that
    /// does not apply: a side that enlarges, alpha, more than 8 bits, or a
    /// side more than `factor` (at most 8) times smaller.
    static func shrunk(_ image: VipsImageHandle, to size: PixelSize, atMost factor: Int = 8) throws(ImagingError)
        -> VipsImageHandle?
    {
        let factor = min(factor, 8)
        guard size.width <= image.width, size.height <= image.height, size != image.size, !image.hasAlpha,
            image.isPlainUchar, image.bands <= 4, image.width <= factor * size.width,
            image.height <= factor * size.height
        else { return nil }
        return try image.apply("shrinking") {
            qie_vips_resample($0, $1, Int32(size.width), Int32(size.height), Int32(QIE_KERNEL_LANCZOS3))
        }
    }

    /// `image` enlarged to exactly `size` with libvips' bicubic (the
    /// Catmull-Rom cubic), computed lazily by `qie_vips_resample`; nil where
    /// that does not apply: a side that shrinks, alpha, or more than 8 bits.
    /// libvips 8.14 enlarges through its affine transform, which evaluates
    /// the interpolator pixel by pixel: 90 ms of CPU to take a 1024x768
    /// photo to 1280x960, and a photo padded to an endpoint's size is
    /// enlarged on every edit.
    static func enlarged(_ image: VipsImageHandle, to size: PixelSize) throws(ImagingError) -> VipsImageHandle? {
        guard size.width >= image.width, size.height >= image.height, size != image.size, !image.hasAlpha,
            image.isPlainUchar, image.bands <= 4
        else { return nil }
        return try image.apply("enlarging") {
            qie_vips_resample($0, $1, Int32(size.width), Int32(size.height), Int32(QIE_KERNEL_CUBIC))
        }
    }

    /// CMYK (with its profile, or libvips' fallback CMYK profile) and images
    /// with an embedded ICC profile become sRGB. Done after scaling, on fewer
    /// pixels. A broken profile is ignored rather than failing the image.
    private static func importColourProfile(_ image: VipsImageHandle, info: ImageInfo) throws(ImagingError)
        -> VipsImageHandle
    {
        if qie_vips_is_cmyk(image.pointer) != 0 {
            return try image.apply("converting CMYK to sRGB") { qie_vips_import_to_srgb($0, $1, "cmyk") }
        }
        // libvips' thumbnail imports CMYK itself and leaves an sRGB profile behind.
        guard info.hasICCProfile, image.hasICCProfile, info.colourModel != "cmyk", info.colourModel != "ycck" else {
            return image
        }
        return (try? image.apply("applying the ICC profile") { qie_vips_import_to_srgb($0, $1, nil) }) ?? image
    }

    /// libvips rounds scaled sides itself; trims or extends a stray pixel so the
    /// size is exactly the planned one.
    static func exactSize(_ image: VipsImageHandle, _ size: PixelSize) throws(ImagingError)
        -> VipsImageHandle
    {
        guard image.size != size else { return image }
        var result = image
        if result.width > size.width || result.height > size.height {
            let w = Int32(min(result.width, size.width)), h = Int32(min(result.height, size.height))
            result = try result.apply("trimming") { qie_vips_extract_area($0, $1, 0, 0, w, h) }
        }
        if result.width < size.width || result.height < size.height {
            result = try result.apply("extending") {
                qie_vips_embed(
                    $0, $1, 0, 0, Int32(size.width), Int32(size.height), Int32(VIPS_EXTEND_COPY.rawValue), nil, 0)
            }
        }
        return result
    }

    /// Applies EXIF orientation so the pixels are upright.
    private static func upright(_ image: VipsImageHandle, orientation: Int) throws(ImagingError) -> VipsImageHandle {
        guard orientation != 1 else { return image }
        // Rotation reads the image out of order: hold the (already scaled) pixels in memory.
        var result = try image.inMemory("decoding")
        let horizontal = Int32(VIPS_DIRECTION_HORIZONTAL.rawValue)
        let vertical = Int32(VIPS_DIRECTION_VERTICAL.rawValue)
        func rotate(_ angle: VipsAngle) throws(ImagingError) {
            result = try result.apply("rotating") { qie_vips_rot($0, $1, Int32(angle.rawValue)) }
        }
        func flip(_ direction: Int32) throws(ImagingError) {
            result = try result.apply("flipping") { qie_vips_flip($0, $1, direction) }
        }
        switch orientation {
        case 2: try flip(horizontal)
        case 3: try rotate(VIPS_ANGLE_D180)
        case 4: try flip(vertical)
        case 5:
            try rotate(VIPS_ANGLE_D90)
            try flip(horizontal)
        case 6: try rotate(VIPS_ANGLE_D90)
        case 7:
            try rotate(VIPS_ANGLE_D90)
            try flip(vertical)
        case 8: try rotate(VIPS_ANGLE_D270)
        default: break
        }
        return result
    }

    /// CMYK, 16-bit, grey and palette images become 8-bit sRGB; alpha is kept.
    private static func eightBitSRGB(_ image: VipsImageHandle) throws(ImagingError) -> VipsImageHandle {
        guard !image.isEightBitSRGB else { return image }
        var result = try image.apply("converting to sRGB") { qie_vips_to_srgb($0, $1) }
        if result.bitsPerSample != 8 {
            result = try result.apply("converting to 8 bits") { qie_vips_cast_uchar($0, $1) }
        }
        return result
    }

    private static func pad(_ image: VipsImageHandle, geometry: ResizeGeometry, fill: PaddingFill) throws(ImagingError)
        -> VipsImageHandle
    {
        let output = geometry.output
        let left = Int32(geometry.padding.left), top = Int32(geometry.padding.top)
        let width = Int32(output.width), height = Int32(output.height)
        switch fill {
        case .colour(let colour):
            var content = image
            if !colour.isOpaque && !content.hasAlpha {
                content = try content.apply("adding alpha") { qie_vips_add_alpha($0, $1) }
            }
            var values = [Double(colour.red), Double(colour.green), Double(colour.blue)]
            if content.hasAlpha { values.append(Double(colour.alpha)) }
            return try content.apply("padding") { input, out in
                values.withUnsafeBufferPointer {
                    qie_vips_embed(
                        input, out, left, top, width, height, Int32(VIPS_EXTEND_BACKGROUND.rawValue), $0.baseAddress,
                        Int32($0.count))
                }
            }
        case .edge:
            return try image.apply("padding with edge pixels") {
                qie_vips_embed($0, $1, left, top, width, height, Int32(VIPS_EXTEND_COPY.rawValue), nil, 0)
            }
        case .blur:
            // Background: the content scaled to cover the output, centred, blurred.
            let content = try image.inMemory("copying for the blurred fill")
            let scale = max(Double(output.width) / Double(content.width), Double(output.height) / Double(content.height))
            var background = try content.apply("scaling the blurred fill") { qie_vips_resize($0, $1, scale, scale) }
            background = try exactSize(background, PixelSize(width: max(background.width, output.width), height: max(background.height, output.height)))
            let x = Int32((background.width - output.width) / 2), y = Int32((background.height - output.height) / 2)
            background = try background.apply("cropping the blurred fill") {
                qie_vips_extract_area($0, $1, x, y, width, height)
            }
            let sigma = max(2.0, Double(max(output.width, output.height)) / 40)
            background = try background.apply("blurring the fill") { qie_vips_gaussblur($0, $1, sigma) }
            return try withExtendedLifetime(content) { () throws(ImagingError) -> VipsImageHandle in
                try background.apply("placing the image on its fill") { base, out in
                    content.hasAlpha
                        ? qie_vips_composite_over(base, content.pointer, out, left, top)
                        : qie_vips_insert(base, content.pointer, out, left, top)
                }
            }
        }
    }

    /// Encodes with metadata stripped (or only an sRGB profile kept), flattening
    /// alpha for formats without it. Decoding happens here, so a damaged input
    /// fails here too: it is reported as corrupt (stage `.load`) when the input
    /// does not decode on its own, and as an encoder failure otherwise.
    static func encodeImage(_ image: VipsImageHandle, options: EncodeOptions) throws(ImagingError) -> Data {
        ImagingCount.current?.countEncode()
        var image = image
        if !options.format.supportsAlpha && image.hasAlpha {
            image = try flatten(image, onto: options.flattenBackground)
        }
        let keepICC = options.keepICCProfile
        image = try image.apply("removing metadata") { qie_vips_strip_metadata($0, $1, 0) }
        image.sharingCores()
        let profile: String? = keepICC ? "srgb" : nil
        let quality = Int32(options.effectiveQuality)
        let progressive: Int32 = options.progressive ? 1 : 0
        let lossless: Int32 = options.lossless ? 1 : 0
        var buffer: UnsafeMutableRawPointer? = nil
        var length = 0
        let status: Int32 = withExtendedLifetime(image) {
            switch options.format {
            case .jpeg:
                qie_vips_jpegsave(
                    image.pointer, &buffer, &length, quality, progressive, options.chromaSubsampling ? 1 : 0,
                    options.optimizeCoding ? 1 : 0, profile)
            case .png:
                qie_vips_pngsave(image.pointer, &buffer, &length, Int32(options.compression ?? 6), progressive, profile)
            case .webp:
                qie_vips_webpsave(
                    image.pointer, &buffer, &length, quality, lossless, Int32(options.effort ?? 4), profile)
            case .avif:
                qie_vips_avifsave(image.pointer, &buffer, &length, quality, lossless, Int32(options.effort ?? 4))
            case .gif:
                qie_vips_gifsave(image.pointer, &buffer, &length, Int32(options.effort ?? 7), progressive)
            }
        }
        guard status == 0, let buffer else {
            let failure = VipsFailure.take()
            if let buffer { g_free(buffer) }
            throw failure.error("encoding \(options.format.rawValue)", computingPixelsOf: image.source)
        }
        defer { g_free(buffer) }
        switch options.format {
        case .webp:
            return try webpWithoutMetadata(buffer, length, keepICC: keepICC)
        case .jpeg where keepICC:
            return MetadataScrub.jpegWithoutAPP1(Data(bytes: buffer, count: length))
        default:
            return Data(bytes: buffer, count: length)
        }
    }

    /// libvips 8.14's WebP saver writes a rebuilt EXIF chunk even with `strip`;
    /// remove it (and XMP) so no metadata leaves with the pixels.
    private static func webpWithoutMetadata(_ buffer: UnsafeMutableRawPointer, _ length: Int, keepICC: Bool)
        throws(ImagingError) -> Data
    {
        var stripped: UnsafeMutablePointer<UInt8>? = nil
        var strippedLength = 0
        let status = qie_webp_strip_metadata(
            buffer.assumingMemoryBound(to: UInt8.self), length, keepICC ? 1 : 0, &stripped, &strippedLength)
        guard status == 0, let stripped else {
            throw ImagingError(
                .processingFailed, "encoding webp failed: the encoded file could not be re-read to strip its metadata",
                stage: .save)
        }
        defer { free(stripped) }
        return Data(bytes: stripped, count: strippedLength)
    }
}
