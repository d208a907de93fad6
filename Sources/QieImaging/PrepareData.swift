import Foundation

extension ImageProcessor {
    /// Like `prepare(file:limits:choosing:)`, for encoded bytes held in memory:
    /// the resize and the encoding are chosen from the header, read once.
    /// `reusingUnchanged` keeps a JPEG that needs no change as it is, as
    /// `prepare(file:limits:reusingUnchanged:choosing:)` does.
    public static func prepare(
        data: Data, limits: ImageLimits = .default, reusingUnchanged: Bool = false,
        choosing choose: (ImageInfo) throws(ImagingError) -> (ResizeOptions?, EncodeOptions)
    ) throws(ImagingError) -> PreparedImage {
        var source = FileBytes(data: data)
        return try prepare(&source, limits: limits, reusingUnchanged: reusingUnchanged, choosing: choose)
    }
}
