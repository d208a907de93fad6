import Foundation
internal import CVips
internal import CVipsShims

/// What an edited result is composited with through its mask: the original
/// it stands for, fitted into the same frame as it was before the edit, and
/// the mask's weights.
public struct CompositeLayers: Sendable {
    enum Original: Sendable {
        case data(Data)
        case file(String)
    }

    let original: Original
    /// The frame the original was fitted into before the edit (its size,
    /// fit, position and padding fill); nil: the original as it is.
    public var frame: ResizeOptions?
    /// The mask's weights (`ImageProcessor.maskWeights`).
    public var mask: MaskWeights

    /// The original as encoded bytes in memory.
    public init(original: Data, framedIn frame: ResizeOptions?, mask: MaskWeights) {
        self.original = .data(original)
        self.frame = frame
        self.mask = mask
    }

    /// The original read from a file: errors about it name the file.
    public init(originalFile path: String, framedIn frame: ResizeOptions?, mask: MaskWeights) {
        self.original = .file(path)
        self.frame = frame
        self.mask = mask
    }

    /// The original's header, read and checked against `limits`, and its bytes.
    func openOriginal(limits: ImageLimits) throws(ImagingError) -> CompositeInput {
        switch original {
        case .data(let data):
            return try CompositeInput("the original", file: nil, limits: limits) { FileBytes(data: data) }
        case .file(let path):
            return try CompositeInput("the original", file: path, limits: limits) { () throws(ImagingError) in
                try FileBytes(path: path, prefix: ImageProbe.headerWindow)
            }
        }
    }
}

extension ImageProcessor {
    /// Finishes an edited result in one pass: its header is read and checked
    /// against `limits`, it is decoded once, `geometry` is undone when given
    /// (as `restore(data:geometry:mode:encode:limits:)` undoes it), it is
    /// composited through the mask over its original when `layers` are
    /// given, and it is encoded once as `encode` asks.
    ///
    /// The composite is the one `composite(edited:original:mask:encode:limits:)`
    /// makes, on the result as restored: the original is decoded once,
    /// fitted into the layers' frame as it was before the edit, and scaled
    /// with the mask's weights to the restored result's size; nothing is
    /// encoded in between. Errors about the original start with "the
    /// original", as there; errors about the result do not, as in `restore`.
    /// The returned `geometry` is the restore's (the identity at the result's
    /// size without one).
    ///
    /// With `preview`, a small copy of the finished image is made beside it
    /// (`PreparedImage.preview`) from the same pixels: they are kept as they
    /// are encoded, then shrunk and encoded again small; nothing is decoded
    /// twice. A preview that cannot be made leaves `preview` nil and the
    /// result as it is.
    public static func finish(
        result data: Data, restoring geometry: ResizeGeometry?, mode: RestoreMode = .exact,
        compositing layers: CompositeLayers?, encode: EncodeOptions, limits: ImageLimits = .default,
        preview: PreviewOptions? = nil
    ) throws(ImagingError) -> PreparedImage {
        try encode.checked()
        try preview?.checked()
        // Headers first: nothing is decoded until every input is acceptable.
        let (bytes, info) = try checkedBytes(data, limits: limits)
        let original = try layers?.openOriginal(limits: limits)
        let (rendered, identity) = try render(bytes, info: info, resize: nil)
        guard let layers, let original else {
            var (image, resize) = (rendered, identity)
            if let geometry { (image, resize) = try restored(image, geometry: geometry, mode: mode) }
            let (encoded, small) = try encodeImage(image, options: encode, preview: preview)
            return PreparedImage(
                data: encoded, format: encode.format, size: image.size, source: info, geometry: resize, preview: small)
        }
        let flattenOnto = encode.format.supportsAlpha ? nil : encode.flattenBackground
        // The result is decoded into memory whole (damage is found while it
        // is known which input it is in), and restored from there only
        // where the mask lets the edit show (`blend`); meanwhile the
        // original is decoded on another thread at the restored size (known
        // before any pixel is), each decoder on its own core.
        let size = geometry.map { restorePlan(resultSize: rendered.size, geometry: $0, mode: mode).target } ?? rendered.size
        let frame = layers.frame
        let framing = ConcurrentImageWork { () throws(ImagingError) in
            try original.framed(frame, to: size, flattenOnto: flattenOnto)
        }
        let decoded = Result { () throws(ImagingError) in try rendered.inMemory("decoding the \(info.format.displayName)") }
        // Both have ended before either error is thrown; the result's first.
        let framed = Result { () throws(ImagingError) in try framing.value() }
        var (edited, resize) = (try decoded.get(), identity)
        let originalImage = try framed.get()
        if let geometry { (edited, resize) = try restored(edited, geometry: geometry, mode: mode) }
        if let flattenOnto, edited.hasAlpha { edited = try flatten(edited, onto: flattenOnto) }
        let weight: VipsImageHandle
        do {
            weight = try layers.mask.image(at: size)
        } catch {
            throw error.concerning("the mask")
        }
        let blended = try blend(originalImage, over: edited, weight: weight)
        let (encoded, small) = try encodeImage(blended, options: encode, preview: preview)
        return PreparedImage(data: encoded, format: encode.format, size: size, source: info, geometry: resize, preview: small)
    }
}

extension ImageProcessor {
    /// Checks that `data` decodes, every byte of it, within `limits`, for a
    /// caller that keeps the bytes as they are; with `preview`, makes a
    /// preview from what it decoded (nil without one, or when it cannot be
    /// made). JPEG and WebP are then decoded at the largest fraction of
    /// their size that still covers the preview, as `prepare` decodes them
    /// for a smaller size: their decoders still read every byte of the
    /// compressed data, so damage is found as it is at full size, and the
    /// check with its preview takes about what a full decode alone does.
    /// Other formats are decoded whole.
    public static func verify(data: Data, limits: ImageLimits = .default, preview: PreviewOptions? = nil)
        throws(ImagingError) -> Data?
    {
        try preview?.checked()
        let (bytes, info) = try checkedBytes(data, limits: limits)
        let what = "decoding the \(info.format.displayName)"
        guard let preview else {
            let (image, _) = try render(bytes, info: info, resize: nil)
            _ = try image.inMemory(what)
            return nil
        }
        let flattenOnto = preview.encode.format.supportsAlpha ? nil : preview.encode.flattenBackground
        let resize = ResizeOptions(size: preview.box(for: info.displaySize), fit: .inside)
        let (image, _) = try render(bytes, info: info, resize: resize, flattenOnto: flattenOnto)
        let decoded = try image.inMemory(what)
        return try? encodeImage(decoded, options: preview.encode)
    }
}

extension ImageProcessor {
    /// `image` encoded as `options` ask, and with `preview` a small copy of
    /// it made from the pixels kept as they were encoded (nil when it could
    /// not be made: the image's own encoding is what matters).
    static func encodeImage(_ image: VipsImageHandle, options: EncodeOptions, preview: PreviewOptions?)
        throws(ImagingError) -> (Data, Data?)
    {
        guard let preview, let (passing, copy) = try? image.teed() else {
            return (try encodeImage(image, options: options), nil)
        }
        let encoded = try encodeImage(passing, options: options)
        return (encoded, try? previewData(copy, options: preview))
    }

    /// A preview of `image`, pixels already decoded (in memory): fitted
    /// inside the preview's box, never enlarged, encoded as it asks. An
    /// 8-bit image without alpha is averaged straight to the preview's size
    /// in one pass over memory (a box filter, as a JPEG decoded at a
    /// fraction of its size is): 2-3 ms for a 1.3 MP result, where
    /// libvips' Lanczos reduce over the whole image costs more than
    /// decoding it. Others take libvips' resize, premultiplied.
    static func previewData(_ image: VipsImageHandle, options: PreviewOptions) throws(ImagingError) -> Data {
        var image = image
        if image.hasAlpha, !options.encode.format.supportsAlpha {
            image = try flatten(image, onto: options.encode.flattenBackground)
        }
        let box = options.box(for: image.size)
        let fitted = ResizeGeometry.plan(source: image.size, target: box, fit: .inside).resized
        if fitted != image.size, !image.hasAlpha, image.isPlainUchar, image.bands <= 4,
            image.width / fitted.width <= 64, image.height / fitted.height <= 64
        {
            image = try image.apply("shrinking") { qie_vips_box_shrink($0, $1, Int32(fitted.width), Int32(fitted.height)) }
        } else {
            (image, _) = try reshaped(image, resize: ResizeOptions(size: fitted, fit: .fill))
        }
        return try encodeImage(image, options: options.encode)
    }
}
