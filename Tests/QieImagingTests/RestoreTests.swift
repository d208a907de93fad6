import Foundation
import QieImaging
import Testing

@Suite("Restoring results")
struct RestoreTests {
    /// A 900x600 input: left third red, middle green, right third blue.
    private func stripes() throws -> Data {
        try Make.encoded(900, 600, format: .png) { x, _ in x < 300 ? [255, 0, 0] : x < 600 ? [0, 255, 0] : [0, 0, 255] }
    }

    /// What an endpoint might return: the prepared image at another size.
    private func returned(_ prepared: PreparedImage, at size: PixelSize) throws -> Data {
        try ImageProcessor.prepare(
            data: prepared.data, resize: ResizeOptions(size: size, fit: .fill), encode: EncodeOptions(format: .png)
        ).data
    }

    @Test("Padding is cropped off and the input's exact size comes back, whatever size the result is",
          arguments: [PixelSize(width: 1024, height: 1280), PixelSize(width: 512, height: 640), PixelSize(width: 2048, height: 2560)])
    func exact(_ resultSize: PixelSize) throws {
        let magenta = Colour(red: 255, green: 0, blue: 255)
        let prepared = try ImageProcessor.prepare(
            data: try stripes(), resize: ResizeOptions(size: PixelSize(width: 1024, height: 1280), fill: .colour(magenta)),
            encode: EncodeOptions(format: .png))
        #expect(prepared.geometry.padding.top == 298 && prepared.geometry.padding.bottom == 299)
        let restored = try ImageProcessor.restore(
            data: try returned(prepared, at: resultSize), geometry: prepared.geometry, encode: EncodeOptions(format: .png))
        #expect(restored.size == PixelSize(width: 900, height: 600))
        let image = try Image.decode(data: restored.data)
        #expect(image.size == PixelSize(width: 900, height: 600))
        // No padding colour left on any edge; the stripes where they were.
        for (x, y) in [(450, 2), (450, 597), (2, 300), (897, 300)] {
            let pixel = try image.pixel(x: x, y: y)
            #expect(!(pixel[0] > 200 && pixel[2] > 200), "padding left at \(x),\(y): \(pixel)")
        }
        try expectPixel(image, 150, 300, [255, 0, 0], tolerance: 10)
        try expectPixel(image, 450, 300, [0, 255, 0], tolerance: 10)
        try expectPixel(image, 750, 300, [0, 0, 255], tolerance: 10)
    }

    @Test("aspect keeps the result's scale and restores only the shape")
    func aspect() throws {
        let prepared = try ImageProcessor.prepare(
            data: try stripes(), resize: ResizeOptions(size: PixelSize(width: 1024, height: 1280)),
            encode: EncodeOptions(format: .png))
        let restored = try ImageProcessor.restore(
            data: try returned(prepared, at: PixelSize(width: 2048, height: 2560)), geometry: prepared.geometry,
            mode: .aspect, encode: EncodeOptions(format: .jpeg))
        // The content was 2048x1366 in the result: the same pixels at 3:2.
        #expect(restored.size == PixelSize(width: 2048, height: 1366))
        #expect(try ImageProbe.probe(data: restored.data).format == .jpeg)
    }

    @Test("A cover plan restores the part of the input that was sent")
    func cover() throws {
        let prepared = try ImageProcessor.prepare(
            data: try stripes(), resize: ResizeOptions(size: PixelSize(width: 512, height: 512), fit: .cover),
            encode: EncodeOptions(format: .png))
        #expect(prepared.geometry.sourceRect == PixelRect(x: 150, y: 0, width: 600, height: 600))
        let restored = try ImageProcessor.restore(
            data: prepared.data, geometry: prepared.geometry, encode: EncodeOptions(format: .png))
        #expect(restored.size == PixelSize(width: 600, height: 600))
    }

    @Test("A result that is not an image is refused clearly")
    func notAnImage() throws {
        let geometry = ResizeGeometry.plan(
            source: PixelSize(width: 10, height: 10), target: PixelSize(width: 20, height: 20), fit: .contain)
        let error = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.restore(
                data: Data("<html>502 Bad Gateway</html>".utf8), geometry: geometry, encode: EncodeOptions(format: .png))
        }
        #expect(error?.kind == .refusedFormat)
        #expect(error?.reason.contains("HTML") == true)
    }
}
