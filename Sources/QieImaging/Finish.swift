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
    public static func finish(
        result data: Data, restoring geometry: ResizeGeometry?, mode: RestoreMode = .exact,
        compositing layers: CompositeLayers?, encode: EncodeOptions, limits: ImageLimits = .default
    ) throws(ImagingError) -> PreparedImage {
        try encode.checked()
        // Headers first: nothing is decoded until every input is acceptable.
        let (bytes, info) = try checkedBytes(data, limits: limits)
        let original = try layers?.openOriginal(limits: limits)
        var (image, resize) = try render(bytes, info: info, resize: nil)
        if let geometry { (image, resize) = try restored(image, geometry: geometry, mode: mode) }
        guard let layers, let original else {
            let encoded = try encodeImage(image, options: encode)
            return PreparedImage(data: encoded, format: encode.format, size: image.size, source: info, geometry: resize)
        }
        let flattenOnto = encode.format.supportsAlpha ? nil : encode.flattenBackground
        if let flattenOnto, image.hasAlpha { image = try flatten(image, onto: flattenOnto) }
        // Each input is decoded into memory at the output's size, so damage is
        // found while it is known which input it is in.
        let edited = try image.inMemory("decoding the \(info.format.displayName)")
        let size = edited.size
        let originalImage = try original.framed(layers.frame, to: size, flattenOnto: flattenOnto)
        let weight: VipsImageHandle
        do {
            weight = try layers.mask.image(at: size)
        } catch {
            throw error.concerning("the mask")
        }
        let blended = try blend(originalImage, over: edited, weight: weight)
        let encoded = try encodeImage(blended, options: encode)
        return PreparedImage(data: encoded, format: encode.format, size: size, source: info, geometry: resize)
    }
}
