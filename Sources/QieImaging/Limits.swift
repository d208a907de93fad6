extension ImageLimits {
    /// Throws `.tooLarge` when the header's dimensions are over the limits.
    public func check(_ info: ImageInfo) throws(ImagingError) {
        let size = "\(info.width)x\(info.height)"
        if info.width > maxSide || info.height > maxSide {
            throw ImagingError(
                .tooLarge,
                "\(info.format.displayName) header states \(size) pixels, over the \(maxSide)-pixel limit per side; refused before decoding",
                hint: "raise the limit with \(setting: .maxSide) only if you trust this file")
        }
        if info.megapixels > maxMegapixels {
            throw ImagingError(
                .tooLarge,
                "\(info.format.displayName) header states \(size) pixels (\(formatMegapixels(info.megapixels)) MP), over the \(formatMegapixels(maxMegapixels))-megapixel limit; refused before decoding",
                hint: "raise the limit with \(setting: .maxMegapixels) only if you trust this file")
        }
    }
}
