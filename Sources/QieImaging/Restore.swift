import Foundation
internal import CVips
internal import CVipsShims

/// How an edited result is brought back to the input's shape.
public enum RestoreMode: String, Sendable, Codable, CaseIterable {
    /// Crop the padding off and resize to the input's own width and height.
    case exact
    /// Crop the padding off and keep the result's scale: only the input's
    /// aspect ratio is restored.
    case aspect
}

extension ImageProcessor {
    /// Undoes `geometry` on an edited result of any size: the padding added
    /// before the request is cropped off (scaled to the result's size), then
    /// the content is resized back to the input's dimensions (`.exact`) or to
    /// its aspect ratio at the result's scale (`.aspect`). For a `cover` plan
    /// the part of the input that was cropped away cannot come back: the
    /// result is restored to the part the request showed.
    public static func restore(
        data: Data, geometry: ResizeGeometry, mode: RestoreMode = .exact, encode: EncodeOptions,
        limits: ImageLimits = .default
    ) throws(ImagingError) -> PreparedImage {
        try encode.checked()
        let (bytes, info) = try checkedBytes(data, limits: limits)
        let (image, _) = try render(bytes, info: info, resize: nil)
        let (restored, resize) = try restored(image, geometry: geometry, mode: mode)
        let encoded = try encodeImage(restored, options: encode)
        return PreparedImage(data: encoded, format: encode.format, size: restored.size, source: info, geometry: resize)
    }

    /// `image`, an edited result decoded, with `geometry` undone as
    /// `restore(data:geometry:mode:encode:limits:)` undoes it; and that
    /// restore's own geometry: the final resize, from the content cropped
    /// out of the result.
    static func restored(_ image: VipsImageHandle, geometry: ResizeGeometry, mode: RestoreMode) throws(ImagingError)
        -> (VipsImageHandle, ResizeGeometry)
    {
        var image = image
        let resultSize = image.size
        let (content, target) = restorePlan(resultSize: resultSize, geometry: geometry, mode: mode)
        if content.size != resultSize || content.x != 0 || content.y != 0 {
            image = try image.apply("cropping the padding") {
                qie_vips_extract_area($0, $1, Int32(content.x), Int32(content.y), Int32(content.width), Int32(content.height))
            }
        }
        if image.size != target {
            if let enlarged = try ImageProcessor.enlarged(image, to: target) {
                image = enlarged
            } else if let shrunk = try ImageProcessor.shrunk(image, to: target) {
                image = shrunk
            } else {
                let hscale = Double(target.width) / Double(image.width)
                let vscale = Double(target.height) / Double(image.height)
                image = try image.apply("resizing back") { qie_vips_resize($0, $1, hscale, vscale) }
                image = try exactSize(image, target)
            }
        }
        let resize = ResizeGeometry(
            fit: .fill, source: content.size, resized: target, crop: nil, padding: .none, output: target)
        return (image, resize)
    }
}

extension ImageProcessor {
    /// Where a result of `resultSize` holds the input's content (the
    /// padding cropped off), and the size that content is restored to:
    /// known before any pixel is.
    static func restorePlan(resultSize: PixelSize, geometry: ResizeGeometry, mode: RestoreMode)
        -> (content: PixelRect, target: PixelSize)
    {
        let content = geometry.contentRect(inResultOf: resultSize)
        let shown = geometry.sourceRect.size
        switch mode {
        case .exact:
            return (content, shown)
        case .aspect:
            // The input's shape at the content's own scale (same pixel count).
            let scale = (Double(content.width * content.height) / Double(shown.width * shown.height)).squareRoot()
            let target = PixelSize(
                width: max(1, Int((Double(shown.width) * scale).rounded())),
                height: max(1, Int((Double(shown.height) * scale).rounded())))
            return (content, target)
        }
    }

    /// Bytes in memory, their header read and checked against `limits`, ready to render.
    static func checkedBytes(_ data: Data, limits: ImageLimits) throws(ImagingError) -> (PinnedBytes, ImageInfo) {
        var source = FileBytes(data: data)
        let info = try ImageProbe.probe(&source)
        try limits.check(info)
        try source.readAll()
        return (source.bytes, info)
    }
}
