import Foundation
import QieImaging
import Testing

@Suite("Reusing a JPEG that needs no change: its own bytes, without metadata")
struct ReuseTests {
    /// A 320x240 JPEG with an EXIF segment (a fake GPS block) and a comment spliced in after SOI.
    func jpegWithMetadata() throws -> (withMetadata: Data, clean: Data) {
        var pixels: [UInt8] = []
        for y in 0..<240 {
            for x in 0..<320 { pixels += [UInt8(x % 256), UInt8(y), 70] }
        }
        let clean = try Image(pixels: pixels, size: PixelSize(width: 320, height: 240), channels: 3)
            .encoded(EncodeOptions(format: .jpeg, quality: 85))
        func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
            let length = payload.count + 2
            return [0xFF, marker, UInt8(length >> 8), UInt8(length & 0xFF)] + payload
        }
        let exif = segment(0xE1, Array("Exif\0\0GPS 51.5007N 0.1246W secret place".utf8))
        let comment = segment(0xFE, Array("taken at home".utf8))
        var bytes = [UInt8](clean)
        bytes.insert(contentsOf: exif + comment, at: 2)
        return (Data(bytes), clean)
    }

    func prepare(_ data: Data, reusing: Bool, size: PixelSize? = nil) throws -> PreparedImage {
        try ImageProcessor.prepare(data: data, reusingUnchanged: reusing) { info in
            (ResizeOptions(size: size ?? info.displaySize, fit: .contain), EncodeOptions(format: .jpeg, quality: 95))
        }
    }

    @Test("At its own size the JPEG is kept byte for byte but for its EXIF and comment; otherwise it is encoded again")
    func kept() throws {
        let (original, clean) = try jpegWithMetadata()
        let reused = try prepare(original, reusing: true)
        #expect(reused.size == PixelSize(width: 320, height: 240) && reused.format == .jpeg)
        let text = String(decoding: reused.data, as: UTF8.self)
        #expect(!text.contains("GPS") && !text.contains("taken at home"))
        // Only the inserted segments went: everything else is the encoder's own bytes.
        #expect(reused.data == clean)

        let encoded = try prepare(original, reusing: false)
        #expect(encoded.data != reused.data && !String(decoding: encoded.data, as: UTF8.self).contains("GPS"))
        let resized = try prepare(original, reusing: true, size: PixelSize(width: 160, height: 120))
        #expect(resized.size == PixelSize(width: 160, height: 120))
    }

    @Test("A cut-short JPEG is not passed on: it is decoded, and reported as damaged")
    func truncated() throws {
        let (original, _) = try jpegWithMetadata()
        #expect(throws: ImagingError.self) { try prepare(original.prefix(original.count - 400), reusing: true) }
    }

    @Test("Rotated, CMYK or profiled JPEGs are converted, not passed on")
    func converted() throws {
        for name in ["orientation-6.jpg", "cmyk.jpg"] {
            let data = try Fixture.data(name)
            let prepared = try prepare(data, reusing: true)
            #expect(prepared.data != data, "\(name)")
            let info = try ImageProbe.probe(data: prepared.data)
            #expect(info.orientation == 1 && info.colourModel == "ycbcr", "\(name)")
        }
    }
}
