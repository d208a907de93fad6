import Foundation
internal import CVips
internal import CVipsShims

extension ImageProcessor {
    /// The photographic negative of an image (each colour channel 255 - v;
    /// alpha kept), resized with `resize` when given, and encoded. An
    /// unmistakable stand-in for an edit: `qie emulate --effect negative`
    /// answers with it, so a test can tell which pixels came from the
    /// endpoint (a mask, a restore) and which from the input.
    public static func negative(
        data: Data, resize: ResizeOptions?, encode: EncodeOptions, limits: ImageLimits = .default
    ) throws(ImagingError) -> PreparedImage {
        try encode.checked()
        let (bytes, info) = try checkedBytes(data, limits: limits)
        let (image, geometry) = try render(bytes, info: info, resize: resize)
        let keepAlpha: Int32 = image.hasAlpha ? 1 : 0
        let negative = try image.apply("making the negative") { qie_vips_negate($0, $1, keepAlpha) }
        let encoded = try encodeImage(negative, options: encode)
        return PreparedImage(data: encoded, format: encode.format, size: negative.size, source: info, geometry: geometry)
    }
}
