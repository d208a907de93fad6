import Foundation
import QieImaging
import Testing

/// A 200x100 source: left half red, right half blue.
private func halves() throws -> Data {
    try Make.encoded(200, 100, format: .png) { x, _ in x < 100 ? [255, 0, 0] : [0, 0, 255] }
}

private func prepare(_ source: Data, _ resize: ResizeOptions, format: OutputFormat = .png) throws -> (PreparedImage, Image) {
    let prepared = try ImageProcessor.prepare(data: source, resize: resize, encode: EncodeOptions(format: format))
    return (prepared, try Image.decode(data: prepared.data))
}

@Suite("Geometry planning")
struct GeometryPlanTests {
    @Test("contain: scale to fit, pad the rest, centred")
    func contain() {
        let g = ResizeGeometry.plan(
            source: PixelSize(width: 4000, height: 3000), target: PixelSize(width: 1024, height: 1280), fit: .contain)
        #expect(g.resized == PixelSize(width: 1024, height: 768))
        #expect(g.padding == Padding(top: 256, right: 0, bottom: 256, left: 0))
        #expect(g.output == PixelSize(width: 1024, height: 1280))
        #expect(g.contentRect == PixelRect(x: 0, y: 256, width: 1024, height: 768))
        #expect(abs(g.paddingFraction - 0.4) < 1e-9)
    }

    @Test("contain with odd padding puts the extra pixel after the image; north and east anchor")
    func containAnchors() {
        let source = PixelSize(width: 100, height: 33)
        let centred = ResizeGeometry.plan(source: source, target: PixelSize(width: 100, height: 100), fit: .contain)
        #expect(centred.padding == Padding(top: 33, right: 0, bottom: 34, left: 0))
        let north = ResizeGeometry.plan(
            source: source, target: PixelSize(width: 100, height: 100), fit: .contain, position: .north)
        #expect(north.padding == Padding(top: 0, right: 0, bottom: 67, left: 0))
        let east = ResizeGeometry.plan(
            source: PixelSize(width: 50, height: 100), target: PixelSize(width: 100, height: 100), fit: .contain,
            position: .east)
        #expect(east.padding == Padding(top: 0, right: 0, bottom: 0, left: 50))
    }

    @Test("cover: scale to cover, crop the overflow")
    func cover() {
        let g = ResizeGeometry.plan(
            source: PixelSize(width: 4000, height: 3000), target: PixelSize(width: 1536, height: 1080), fit: .cover)
        #expect(g.resized == PixelSize(width: 1536, height: 1152))
        #expect(g.crop == PixelRect(x: 0, y: 36, width: 1536, height: 1080))
        #expect(g.output == PixelSize(width: 1536, height: 1080))
        #expect(g.paddingFraction == 0)
        #expect(g.sourceRect == PixelRect(x: 0, y: 94, width: 4000, height: 2813))
    }

    @Test("fill, inside and outside")
    func otherFits() {
        let source = PixelSize(width: 300, height: 100)
        let target = PixelSize(width: 200, height: 200)
        #expect(ResizeGeometry.plan(source: source, target: target, fit: .fill).output == target)
        #expect(ResizeGeometry.plan(source: source, target: target, fit: .inside).output == PixelSize(width: 200, height: 67))
        #expect(ResizeGeometry.plan(source: source, target: target, fit: .outside).output == PixelSize(width: 600, height: 200))
    }

    @Test("The content rectangle scales to a result of another size")
    func contentInResult() {
        let g = ResizeGeometry.plan(
            source: PixelSize(width: 4000, height: 3000), target: PixelSize(width: 1024, height: 1280), fit: .contain)
        #expect(g.contentRect(inResultOf: PixelSize(width: 512, height: 640)) == PixelRect(x: 0, y: 128, width: 512, height: 384))
    }

    @Test("Positions parse in sharp's spellings")
    func positions() {
        #expect(Position(parsing: "center") == .centre)
        #expect(Position(parsing: "right top") == .northeast)
        #expect(Position(parsing: "left-bottom") == .southwest)
        #expect(Position(parsing: "attention") == .attention)
        #expect(Position(parsing: "middle") == nil)
    }
}

@Suite("Resizing pixels")
struct ResizePixelTests {
    @Test("contain pads with the background colour on the right sides")
    func containColour() throws {
        let (prepared, image) = try prepare(
            try halves(), ResizeOptions(size: PixelSize(width: 100, height: 100), fill: .colour(Colour(red: 0, green: 255, blue: 0))))
        #expect(image.size == PixelSize(width: 100, height: 100))
        #expect(prepared.geometry.padding == Padding(top: 25, right: 0, bottom: 25, left: 0))
        try expectPixel(image, 50, 5, [0, 255, 0], tolerance: 0)
        try expectPixel(image, 50, 95, [0, 255, 0], tolerance: 0)
        try expectPixel(image, 10, 50, [255, 0, 0], tolerance: 2)
        try expectPixel(image, 90, 50, [0, 0, 255], tolerance: 2)
    }

    @Test("contain with a transparent background gives transparent padding in PNG")
    func containTransparent() throws {
        let (_, image) = try prepare(try halves(), ResizeOptions(size: PixelSize(width: 100, height: 100), fill: .colour(.transparent)))
        #expect(image.channels == 4)
        #expect(try image.pixel(x: 50, y: 5)[3] == 0)
        try expectPixel(image, 10, 50, [255, 0, 0, 255], tolerance: 2)
    }

    @Test("contain with edge fill repeats the edge pixels")
    func containEdge() throws {
        let (_, image) = try prepare(try halves(), ResizeOptions(size: PixelSize(width: 100, height: 100), fill: .edge))
        try expectPixel(image, 10, 3, [255, 0, 0], tolerance: 2)
        try expectPixel(image, 90, 97, [0, 0, 255], tolerance: 2)
    }

    @Test("contain with blur fill shows a blurred copy, not a flat colour")
    func containBlur() throws {
        let (_, image) = try prepare(try halves(), ResizeOptions(size: PixelSize(width: 100, height: 100), fill: .blur))
        let topLeft = try image.pixel(x: 5, y: 5)
        let topRight = try image.pixel(x: 95, y: 5)
        #expect(topLeft[0] > topLeft[2], "blurred fill on the left should lean red, got \(topLeft)")
        #expect(topRight[2] > topRight[0], "blurred fill on the right should lean blue, got \(topRight)")
        try expectPixel(image, 10, 50, [255, 0, 0], tolerance: 4)
    }

    @Test("cover crops the overflow at the chosen position")
    func cover() throws {
        let (centre, centreImage) = try prepare(try halves(), ResizeOptions(size: PixelSize(width: 50, height: 50), fit: .cover))
        #expect(centre.geometry.crop == PixelRect(x: 25, y: 0, width: 50, height: 50))
        try expectPixel(centreImage, 5, 25, [255, 0, 0], tolerance: 2)
        try expectPixel(centreImage, 45, 25, [0, 0, 255], tolerance: 2)

        let (_, westImage) = try prepare(
            try halves(), ResizeOptions(size: PixelSize(width: 50, height: 50), fit: .cover, position: .west))
        try expectPixel(westImage, 45, 25, [255, 0, 0], tolerance: 2)
    }

    @Test("attention crop finds the detail and records where it cropped")
    func attention() throws {
        // Flat grey with a busy, saturated patch near the right edge.
        let source = try Make.encoded(300, 100, format: .png) { x, y in
            if x >= 230 && x < 290 && y >= 20 && y < 80 { return (x / 4 + y / 4) % 2 == 0 ? [255, 0, 200] : [0, 255, 0] }
            return [128, 128, 128]
        }
        let (prepared, _) = try prepare(
            source, ResizeOptions(size: PixelSize(width: 100, height: 100), fit: .cover, position: .attention))
        let crop = try #require(prepared.geometry.crop)
        #expect(crop.x > 150, "attention crop at \(crop) missed the detail at x 230-290")
        #expect(crop.width == 100 && crop.height == 100)
    }

    @Test("fill stretches; inside and outside keep the aspect ratio without padding")
    func otherFits() throws {
        let (fill, fillImage) = try prepare(try halves(), ResizeOptions(size: PixelSize(width: 60, height: 90), fit: .fill))
        #expect(fill.size == PixelSize(width: 60, height: 90))
        try expectPixel(fillImage, 10, 80, [255, 0, 0], tolerance: 2)
        let (inside, _) = try prepare(try halves(), ResizeOptions(size: PixelSize(width: 60, height: 90), fit: .inside))
        #expect(inside.size == PixelSize(width: 60, height: 30))
        let (outside, _) = try prepare(try halves(), ResizeOptions(size: PixelSize(width: 60, height: 90), fit: .outside))
        #expect(outside.size == PixelSize(width: 180, height: 90))
    }

    @Test("A large JPEG lands on the exact target size (shrink-on-load path)", arguments: [
        (PixelSize(width: 1024, height: 1280), Fit.contain), (PixelSize(width: 1536, height: 1080), Fit.cover),
        (PixelSize(width: 777, height: 333), Fit.fill),
    ])
    func exactSizes(_ target: PixelSize, _ fit: Fit) throws {
        let source = try Make.encoded(3001, 2003, format: .jpeg) { x, y in [UInt8(x & 255), UInt8(y & 255), 90] }
        let prepared = try ImageProcessor.prepare(
            data: source, resize: ResizeOptions(size: target, fit: fit), encode: EncodeOptions(format: .jpeg))
        #expect(prepared.size == target)
        let info = try ImageProbe.probe(data: prepared.data)
        #expect(PixelSize(width: info.width, height: info.height) == target)
    }
}

@Suite("Alpha through resizing")
struct AlphaResizeTests {
    /// 200x100: left half fully transparent *red*, right half opaque blue.
    private func hiddenRed(_ format: OutputFormat) throws -> Data {
        try Make.encoded(200, 100, channels: 4, format: format) { x, _ in x < 100 ? [255, 0, 0, 0] : [0, 0, 255, 255] }
    }

    @Test("Transparent colour never bleeds into visible pixels when scaling (premultiplied resize)")
    func noBleed() throws {
        let source = try hiddenRed(.png)
        let prepared = try ImageProcessor.prepare(
            data: source, resize: ResizeOptions(size: PixelSize(width: 60, height: 30), fit: .fill),
            encode: EncodeOptions(format: .png))
        let image = try Image.decode(data: prepared.data)
        #expect(image.size == PixelSize(width: 60, height: 30))
        var edgePixels = 0
        for x in 25..<35 {
            let pixel = try image.pixel(x: x, y: 15)
            guard pixel[3] > 0 else { continue }
            edgePixels += 1
            #expect(pixel[2] > pixel[0], "visible pixel \(x) carries the hidden red: \(pixel)")
        }
        #expect(edgePixels >= 5)
        #expect(try image.pixel(x: 5, y: 15)[3] == 0)

        let jpeg = try ImageProcessor.prepare(
            data: source, resize: ResizeOptions(size: PixelSize(width: 60, height: 30), fit: .fill),
            encode: EncodeOptions(format: .jpeg))
        try expectPixel(try Image.decode(data: jpeg.data), 5, 15, [255, 255, 255], tolerance: 8)
    }

    @Test("Flattening before or after scaling gives the same pixels")
    func flattenOrder() throws {
        let source = try Make.encoded(300, 200, channels: 4, format: .png) { x, y in
            [UInt8(x % 256), UInt8(y), 90, UInt8((x + y) % 256)]
        }
        let resize = ResizeOptions(size: PixelSize(width: 150, height: 100), fit: .fill)
        // JPEG flattens while loading; PNG keeps alpha and is flattened here afterwards.
        let early = try Image.decode(
            data: ImageProcessor.prepare(
                data: source, resize: resize, encode: EncodeOptions(format: .jpeg, quality: 100, chromaSubsampling: false)
            ).data)
        let late = try Image.decode(
            data: ImageProcessor.prepare(data: source, resize: resize, encode: EncodeOptions(format: .png)).data)
        for (x, y) in [(10, 10), (75, 50), (140, 90), (33, 77)] {
            let a = try early.pixel(x: x, y: y)
            let p = try late.pixel(x: x, y: y)
            let alpha = Double(p[3]) / 255
            let flattened = (0..<3).map { Int((Double(p[$0]) * alpha + 255 * (1 - alpha)).rounded()) }
            for c in 0..<3 {
                #expect(abs(Int(a[c]) - flattened[c]) <= 6, "pixel \(x),\(y): \(a) vs flattened \(flattened)")
            }
        }
    }
}
