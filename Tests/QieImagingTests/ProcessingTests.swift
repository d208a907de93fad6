import Foundation
import QieImaging
import Testing

private let red: [UInt8] = [255, 0, 0]
private let green: [UInt8] = [0, 255, 0]
private let blue: [UInt8] = [0, 0, 255]
private let yellow: [UInt8] = [255, 255, 0]

@Suite("Decoding and normalising")
struct NormaliseTests {
    @Test("Every EXIF orientation comes out upright, 48x32, quadrants in place", arguments: 1...8)
    func upright(_ n: Int) throws {
        let image = try Image.decode(file: Fixture.path("orientation-\(n).jpg"))
        #expect(image.size == PixelSize(width: 48, height: 32))
        try expectPixel(image, 6, 4, red, tolerance: 40)
        try expectPixel(image, 42, 4, green, tolerance: 40)
        try expectPixel(image, 6, 28, blue, tolerance: 40)
        try expectPixel(image, 42, 28, yellow, tolerance: 40)
    }

    @Test("Orientation applies through resize too: 6 becomes a 96x64 output, upright")
    func uprightResized() throws {
        let prepared = try ImageProcessor.prepare(
            file: Fixture.path("orientation-6.jpg"), resize: ResizeOptions(size: PixelSize(width: 96, height: 64)),
            encode: EncodeOptions(format: .png))
        let image = try Image.decode(data: prepared.data)
        #expect(image.size == PixelSize(width: 96, height: 64))
        #expect(prepared.geometry.padding == .none)
        try expectPixel(image, 10, 10, red, tolerance: 40)
        try expectPixel(image, 85, 54, yellow, tolerance: 40)
    }

    @Test("CMYK JPEG becomes sRGB: the red half is red")
    func cmyk() throws {
        let image = try Image.decode(file: Fixture.path("cmyk.jpg"))
        #expect(image.channels == 3)
        let left = try image.pixel(x: 4, y: 16)
        #expect(left[0] > 180 && left[1] < 90 && left[2] < 90, "CMYK red came out \(left)")
        let right = try image.pixel(x: 28, y: 16)
        #expect(right.allSatisfy { $0 > 220 }, "CMYK white came out \(right)")
    }

    @Test("16-bit PNG becomes 8-bit with the same colours")
    func sixteenBit() throws {
        let prepared = try ImageProcessor.prepare(
            file: Fixture.path("rgb16.png"), resize: nil, encode: EncodeOptions(format: .png))
        let info = try ImageProbe.probe(data: prepared.data)
        #expect(info.bitDepth == 8)
        let image = try Image.decode(data: prepared.data)
        try expectPixel(image, 4, 8, red, tolerance: 1)
        try expectPixel(image, 28, 8, [128, 128, 128], tolerance: 1)
    }

    @Test("Grey + alpha becomes RGBA with the alpha kept")
    func greyAlpha() throws {
        let image = try Image.decode(file: Fixture.path("grey-alpha.png"))
        #expect(image.channels == 4)
        #expect(try image.pixel(x: 4, y: 4)[3] == 0)
        try expectPixel(image, 28, 4, [100, 100, 100, 255], tolerance: 1)
    }

    @Test("Palette with tRNS: transparent and red pixels survive")
    func paletteTransparency() throws {
        let image = try Image.decode(file: Fixture.path("palette-transparent.png"))
        #expect(image.hasAlpha)
        #expect(try image.pixel(x: 2, y: 2)[3] == 0)
        try expectPixel(image, 24, 2, [255, 0, 0, 255], tolerance: 0)
    }

    @Test("Alpha is flattened over the background for JPEG")
    func flatten() throws {
        let prepared = try ImageProcessor.prepare(
            file: Fixture.path("grey-alpha.png"), resize: nil,
            encode: EncodeOptions(format: .jpeg, flattenBackground: Colour(red: 0, green: 0, blue: 255)))
        let image = try Image.decode(data: prepared.data)
        #expect(image.channels == 3)
        try expectPixel(image, 4, 4, blue, tolerance: 20)
        try expectPixel(image, 28, 4, [100, 100, 100], tolerance: 8)
    }

    @Test("An embedded Display P3 profile is converted to sRGB")
    func iccProfile() throws {
        let raw = try ImageProbe.probe(file: Fixture.path("p3-green.png"))
        #expect(raw.hasICCProfile)
        let image = try Image.decode(file: Fixture.path("p3-green.png"))
        // Stored as P3 (117, 251, 76); sRGB green after conversion.
        try expectPixel(image, 5, 5, green, tolerance: 6)
    }

    @Test("Animated GIF: the first frame")
    func animatedGIF() throws {
        let prepared = try ImageProcessor.prepare(
            file: Fixture.path("animated.gif"), resize: nil, encode: EncodeOptions(format: .png))
        let image = try Image.decode(data: prepared.data)
        #expect(image.size == PixelSize(width: 32, height: 24))
        try expectPixel(image, 10, 10, image.channels == 4 ? red + [255] : red, tolerance: 2)
    }

    @Test("TIFF and AVIF inputs decode")
    func tiffAndAVIF() throws {
        let tiff = try Image.decode(file: Fixture.path("red-grey.tif"))
        try expectPixel(tiff, 2, 2, red, tolerance: 0)
        let avif = try Image.decode(data: Make.solid(24, 24, [0, 0, 255], format: .avif))
        try expectPixel(avif, 12, 12, blue, tolerance: 20)
    }

    @Test("1x1 and 8000x40 images resize into a 64x64 box")
    func extremeShapes() throws {
        let tiny = try ImageProcessor.prepare(
            data: Make.solid(1, 1, [10, 200, 30], format: .png),
            resize: ResizeOptions(size: PixelSize(width: 64, height: 64)), encode: EncodeOptions(format: .png))
        #expect(tiny.size == PixelSize(width: 64, height: 64))
        try expectPixel(try Image.decode(data: tiny.data), 32, 32, [10, 200, 30], tolerance: 2)

        let strip = try ImageProcessor.prepare(
            data: Make.solid(8000, 40, [10, 200, 30], format: .png),
            resize: ResizeOptions(size: PixelSize(width: 64, height: 64), fill: .colour(.black)),
            encode: EncodeOptions(format: .png))
        #expect(strip.size == PixelSize(width: 64, height: 64))
        #expect(strip.geometry.resized == PixelSize(width: 64, height: 1))
        #expect(strip.geometry.padding.top == 31 && strip.geometry.padding.bottom == 32)
        let image = try Image.decode(data: strip.data)
        try expectPixel(image, 32, 31, [10, 200, 30], tolerance: 4)
        try expectPixel(image, 32, 10, [0, 0, 0], tolerance: 0)
    }
}

@Suite("Damaged input")
struct DamagedInputTests {
    @Test("A truncated JPEG fails with a clear 'corrupt or truncated' error")
    func truncatedJPEG() throws {
        let jpeg = try Make.encoded(256, 256, format: .jpeg) { x, y in [UInt8(x), UInt8(y), 0] }
        let cut = jpeg.prefix(jpeg.count / 2)
        let error = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.prepare(data: cut, resize: nil, encode: EncodeOptions(format: .png))
        }
        #expect(error?.kind == .corrupt)
        #expect(error?.reason.contains("JPEG") == true)
    }

    @Test("A truncated PNG fails with a clear error")
    func truncatedPNG() throws {
        let png = try Make.encoded(256, 256, format: .png) { x, y in [UInt8(x), UInt8(y), UInt8((x * y) & 255)] }
        let cut = png.prefix(png.count / 2)
        let error = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.prepare(data: cut, resize: nil, encode: EncodeOptions(format: .jpeg))
        }
        #expect(error?.kind == .corrupt)
        #expect(error?.reason.contains("PNG") == true)
    }

    @Test("A PNG with a bad CRC in its image data fails")
    func badCRC() throws {
        var bytes = [UInt8](try Make.encoded(64, 64, format: .png) { x, y in [UInt8(x * 4), UInt8(y * 4), 7] })
        let idat = try #require(PNGBytes.chunks(in: bytes).first { $0.type == "IDAT" })
        bytes[idat.offset + 8 + idat.length / 2] ^= 0xFF
        let error = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.prepare(data: Data(bytes), resize: nil, encode: EncodeOptions(format: .png))
        }
        #expect(error?.kind == .corrupt)
    }

    @Test("A PNG with a bad CRC in its header fails at the probe")
    func badHeaderCRC() throws {
        var bytes = [UInt8](try Make.solid(8, 8, [1, 2, 3], format: .png))
        bytes[29] ^= 0xFF  // IHDR CRC
        let error = #expect(throws: ImagingError.self) { _ = try ImageProbe.probe(data: Data(bytes)) }
        #expect(error?.kind == .corrupt)
        #expect(error?.reason.contains("CRC") == true)
    }
}

@Suite("Encoding")
struct EncodingTests {
    @Test("Metadata is stripped: no EXIF, GPS or camera model in the output")
    func stripsMetadata() throws {
        let source = try Fixture.data("gps-orientation-6.jpg")
        #expect(bytesContain(source, "SecretCam"))
        for format in [OutputFormat.jpeg, .png, .webp] {
            let prepared = try ImageProcessor.prepare(
                file: Fixture.path("gps-orientation-6.jpg"), resize: nil, encode: EncodeOptions(format: format))
            #expect(!bytesContain(prepared.data, "SecretCam"), "\(format) kept the camera model")
            #expect(!bytesContain(prepared.data, "Exif"), "\(format) kept EXIF")
            let info = try ImageProbe.probe(data: prepared.data)
            #expect(info.orientation == 1 && info.width == 48 && info.height == 32)
            #expect(!info.hasICCProfile)
        }
    }

    @Test("keepICCProfile embeds an sRGB profile and nothing else", arguments: [OutputFormat.jpeg, .png, .webp, .avif])
    func keepsICC(_ format: OutputFormat) throws {
        let prepared = try ImageProcessor.prepare(
            file: Fixture.path("gps-orientation-6.jpg"), resize: nil,
            encode: EncodeOptions(format: format, keepICCProfile: true))
        if format == .avif {
            #expect(bytesContain(prepared.data, "colr"), "no colour profile box in the AVIF")
        } else {
            #expect(try ImageProbe.probe(data: prepared.data).hasICCProfile)
        }
        #expect(!bytesContain(prepared.data, "Exif"))
        #expect(!bytesContain(prepared.data, "SecretCam"))
        #expect(try Image.decode(data: prepared.data).size == PixelSize(width: 48, height: 32))
    }

    @Test("Each output format is what it says, with the requested options")
    func formats() throws {
        let gradient = { (x: Int, y: Int) -> [UInt8] in [UInt8(x * 2), UInt8(y * 2), 100] }
        let source = try Make.encoded(100, 80, format: .png, paint: gradient)
        for format in OutputFormat.allCases {
            let prepared = try ImageProcessor.prepare(data: source, resize: nil, encode: EncodeOptions(format: format))
            let info = try ImageProbe.probe(data: prepared.data)
            #expect(info.format.rawValue == format.rawValue)
            #expect(info.width == 100 && info.height == 80)
        }
        let progressive = try ImageProcessor.prepare(
            data: source, resize: nil, encode: EncodeOptions(format: .jpeg, progressive: true))
        #expect(progressive.data.range(of: Data([0xFF, 0xC2])) != nil, "no progressive SOF2 marker")

        let lossless = try ImageProcessor.prepare(
            data: source, resize: nil, encode: EncodeOptions(format: .webp, lossless: true))
        let image = try Image.decode(data: lossless.data)
        try expectPixel(image, 37, 21, gradient(37, 21), tolerance: 0)

        let low = try ImageProcessor.prepare(data: source, resize: nil, encode: EncodeOptions(format: .jpeg, quality: 10))
        let high = try ImageProcessor.prepare(data: source, resize: nil, encode: EncodeOptions(format: .jpeg, quality: 98))
        #expect(low.data.count < high.data.count)
    }

    @Test("A JPEG without optimised Huffman tables has libjpeg's standard ones and the same pixels; optimised is smaller")
    func huffmanTables() throws {
        let noise = { (x: Int, y: Int) -> [UInt8] in
            (0..<3).map { c in UInt8(truncatingIfNeeded: (x &* 73 &+ y &* 151 &+ c &* 29) &* 2_654_435_761 >> 13) }
        }
        let source = try Make.encoded(160, 120, format: .png, paint: noise)
        let optimised = try ImageProcessor.prepare(data: source, resize: nil, encode: EncodeOptions(format: .jpeg, quality: 95))
        let standard = try ImageProcessor.prepare(
            data: source, resize: nil, encode: EncodeOptions(format: .jpeg, quality: 95, optimizeCoding: false))
        #expect(optimised.data.count < standard.data.count)
        // Tables only: the coefficients, and so every pixel, are the same.
        #expect(try Image.decode(data: optimised.data).pixels() == (try Image.decode(data: standard.data).pixels()))
        // The luminance DC table of the JPEG standard's annex K (K.3), as libjpeg writes it unoptimised.
        let standardDC: [UInt8] = [0xFF, 0xC4, 0x00, 0x1F, 0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
        #expect(standard.data.range(of: Data(standardDC)) != nil)
        #expect(optimised.data.range(of: Data(standardDC)) == nil)
    }

    @Test("Encoding settings stored before optimizeCoding existed read with it on")
    func storedSettings() throws {
        let stored = #"{"format":"jpeg","quality":80,"progressive":false,"lossless":false,"chromaSubsampling":true,"keepICCProfile":false,"flattenBackground":{"red":255,"green":255,"blue":255,"alpha":255}}"#
        let decoded = try JSONDecoder().decode(EncodeOptions.self, from: Data(stored.utf8))
        #expect(decoded == EncodeOptions(format: .jpeg, quality: 80))
        let off = EncodeOptions(format: .jpeg, optimizeCoding: false)
        #expect(try JSONDecoder().decode(EncodeOptions.self, from: JSONEncoder().encode(off)) == off)
    }

    @Test("Out-of-range options are refused before any work, with the value in the message")
    func invalidOptions() throws {
        let source = try Make.solid(8, 8, [1, 2, 3], format: .png)
        let cases: [(EncodeOptions, Setting, String)] = [
            (EncodeOptions(format: .jpeg, quality: 0), .quality, "quality must be an integer from 1 to 100; got 0"),
            (EncodeOptions(format: .png, compression: 12), .compression, "from 0 to 9; got 12"),
            (EncodeOptions(format: .jpeg, lossless: true), .lossless, "lossless applies to webp and avif only"),
            (EncodeOptions(format: .webp, effort: 9), .effort, "effort must be from 0 to 6 for webp; got 9"),
        ]
        for (options, setting, message) in cases {
            let error = #expect(throws: ImagingError.self) {
                _ = try ImageProcessor.prepare(data: source, resize: nil, encode: options)
            }
            #expect(error?.kind == .invalidOption)
            // The refused setting is data, so a front end can name it its own way.
            #expect(error?.setting?.setting == setting)
            #expect(error?.reason.contains(message) == true, "\(error?.reason ?? "") should contain \(message)")
        }
        let transparent = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.prepare(
                data: source, resize: ResizeOptions(size: PixelSize(width: 16, height: 8), fill: .colour(.transparent)),
                encode: EncodeOptions(format: .jpeg))
        }
        #expect(transparent?.reason.contains("jpeg has no alpha channel") == true)
    }
}

@Suite("Shrink-on-load with orientation")
struct ShrinkOnLoadTests {
    /// A JPEG with an EXIF APP1 segment carrying `orientation`, inserted after SOI.
    private func withOrientation(_ jpeg: Data, _ orientation: UInt8) -> Data {
        let tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00,
                             0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, orientation, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00]
        let payload = Array("Exif".utf8) + [0, 0] + tiff
        let length = payload.count + 2
        var bytes = [UInt8](jpeg)
        bytes.insert(contentsOf: [0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + payload, at: 2)
        return Data(bytes)
    }

    @Test("A large rotated JPEG shrinks on load in stored orientation and comes out upright")
    func rotatedShrink() throws {
        // Stored 1600x800: left half red, right half blue. Orientation 6 shows it
        // 800x1600 with red on top.
        let stored = try Make.encoded(1600, 800, format: .jpeg) { x, _ in x < 800 ? [255, 0, 0] : [0, 0, 255] }
        let rotated = withOrientation(stored, 6)
        let info = try ImageProbe.probe(data: rotated)
        #expect(info.orientation == 6 && info.displaySize == PixelSize(width: 800, height: 1600))
        let prepared = try ImageProcessor.prepare(
            data: rotated, resize: ResizeOptions(size: PixelSize(width: 400, height: 800)), encode: EncodeOptions(format: .png))
        #expect(prepared.size == PixelSize(width: 400, height: 800))
        #expect(prepared.geometry.padding == .none)
        let image = try Image.decode(data: prepared.data)
        try expectPixel(image, 200, 100, [255, 0, 0], tolerance: 20)
        try expectPixel(image, 200, 700, [0, 0, 255], tolerance: 20)
    }
}
