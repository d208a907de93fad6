import Foundation
internal import CVips
internal import CVipsShims

extension ImageProcessor {
    /// Composites an edited result over the original through an OpenAI-style
    /// mask, for endpoints that edit the whole image: where the mask is fully
    /// transparent (alpha 0) the edited pixels are used, where it is opaque the
    /// original's are kept, and partial alpha blends linearly, per channel:
    /// `a/255 * original + (1 - a/255) * edited`, `a` the mask's alpha.
    ///
    /// The output has the edited image's size. The original and the mask are
    /// each resized to it (Lanczos, shrinking on load where the codec allows),
    /// so a mask made for the original lines up at any scale. Only the mask's
    /// alpha channel counts; its colours are ignored.
    ///
    /// Alpha: the output has an alpha channel when `encode.format` keeps alpha
    /// and the edited image or the original has one. An image without alpha
    /// counts as opaque, and colours are blended premultiplied by their alpha,
    /// so the hidden colour of a transparent pixel never shows. For a format
    /// without alpha (JPEG), both images are flattened onto
    /// `encode.flattenBackground` before they are blended.
    ///
    /// Every header is read and checked against `limits` before any pixel is
    /// decoded. A mask without an alpha channel, or whose aspect ratio differs
    /// from the original's by more than 1%, is refused (`.invalidOption`):
    /// a mask may be scaled, not distorted. The reason of every error about one
    /// of the inputs starts with which it was: "the edited result", "the
    /// original" or "the mask". The returned `source` is the edited image's
    /// header; `geometry` is the identity at its size, as the edited pixels are
    /// not resized.
    public static func composite(
        edited: Data, original: Data, mask: Data, encode: EncodeOptions, limits: ImageLimits = .default
    ) throws(ImagingError) -> PreparedImage {
        try composite(edited: edited, original: nil, mask: mask, encode: encode, limits: limits) {
            FileBytes(data: original)
        }
    }

    /// Like `composite(edited:original:mask:encode:limits:)`, with the original
    /// read from a file: errors about the original also name the file.
    public static func composite(
        edited: Data, originalFile path: String, mask: Data, encode: EncodeOptions, limits: ImageLimits = .default
    ) throws(ImagingError) -> PreparedImage {
        try composite(edited: edited, original: path, mask: mask, encode: encode, limits: limits) {
            () throws(ImagingError) in try FileBytes(path: path, prefix: ImageProbe.headerWindow)
        }
    }

    private static func composite(
        edited editedData: Data, original path: String?, mask maskData: Data, encode: EncodeOptions,
        limits: ImageLimits, openOriginal: () throws(ImagingError) -> FileBytes
    ) throws(ImagingError) -> PreparedImage {
        try encode.checked()
        // Headers first: nothing is decoded until all three are acceptable.
        let edited = try CompositeInput("the edited result", file: nil, limits: limits) { FileBytes(data: editedData) }
        let original = try CompositeInput("the original", file: path, limits: limits, open: openOriginal)
        let mask = try CompositeInput("the mask", file: nil, limits: limits) { FileBytes(data: maskData) }
        try checkMask(mask.info, for: original.info)

        // Each input is decoded into memory at the output's size, so damage is
        // found while it is known which input it is in.
        let flattenOnto = encode.format.supportsAlpha ? nil : encode.flattenBackground
        let editedImage = try edited.decoded(to: nil, flattenOnto: flattenOnto)
        let size = editedImage.size
        let originalImage = try original.decoded(to: size, flattenOnto: flattenOnto)
        let maskImage = try mask.attributing { () throws(ImagingError) in try mask.rendered(to: size, flattenOnto: nil) }
        guard maskImage.hasAlpha else { throw noAlphaError() }
        let alphaBand = Int32(maskImage.bands - 1)
        let weight = try mask.attributing { () throws(ImagingError) -> VipsImageHandle in
            try maskImage.apply("taking the mask's alpha") { qie_vips_extract_band($0, $1, alphaBand) }
                .inMemory(mask.decoding)
        }

        let blended = try blend(originalImage, over: editedImage, weight: weight)
        let data = try encodeImage(blended, options: encode)
        let geometry = ResizeGeometry(fit: .fill, source: size, resized: size, crop: nil, padding: .none, output: size)
        return PreparedImage(data: data, format: encode.format, size: size, source: edited.info, geometry: geometry)
    }

    /// Refuses a mask that cannot say where to edit: one without alpha, or one
    /// whose shape is not the original's (more than 1% apart). From headers
    /// alone, so a caller can check a mask before paying for the edit.
    public static func checkMask(_ mask: ImageInfo, for original: ImageInfo) throws(ImagingError) {
        guard mask.hasAlpha else { throw noAlphaError() }
        let maskSize = mask.displaySize, originalSize = original.displaySize
        let ratio =
            (Double(maskSize.width) / Double(maskSize.height))
            / (Double(originalSize.width) / Double(originalSize.height))
        let difference = max(ratio, 1 / ratio) - 1
        guard difference <= 0.01 else {
            let percent = String(format: "%.1f", difference * 100)
            throw ImagingError(
                .invalidOption,
                "the mask is \(maskSize) but the original is \(originalSize): their aspect ratios differ by \(percent)%; a mask may be scaled, not distorted: make it the original's size")
        }
    }

    static func noAlphaError() -> ImagingError {
        ImagingError(
            .invalidOption,
            "the mask has no alpha channel: transparent pixels mark where to edit; save it as a PNG with transparency")
    }

    /// `weight`/255 of `original` plus the rest of `edited`, per channel. With
    /// alpha in either image, both get alpha and are blended premultiplied.
    /// `original` and `weight` must be in memory; `edited` may be computed
    /// lazily. Without alpha, where the weight is 255 the original is kept
    /// as it is, so only the rectangle holding every weight below 255 is
    /// blended, and only that part of `edited` is computed (a restored
    /// result is resized only where the edit shows): the pixels are those
    /// of blending the whole.
    static func blend(_ original: VipsImageHandle, over edited: VipsImageHandle, weight: VipsImageHandle)
        throws(ImagingError) -> VipsImageHandle
    {
        let withAlpha = original.hasAlpha || edited.hasAlpha
        if !withAlpha, let shown = try weight.bounds(below: 255),
            shown != PixelRect(x: 0, y: 0, width: weight.width, height: weight.height)
        {
            func part(_ image: VipsImageHandle) throws(ImagingError) -> VipsImageHandle {
                try image.apply("taking the part the edit shows in") {
                    qie_vips_extract_area($0, $1, Int32(shown.x), Int32(shown.y), Int32(shown.width), Int32(shown.height))
                }
            }
            let blended = try blended(try part(original), over: try part(edited), weight: try part(weight))
            return try withExtendedLifetime(blended) { () throws(ImagingError) -> VipsImageHandle in
                try original.apply("compositing through the mask") {
                    qie_vips_insert($0, blended.pointer, $1, Int32(shown.x), Int32(shown.y))
                }
            }
        }
        func prepared(_ image: VipsImageHandle) throws(ImagingError) -> VipsImageHandle {
            guard withAlpha else { return image }
            var result = image
            if !result.hasAlpha {
                result = try result.apply("adding alpha") { qie_vips_add_alpha($0, $1) }
            }
            return try result.apply("premultiplying alpha") { qie_vips_premultiply($0, $1) }
        }
        // Where the weight is 255 throughout a region, libvips computes only
        // the original's side of it.
        let blended = try blended(try prepared(original), over: try prepared(edited), weight: weight)
        guard withAlpha else { return blended }
        return try blended.apply("unpremultiplying alpha") { qie_vips_unpremultiply($0, $1) }
    }

    private static func blended(_ first: VipsImageHandle, over second: VipsImageHandle, weight: VipsImageHandle)
        throws(ImagingError) -> VipsImageHandle
    {
        try withExtendedLifetime((first, second, weight)) { () throws(ImagingError) -> VipsImageHandle in
            try VipsImageHandle.make("compositing through the mask", keeping: nil) {
                qie_vips_blend(weight.pointer, first.pointer, second.pointer, $0)
            }
        }
    }
}

extension VipsImageHandle {
    /// The smallest rectangle holding every pixel below `below` of this
    /// one-band 8-bit image (computed first when it is not in memory); nil
    /// when there is none.
    func bounds(below: Int) throws(ImagingError) -> PixelRect? {
        var left: Int32 = 0, top: Int32 = 0, width: Int32 = 0, height: Int32 = 0
        let status = withExtendedLifetime(self) { qie_vips_bounds_below(pointer, Int32(below), &left, &top, &width, &height) }
        guard status == 0 else { throw VipsFailure.take().error("finding where the mask lets the edit show") }
        guard width > 0, height > 0 else { return nil }
        return PixelRect(x: Int(left), y: Int(top), width: Int(width), height: Int(height))
    }
}

/// One of a composite's three inputs, with what its errors call it.
struct CompositeInput {
    /// How errors name it: "the mask".
    let name: String
    /// The file it was read from, when it was.
    let file: String?
    let bytes: PinnedBytes
    let info: ImageInfo

    /// Reads the header, checks it against `limits` and reads the rest.
    init(_ name: String, file: String?, limits: ImageLimits, open: () throws(ImagingError) -> FileBytes)
        throws(ImagingError)
    {
        self.name = name
        self.file = file
        do {
            var source = try open()
            info = try ImageProbe.probe(&source)
            try limits.check(info)
            try source.readAll()
            bytes = source.bytes
        } catch {
            throw Self.naming(error, name, file)
        }
    }

    /// What a failed copy to memory was doing, when the input itself decodes.
    var decoding: String { "decoding the \(info.format.displayName)" }

    /// Runs `body`, its errors naming this input.
    func attributing<T>(_ body: () throws(ImagingError) -> T) throws(ImagingError) -> T {
        do {
            return try body()
        } catch {
            throw Self.naming(error, name, file)
        }
    }

    /// Upright 8-bit sRGB (alpha kept unless flattened onto `flattenOnto`),
    /// resized to `size` when given; pixels computed lazily.
    func rendered(to size: PixelSize?, flattenOnto: Colour?) throws(ImagingError) -> VipsImageHandle {
        let resize = size.map { ResizeOptions(size: $0, fit: .fill) }
        var (image, _) = try ImageProcessor.render(bytes, info: info, resize: resize, flattenOnto: flattenOnto)
        // The loader flattens only some layouts on its own.
        if let flattenOnto, image.hasAlpha {
            image = try ImageProcessor.flatten(image, onto: flattenOnto)
        }
        return image
    }

    /// `rendered(to:flattenOnto:)` with every pixel decoded into memory.
    func decoded(to size: PixelSize?, flattenOnto: Colour?) throws(ImagingError) -> VipsImageHandle {
        try attributing { () throws(ImagingError) -> VipsImageHandle in
            try rendered(to: size, flattenOnto: flattenOnto).inMemory(decoding)
        }
    }

    /// The original as an edit was given it: fitted into `frame` (when
    /// given), then scaled to `size` and flattened onto `flattenOnto` as
    /// `decoded(to:flattenOnto:)` does, every pixel decoded into memory.
    func framed(_ frame: ResizeOptions?, to size: PixelSize, flattenOnto: Colour?) throws(ImagingError) -> VipsImageHandle {
        guard let frame else { return try decoded(to: size, flattenOnto: flattenOnto) }
        return try attributing { () throws(ImagingError) -> VipsImageHandle in
            var (image, _) = try ImageProcessor.render(bytes, info: info, resize: frame)
            if let flattenOnto, image.hasAlpha { image = try ImageProcessor.flatten(image, onto: flattenOnto) }
            image = try ImageProcessor.exactSize(try ImageProcessor.scaled(image, to: size), size)
            return try image.inMemory(decoding)
        }
    }

    private static func naming(_ error: ImagingError, _ name: String, _ file: String?) -> ImagingError {
        let named = error.concerning(name)
        return file.map(named.attributed(to:)) ?? named
    }
}
