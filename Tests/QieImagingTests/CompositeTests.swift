import Foundation
import QieImaging
import Testing

private let red: [UInt8] = [255, 0, 0]
private let green: [UInt8] = [0, 255, 0]
private let blue: [UInt8] = [0, 0, 255]

/// A mask of `width` x `height`: opaque (keep the original) where `keep`
/// says so, transparent (use the edited result) elsewhere.
private func mask(_ width: Int, _ height: Int, keep: (Int, Int) -> Bool) throws -> Data {
    try Make.encoded(width, height, channels: 4, format: .png) { x, y in keep(x, y) ? [0, 0, 0, 255] : [0, 0, 0, 0] }
}

/// Opaque on the left half: the original is kept there, edited on the right.
private func leftHalfMask(_ width: Int, _ height: Int) throws -> Data {
    try mask(width, height) { x, _ in x < width / 2 }
}

private func composite(
    edited: Data, original: Data, mask: Data, format: OutputFormat = .png
) throws -> (PreparedImage, Image) {
    let result = try ImageProcessor.composite(
        edited: edited, original: original, mask: mask, encode: EncodeOptions(format: format))
    return (result, try Image.decode(data: result.data))
}

/// The error `composite` throws for these inputs.
private func failure(
    edited: Data, original: Data, mask: Data, sourceLocation: SourceLocation = #_sourceLocation
) throws -> ImagingError {
    let error = #expect(throws: ImagingError.self, sourceLocation: sourceLocation) {
        _ = try ImageProcessor.composite(
            edited: edited, original: original, mask: mask, encode: EncodeOptions(format: .png))
    }
    return try #require(error, sourceLocation: sourceLocation)
}

@Suite("Compositing through a mask")
struct CompositeTests {
    let original: Data
    let edited: Data

    init() throws {
        original = try Make.solid(64, 48, red, format: .png)
        edited = try Make.solid(64, 48, blue, format: .png)
    }

    @Test("Opaque mask pixels keep the original, transparent ones take the edited result")
    func halves() throws {
        let (result, image) = try composite(edited: edited, original: original, mask: try leftHalfMask(64, 48))
        #expect(result.size == PixelSize(width: 64, height: 48))
        #expect(image.size == PixelSize(width: 64, height: 48))
        #expect(!image.hasAlpha)
        for y in [0, 24, 47] {
            try expectPixel(image, 0, y, red, tolerance: 0)
            try expectPixel(image, 31, y, red, tolerance: 0)
            try expectPixel(image, 32, y, blue, tolerance: 0)
            try expectPixel(image, 63, y, blue, tolerance: 0)
        }
    }

    @Test("Partial alpha blends linearly between the original and the edited result")
    func partialAlpha() throws {
        let half = try Make.encoded(64, 48, channels: 4, format: .png) { _, _ in [0, 0, 0, 128] }
        let (_, image) = try composite(edited: edited, original: original, mask: half)
        // 128/255 of red, 127/255 of blue.
        try expectPixel(image, 10, 10, [128, 0, 127], tolerance: 2)
        try expectPixel(image, 50, 40, [128, 0, 127], tolerance: 2)

        let quarter = try Make.encoded(64, 48, channels: 4, format: .png) { _, _ in [0, 0, 0, 64] }
        let (_, mostlyEdited) = try composite(edited: edited, original: original, mask: quarter)
        try expectPixel(mostlyEdited, 30, 20, [64, 0, 191], tolerance: 2)
    }

    @Test("A mask at half the original's size is scaled to it and gives the same result")
    func scaledMask() throws {
        let (_, full) = try composite(edited: edited, original: original, mask: try leftHalfMask(64, 48))
        let (smallResult, small) = try composite(edited: edited, original: original, mask: try leftHalfMask(32, 24))
        #expect(smallResult.size == PixelSize(width: 64, height: 48))
        // Away from the edge, which a scaled mask softens, every pixel matches.
        for y in stride(from: 0, to: 48, by: 3) {
            for x in Array(0..<28) + Array(36..<64) {
                try expectPixel(small, x, y, try full.pixel(x: x, y: y), tolerance: 2)
            }
        }
        try expectPixel(small, 20, 20, red, tolerance: 2)
        try expectPixel(small, 44, 20, blue, tolerance: 2)
    }

    @Test("An edited result at another size sets the output's size; the original and the mask are scaled to it")
    func editedAtAnotherSize() throws {
        // Original: left half red, right half green. Mask: keep the top half.
        let halves = try Make.encoded(64, 48, format: .png) { x, _ in x < 32 ? red : green }
        let top = try mask(64, 48) { _, y in y < 24 }
        let bigEdited = try Make.solid(128, 96, blue, format: .png)
        let (result, image) = try composite(edited: bigEdited, original: halves, mask: top)
        #expect(result.size == PixelSize(width: 128, height: 96))
        #expect(image.size == PixelSize(width: 128, height: 96))
        #expect(result.source.width == 128)
        try expectPixel(image, 16, 16, red, tolerance: 2)
        try expectPixel(image, 56, 40, red, tolerance: 2)
        try expectPixel(image, 72, 40, green, tolerance: 2)
        try expectPixel(image, 112, 16, green, tolerance: 2)
        try expectPixel(image, 16, 56, blue, tolerance: 2)
        try expectPixel(image, 112, 90, blue, tolerance: 2)

        // Smaller than the original: the original is shrunk the same way.
        let smallEdited = try Make.solid(32, 24, blue, format: .png)
        let (_, small) = try composite(edited: smallEdited, original: halves, mask: top)
        #expect(small.size == PixelSize(width: 32, height: 24))
        try expectPixel(small, 4, 4, red, tolerance: 2)
        try expectPixel(small, 28, 4, green, tolerance: 2)
        try expectPixel(small, 16, 21, blue, tolerance: 2)
    }

    /// A half-transparent red original, blended where the mask keeps it: in
    /// PNG its alpha is kept; JPEG has none, so it is flattened onto white
    /// first (half red over white) and the output is opaque.
    @Test("An original with alpha keeps it in a format with alpha, and is flattened in one without",
          arguments: [
            (OutputFormat.png, [UInt8]([255, 0, 0, 128]), [UInt8]([0, 0, 255, 255]), 1),
            (OutputFormat.jpeg, [255, 128, 128], blue, 8),
          ])
    func originalWithAlpha(format: OutputFormat, kept: [UInt8], edited expected: [UInt8], tolerance: Int) throws {
        let translucent = try Make.solid(64, 48, [255, 0, 0, 128], format: .png)
        let (result, image) = try composite(
            edited: edited, original: translucent, mask: try leftHalfMask(64, 48), format: format)
        #expect(result.format == format)
        #expect(try ImageProbe.probe(data: result.data).format.rawValue == format.rawValue)
        #expect(image.hasAlpha == format.supportsAlpha)
        try expectPixel(image, 10, 24, kept, tolerance: tolerance)
        try expectPixel(image, 54, 24, expected, tolerance: tolerance)
    }

    @Test("An edited result with alpha gives the output alpha where it is used")
    func editedWithAlpha() throws {
        let clear = try Make.solid(64, 48, [0, 0, 255, 0], format: .png)
        let (_, image) = try composite(edited: clear, original: original, mask: try leftHalfMask(64, 48))
        #expect(image.hasAlpha)
        try expectPixel(image, 10, 24, [255, 0, 0, 255], tolerance: 0)
        #expect(try image.pixel(x: 54, y: 24)[3] == 0)
    }

    @Test("The original can be read from a file")
    func originalFile() throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("qie-composite-\(UUID().uuidString).png").path
        try original.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try ImageProcessor.composite(
            edited: edited, originalFile: path, mask: try leftHalfMask(64, 48), encode: EncodeOptions(format: .png))
        let image = try Image.decode(data: result.data)
        try expectPixel(image, 10, 24, red, tolerance: 0)
        try expectPixel(image, 54, 24, blue, tolerance: 0)

        let missing = path + ".missing"
        let error = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.composite(
                edited: edited, originalFile: missing, mask: try leftHalfMask(64, 48),
                encode: EncodeOptions(format: .png))
        }
        #expect(error?.kind == .unreadable)
        #expect(error?.file == missing)
        #expect(error?.reason.hasPrefix("the original: ") == true, "\(String(describing: error))")
    }

    @Test("A mask without alpha is refused, saying how to make one")
    func maskWithoutAlpha() throws {
        for format in [OutputFormat.png, .jpeg] {
            let opaque = try Make.solid(64, 48, [0, 0, 0], format: format)
            let error = try failure(edited: edited, original: original, mask: opaque)
            #expect(error.kind == .invalidOption)
            #expect(error.stage == nil)
            #expect(error.reason.hasPrefix("the mask has no alpha channel"), "\(error)")
            #expect(error.reason.contains("save it as a PNG with transparency"), "\(error)")
        }
    }

    @Test("A mask of another shape than the original is refused with both sizes; within 1% it is scaled")
    func maskAspect() throws {
        let square = try leftHalfMask(64, 64)
        let error = try failure(edited: edited, original: original, mask: square)
        #expect(error.kind == .invalidOption)
        #expect(error.reason.hasPrefix("the mask is 64x64 but the original is 64x48"), "\(error)")
        #expect(error.reason.contains("33.3%"), "\(error)")

        // 640x481 is 0.2% taller than 4:3: scaled, not refused.
        let nearly = try leftHalfMask(640, 481)
        let (result, image) = try composite(edited: edited, original: original, mask: nearly)
        #expect(result.size == PixelSize(width: 64, height: 48))
        try expectPixel(image, 10, 24, red, tolerance: 2)
        try expectPixel(image, 54, 24, blue, tolerance: 2)
    }

    @Test("A truncated mask is corrupt input, named as the mask, found at stage load")
    func truncatedMask() throws {
        // Noisy, so the pixel data is large and the cut falls well after the header.
        let noisy = try Make.encoded(256, 192, channels: 4, format: .png) { x, y in
            [UInt8((x * 7 + y * 13) & 255), UInt8((x * y) & 255), UInt8((x ^ y) & 255), x < 128 ? 255 : 0]
        }
        let cut = noisy.prefix(noisy.count / 2)
        #expect(try ImageProbe.probe(data: cut).width == 256)
        let error = try failure(edited: edited, original: original, mask: cut)
        #expect(error.kind == .corrupt)
        #expect(error.stage == .load)
        #expect(error.reason.hasPrefix("the mask: corrupt or truncated PNG"), "\(error)")
    }

    @Test("A corrupt original is named as the original")
    func truncatedOriginal() throws {
        let jpeg = try Make.encoded(256, 192, format: .jpeg) { x, y in [UInt8(x & 255), UInt8(y & 255), 90] }
        let error = try failure(edited: edited, original: jpeg.prefix(jpeg.count / 2), mask: try leftHalfMask(64, 48))
        #expect(error.kind == .corrupt)
        #expect(error.stage == .load)
        #expect(error.reason.hasPrefix("the original: corrupt or truncated JPEG"), "\(error)")
    }

    @Test("A text file as the edited result is refused as not an image, named as the edited result")
    func textAsEdited() throws {
        let text = Data("{\"error\": \"rate limited\"}\n".utf8)
        let error = try failure(edited: text, original: original, mask: try leftHalfMask(64, 48))
        #expect(error.kind == .notAnImage)
        #expect(error.stage == nil)
        #expect(error.reason.hasPrefix("the edited result: not an image"), "\(error)")
    }

    @Test("Empty inputs are refused, each named")
    func empty() throws {
        let mask = try leftHalfMask(64, 48)
        let cases: [(Data, Data, Data, String)] = [
            (Data(), original, mask, "the edited result"),
            (edited, Data(), mask, "the original"),
            (edited, original, Data(), "the mask"),
        ]
        for (edited, original, mask, name) in cases {
            let error = try failure(edited: edited, original: original, mask: mask)
            #expect(error.kind == .empty)
            #expect(error.reason.hasPrefix("\(name): the file is empty"), "\(error)")
            #expect(error.description.hasPrefix(name), "\(error)")
        }
    }
}

/// A result restored and composited in one pass is computed only where the
/// mask lets the edit show; every pixel must still be the blend of the whole.
@Suite("Compositing a restored result where the mask shows it")
struct PartialCompositeTests {
    /// A deterministic texture, so that any pixel restored or blended wrongly shows.
    static func texture(_ width: Int, _ height: Int, seed: Int) throws -> Data {
        try Make.encoded(width, height, format: .png) { x, y in
            (0..<3).map { c in UInt8(truncatingIfNeeded: (x &* 73 &+ y &* 151 &+ c &* 29 &+ seed) &* 2_654_435_761 >> 13) }
        }
    }

    /// A mask opaque (keep) everywhere but a soft clear disc, or all one alpha.
    static func mask(_ width: Int, _ height: Int, alpha: (Int, Int) -> UInt8) throws -> Data {
        try Make.encoded(width, height, channels: 4, format: .png) { x, y in [0, 0, 0, alpha(x, y)] }
    }

    @Test(
        "Each pixel is the original where the mask is opaque, the restored result where it is clear, and libvips' blend between",
        arguments: ["disc", "opaque", "clear"])
    func blendOfTheWhole(mask kind: String) throws {
        let (width, height) = (200, 150)
        let original = try Self.texture(width, height, seed: 1)
        // Padded into 256x256 for the endpoint, which answers at that size.
        let sent = try ImageProcessor.prepare(
            data: original, framedIn: nil,
            choosing: { _, _ in (ResizeOptions(size: PixelSize(width: 256, height: 256)), EncodeOptions(format: .png)) })
        let edited = try Self.texture(256, 256, seed: 7)
        let maskData = try Self.mask(width, height) { x, y in
            switch kind {
            case "opaque": return 255
            case "clear": return 0
            default:
                let distance = (Double((x - 60) * (x - 60) + (y - 50) * (y - 50))).squareRoot()
                return UInt8(max(0, min(255, (distance - 14) * 32)))
            }
        }
        let weights = try ImageProcessor.maskWeights(data: maskData, for: try ImageProbe.probe(data: original), framedIn: nil)
        let finished = try ImageProcessor.finish(
            result: edited, restoring: sent.geometry,
            compositing: CompositeLayers(original: original, framedIn: nil, mask: weights), encode: EncodeOptions(format: .png))
        #expect(finished.size == PixelSize(width: width, height: height))

        let restored = try Image.decode(
            data: try ImageProcessor.restore(data: edited, geometry: sent.geometry, encode: EncodeOptions(format: .png)).data
        ).pixels()
        let kept = try Image.decode(data: original).pixels()
        let output = try Image.decode(data: finished.data).pixels()
        let weight = [UInt8](weights.alpha)
        try #require(output.count == kept.count && restored.count == kept.count && weight.count * 3 == kept.count)
        var wrong = 0, firstWrong: (Int, Int)? = nil
        for index in 0..<output.count {
            let v = Int(weight[index / 3])
            let expected = (v * Int(kept[index]) + (255 - v) * Int(restored[index]) + 128) / 255
            if Int(output[index]) != expected {
                wrong += 1
                if firstWrong == nil { firstWrong = ((index / 3) % width, (index / 3) / width) }
            }
        }
        #expect(wrong == 0, "\(wrong) samples differ from the whole blend, the first at \(String(describing: firstWrong))")
        if kind == "disc" {
            // The disc is the only part edited: the rest is the original.
            #expect(weight.contains(0) && weight.contains(255))
            #expect(output[0..<(width * 3 * 20)] == kept[0..<(width * 3 * 20)])
        }
    }
}
