import Foundation

extension ImageProcessor {
    /// Like `prepare(file:limits:choosing:)`, for encoded bytes held in memory:
    /// the resize and the encoding are chosen from the header, read once.
    public static func prepare(
        data: Data, limits: ImageLimits = .default,
        choosing choose: (ImageInfo) throws(ImagingError) -> (ResizeOptions?, EncodeOptions)
    ) throws(ImagingError) -> PreparedImage {
        var source = FileBytes(data: data)
        return try prepare(&source, limits: limits, choosing: choose)
    }
}
