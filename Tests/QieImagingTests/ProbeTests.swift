import Foundation
import QieImaging
import Testing

@Suite("Probing headers")
struct ProbeTests {
    @Test("EXIF orientations 1-8: stored size, orientation and displayed size", arguments: 1...8)
    func orientation(_ n: Int) throws {
        let info = try ImageProbe.probe(file: Fixture.path("orientation-\(n).jpg"))
        #expect(info.format == .jpeg)
        #expect(info.orientation == n)
        #expect(info.displaySize == PixelSize(width: 48, height: 32))
        let stored = n >= 5 ? PixelSize(width: 32, height: 48) : PixelSize(width: 48, height: 32)
        #expect(PixelSize(width: info.width, height: info.height) == stored)
    }

    @Test("PNG colour types, depth and alpha from IHDR and tRNS")
    func pngHeaders() throws {
        let palette = try ImageProbe.probe(file: Fixture.path("palette-transparent.png"))
        #expect(palette.colourModel == "palette")
        #expect(palette.hasAlpha && palette.channels == 4)

        let greyAlpha = try ImageProbe.probe(file: Fixture.path("grey-alpha.png"))
        #expect(greyAlpha.colourModel == "grey+alpha" && greyAlpha.channels == 2 && greyAlpha.hasAlpha)

        let deep = try ImageProbe.probe(file: Fixture.path("rgb16.png"))
        #expect(deep.bitDepth == 16 && deep.channels == 3 && !deep.hasAlpha)

        let p3 = try ImageProbe.probe(file: Fixture.path("p3-green.png"))
        #expect(p3.hasICCProfile)
    }

    @Test("JPEG: CMYK colour model and components")
    func cmykJPEG() throws {
        let info = try ImageProbe.probe(file: Fixture.path("cmyk.jpg"))
        #expect(info.colourModel == "cmyk" || info.colourModel == "ycck")
        #expect(info.channels == 4)
        #expect(info.width == 32 && info.height == 32)
    }

    @Test("GIF animation and TIFF through libvips' header reader")
    func gifAndTIFF() throws {
        let gif = try ImageProbe.probe(file: Fixture.path("animated.gif"))
        #expect(gif.format == .gif && gif.isAnimated && gif.frameCount == 3)
        #expect(gif.width == 32 && gif.height == 24)
        let tiff = try ImageProbe.probe(file: Fixture.path("red-grey.tif"))
        #expect(tiff.format == .tiff && tiff.width == 32 && tiff.height == 16)
    }

    @Test("WebP and AVIF written by qie probe back to their size and alpha")
    func webpAndAVIF() throws {
        let webp = try Make.solid(40, 30, [10, 20, 30, 128], format: .webp)
        let info = try ImageProbe.probe(data: webp)
        #expect(info.format == .webp && info.width == 40 && info.height == 30 && info.hasAlpha)
        let avif = try Make.solid(40, 30, [10, 20, 30], format: .avif)
        let avifInfo = try ImageProbe.probe(data: avif)
        #expect(avifInfo.format == .avif && avifInfo.width == 40 && avifInfo.height == 30)
    }

    @Test("Megapixels are width x height / 10^6")
    func megapixels() throws {
        let info = try ImageProbe.probe(data: Make.solid(1024, 1024, [0, 0, 0], format: .png))
        #expect(info.megapixels == 1.048576)
    }

    @Test("A PNG header claiming 40000x40000 is read without decoding and refused by the limits")
    func hugePNGHeader() throws {
        let bytes = PNGBytes.signature + PNGBytes.ihdr(width: 40000, height: 40000)
            + PNGBytes.chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + PNGBytes.chunk("IEND", [])
        let info = try ImageProbe.probe(data: Data(bytes))
        #expect(info.width == 40000 && info.height == 40000)
        let error = #expect(throws: ImagingError.self) {
            try ImageLimits.default.check(info)
        }
        #expect(error?.kind == .tooLarge)
        #expect(error?.reason.contains("40000x40000") == true)
        #expect(error?.reason.contains("refused before decoding") == true)

        // Decoding goes through the same check first: refused, not allocated.
        let decodeError = #expect(throws: ImagingError.self) {
            _ = try Image.decode(data: Data(bytes))
        }
        #expect(decodeError?.kind == .tooLarge)
    }

    @Test("A JPEG whose SOF claims 65000x65000 is refused from the header")
    func hugeJPEGHeader() throws {
        var bytes = [UInt8](try Make.solid(16, 16, [200, 10, 10], format: .jpeg))
        // Find SOF0 (FF C0) and rewrite its height and width.
        let sof = try #require((0..<bytes.count - 9).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        bytes[sof + 5] = 0xFD; bytes[sof + 6] = 0xE8  // height 65000
        bytes[sof + 7] = 0xFD; bytes[sof + 8] = 0xE8  // width 65000
        let info = try ImageProbe.probe(data: Data(bytes))
        #expect(info.width == 65000 && info.height == 65000)
        let error = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.prepare(
                data: Data(bytes), resize: ResizeOptions(size: PixelSize(width: 64, height: 64)),
                encode: EncodeOptions(format: .png))
        }
        #expect(error?.kind == .tooLarge)
        #expect(error?.reason.contains("65000x65000") == true)
    }

    @Test("Limits can be raised and lowered")
    func customLimits() throws {
        let data = try Make.solid(300, 200, [1, 2, 3], format: .png)
        let error = #expect(throws: ImagingError.self) {
            _ = try Image.decode(data: data, limits: ImageLimits(maxMegapixels: 0.05))
        }
        #expect(error?.reason.contains("0.05-megapixel limit") == true)
        let sideError = #expect(throws: ImagingError.self) {
            _ = try Image.decode(data: data, limits: ImageLimits(maxSide: 256))
        }
        #expect(sideError?.reason.contains("256-pixel limit") == true)
        #expect(try Image.decode(data: data, limits: ImageLimits(maxMegapixels: 0.06)).size.width == 300)
    }

    @Test("Empty, text, SVG, PDF and HTML inputs get a clear refusal naming what they are")
    func refusals() throws {
        let cases: [(String, ImagingError.Kind, String)] = [
            ("", .empty, "empty"),
            ("hello, I am a text file\n", .notAnImage, "not an image"),
            (
                """
                <?xml version="1.0"?>
                <!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
                <svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>
                """, .refusedFormat, "SVG is not accepted"
            ),
            ("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", .refusedFormat, "PDF is not accepted"),
            ("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", .refusedFormat, "HTML is not accepted"),
            ("BM" + String(repeating: "\0", count: 60), .refusedFormat, "BMP is not accepted"),
        ]
        for (content, kind, phrase) in cases {
            let error = #expect(throws: ImagingError.self) {
                _ = try ImageProbe.probe(data: Data(content.utf8))
            }
            #expect(error?.kind == kind, "\(phrase)")
            #expect(error?.reason.contains(phrase) == true, "\(error?.reason ?? "") should say \(phrase)")
        }
    }

    @Test("A file's errors name the file")
    func errorsNameTheFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qie-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("notes.png").path
        try Data("plain text".utf8).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: ImagingError.self) { _ = try ImageProbe.probe(file: path) }
        #expect(error?.description.hasPrefix(path + ": not an image") == true)
        let missing = #expect(throws: ImagingError.self) { _ = try ImageProbe.probe(file: path + ".nope") }
        #expect(missing?.description == path + ".nope: no such file")
    }

    @Test("A named pipe or a folder is refused at once, without waiting for a writer")
    func notRegularFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qie-fifo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("pipe.png").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let error = #expect(throws: ImagingError.self) { _ = try ImageProbe.probe(file: fifo) }
        #expect(error?.reason.contains("not a regular file") == true)
        let folderError = #expect(throws: ImagingError.self) { _ = try ImageProbe.probe(file: folder.path) }
        #expect(folderError?.reason == "is a folder, not a file")
    }

    @Test("A truncated header is reported as truncated; a JPEG named .png is a JPEG")
    func truncatedAndMislabelled() throws {
        let jpeg = try Make.solid(64, 64, [0, 0, 255], format: .jpeg)
        let error = #expect(throws: ImagingError.self) { _ = try ImageProbe.probe(data: jpeg.prefix(40)) }
        #expect(error?.kind == .corrupt)
        #expect(error?.reason.contains("truncated JPEG") == true)

        let png = try Make.solid(64, 64, [0, 0, 255], format: .png)
        let pngError = #expect(throws: ImagingError.self) { _ = try ImageProbe.probe(data: png.prefix(20)) }
        #expect(pngError?.kind == .corrupt)

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qie-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let misnamed = folder.appendingPathComponent("photo.png")
        try jpeg.write(to: misnamed)
        #expect(try ImageProbe.probe(file: misnamed.path).format == .jpeg)
    }

    @Test("A header larger than the first read window is found by reading on")
    func largeHeader() throws {
        // A JPEG with ~300 KB of APP segments before its frame header.
        var bytes = [UInt8](try Make.solid(20, 10, [9, 9, 9], format: .jpeg))
        var padding: [UInt8] = []
        for _ in 0..<5 {
            padding += [0xFF, 0xE5, 0xFF, 0xFF] + [UInt8](repeating: 0x41, count: 0xFFFD)
        }
        bytes.insert(contentsOf: padding, at: 2)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("qie-\(UUID().uuidString).jpg")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let info = try ImageProbe.probe(file: file.path)
        #expect(info.width == 20 && info.height == 10)
        #expect(info.byteCount == bytes.count)
    }
}
