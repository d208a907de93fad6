import Foundation
import QieImaging
import QieTestSupport
import Testing

/// A 160x120 input with detail everywhere (so every resize shows), PNG.
private func detailed(alpha: Bool = false) throws -> Data {
    try Make.encoded(160, 120, channels: alpha ? 4 : 3, format: .png) { x, y in
        let rgb = [UInt8((x * 7 + y * 3) & 255), UInt8((x * y) & 255), UInt8(x < 80 ? 40 : 200)]
        return alpha ? rgb + [UInt8(y < 60 ? 255 : 128)] : rgb
    }
}

/// A mask for a `width` x `height` original: opaque (keep) on the left
/// quarter, an alpha ramp across the middle, clear (edit) on the right quarter.
private func rampMask(_ width: Int, _ height: Int) throws -> Data {
    try Make.encoded(width, height, channels: 4, format: .png) { x, _ in
        let alpha = x < width / 4 ? 255 : x >= width * 3 / 4 ? 0 : 255 - (x - width / 4) * 255 / (width / 2)
        return [0, 0, 0, UInt8(alpha)]
    }
}

/// The largest and the mean difference of the samples of two images of
/// one size, as seen: colours premultiplied by their alpha (the colour of a
/// transparent pixel does not show), and an image with alpha against one
/// without it flattened onto white, as a format without alpha shows it.
private func differences(_ a: Data, _ b: Data) throws -> (largest: Int, mean: Double) {
    let first = try Image.decode(data: a), second = try Image.decode(data: b)
    #expect(first.size == second.size)
    guard first.size == second.size else { return (.max, .infinity) }
    let flatten = first.channels != second.channels
    func seen(_ image: Image) throws -> [Int] {
        let pixels = try image.pixels()
        guard image.channels == 4 else { return pixels.map(Int.init) }
        return stride(from: 0, to: pixels.count, by: 4).flatMap { i -> [Int] in
            let alpha = Int(pixels[i + 3])
            let colour = (0..<3).map { (Int(pixels[i + $0]) * alpha + (flatten ? 255 * (255 - alpha) : 0) + 127) / 255 }
            return flatten ? colour : colour + [alpha]
        }
    }
    let samples = zip(try seen(first), try seen(second)).map { abs($0 - $1) }
    let largest = samples.max() ?? 0
    return (largest, Double(samples.reduce(0, +)) / Double(max(1, samples.count)))
}

/// Decodes and encodes counted while `body` runs.
private func counted<T>(_ body: () throws -> T) async rethrows -> (T, decodes: Int, encodes: Int) {
    let count = ImagingCount()
    let value = try await count.counting { try body() }
    return (value, count.decodes, count.encodes)
}

/// A frame and a plan, with what fills their padding.
struct FramedCase: Sendable, CustomTestStringConvertible {
    var frame: ResizeOptions
    var plan: ResizeOptions
    var alpha = false
    var testDescription: String {
        "\(frame.size) \(frame.fit) on \(frame.fill), then \(plan.size) \(plan.fit) on \(plan.fill)\(alpha ? ", input with alpha" : "")"
    }

    static let all: [FramedCase] = [
        // 4:3 into 2:1, padded white, then enlarged into a square, padded red.
        FramedCase(
            frame: ResizeOptions(size: PixelSize(width: 240, height: 120), fit: .contain),
            plan: ResizeOptions(size: PixelSize(width: 300, height: 300), fit: .contain, fill: .colour(Colour(red: 255, green: 0, blue: 0)))),
        // Cropped into a square, then shrunk and padded.
        FramedCase(
            frame: ResizeOptions(size: PixelSize(width: 100, height: 100), fit: .cover),
            plan: ResizeOptions(size: PixelSize(width: 90, height: 60), fit: .contain)),
        // A transparent frame around an input with alpha, then cropped.
        FramedCase(
            frame: ResizeOptions(size: PixelSize(width: 120, height: 200), fit: .contain, position: .north, fill: .colour(.transparent)),
            plan: ResizeOptions(size: PixelSize(width: 160, height: 160), fit: .cover, fill: .colour(.transparent)), alpha: true),
        // Edge pixels into the frame, a blurred fill for the plan.
        FramedCase(
            frame: ResizeOptions(size: PixelSize(width: 200, height: 120), fit: .contain, fill: .edge),
            plan: ResizeOptions(size: PixelSize(width: 256, height: 256), fit: .contain, fill: .blur)),
    ]
}

@Suite("One pass per image and direction")
struct OnePassTests {
    @Test("A frame and a plan in one pass: the pixels and geometries of framing to PNG and preparing that, one decode and one encode instead of two",
          arguments: FramedCase.all)
    func framedPrepare(_ example: FramedCase) async throws {
        let input = try detailed(alpha: example.alpha)
        let png = EncodeOptions(format: .png)
        // Two steps: the frame encoded losslessly, then decoded and planned.
        let (twoStep, twoStepDecodes, twoStepEncodes) = try await counted { () throws -> (PreparedImage, PreparedImage) in
            let framed = try ImageProcessor.prepare(data: input, resize: example.frame, encode: EncodeOptions(format: .png, compression: 1))
            return (framed, try ImageProcessor.prepare(data: framed.data, resize: example.plan, encode: png))
        }
        #expect(twoStepDecodes == 2 && twoStepEncodes == 2)

        let (onePass, decodes, encodes) = try await counted {
            try ImageProcessor.prepare(data: input, framedIn: example.frame) { info, size in
                #expect(info.displaySize == PixelSize(width: 160, height: 120) && info.format == .png)
                #expect(size == twoStep.0.size, "the plan is made for the frame")
                return (example.plan, png)
            }
        }
        #expect(decodes == 1 && encodes == 1)
        #expect(onePass.size == twoStep.1.size && onePass.format == .png)
        #expect(onePass.geometry == twoStep.1.geometry, "undoing the geometry gives the frame back, as before")
        #expect(onePass.framing == twoStep.0.geometry)
        #expect(onePass.source.displaySize == PixelSize(width: 160, height: 120), "the input's own header")
        #expect(try differences(onePass.data, twoStep.1.data).largest <= 1)
    }

    @Test("A frame the input fills exactly is left out: a JPEG at the planned size is sent as it is, nothing decoded or encoded")
    func unchangedFrame() async throws {
        let jpeg = try Make.encoded(160, 120, format: .jpeg) { x, y in [UInt8(x), UInt8(y), 90] }
        let frame = ResizeOptions(size: PixelSize(width: 160, height: 120), fit: .cover)
        let (kept, decodes, encodes) = try await counted {
            try ImageProcessor.prepare(data: jpeg, framedIn: frame, reusingUnchanged: true) { _, size in
                (ResizeOptions(size: size, fit: .contain), EncodeOptions(format: .jpeg, quality: 95))
            }
        }
        #expect(decodes == 0 && encodes == 0)
        #expect(kept.data == jpeg, "a JPEG without metadata comes back byte for byte")
        #expect(kept.framing == ResizeGeometry(
            fit: .cover, source: frame.size, resized: frame.size, crop: nil, padding: .none, output: frame.size))
    }

    @Test("A mask's weights: its alpha fitted as the input was, the frame's padding transparent, decoded once",
          arguments: [PixelSize(width: 160, height: 120), PixelSize(width: 80, height: 60)])
    func maskWeights(_ maskSize: PixelSize) async throws {
        let mask = try rampMask(maskSize.width, maskSize.height)
        let original = try ImageProbe.probe(data: try detailed())
        for frame in [
            ResizeOptions(size: PixelSize(width: 240, height: 120), fit: .contain, fill: .colour(.white)),
            ResizeOptions(size: PixelSize(width: 100, height: 100), fit: .cover), nil,
        ] {
            let (weights, decodes, encodes) = try await counted {
                try ImageProcessor.maskWeights(data: mask, for: original, framedIn: frame)
            }
            #expect(decodes == 1 && encodes == 0)
            // As it was framed before: into a lossless PNG, padding transparent.
            var resize = frame ?? ResizeOptions(size: original.displaySize, fit: .fill)
            resize.fill = .colour(.transparent)
            let framed = try Image.decode(
                data: try ImageProcessor.prepare(data: mask, resize: resize, encode: EncodeOptions(format: .png)).data)
            #expect(weights.size == framed.size && weights.alpha.count == framed.width * framed.height)
            let framedAlpha = try framed.pixels().enumerated().filter { $0.offset % 4 == 3 }.map(\.element)
            let largest = zip(framedAlpha, weights.alpha).reduce(0) { max($0, abs(Int($1.0) - Int($1.1))) }
            #expect(largest <= 1, "\(String(describing: frame)): \(largest)")
            if frame?.fit == .contain {
                #expect(weights.alpha[60 * 240 + 5] == 0, "the frame's padding is edited")
                #expect(weights.alpha[60 * 240 + 40] == 255, "the mask's opaque quarter keeps the input")
            }
        }
    }

    @Test("A mask without alpha is refused from its header, before any pixel is decoded")
    func maskWithoutAlpha() async throws {
        let original = try ImageProbe.probe(data: try detailed())
        let opaque = try Make.solid(160, 120, [0, 0, 0], format: .png)
        let count = ImagingCount()
        let error = await #expect(throws: ImagingError.self) {
            try await count.counting { _ = try ImageProcessor.maskWeights(data: opaque, for: original, framedIn: nil) }
        }
        #expect(error?.reason.contains("the mask has no alpha channel") == true)
        #expect(count.decodes == 0)
    }

    @Test("Restore and composite in one pass: the pixels of restoring, encoding and compositing, the result and the original decoded once each, one encode",
          arguments: FramedCase.all.prefix(3))
    func finish(_ example: FramedCase) async throws {
        let input = try detailed(alpha: example.alpha)
        let mask = try rampMask(160, 120)
        let png = EncodeOptions(format: .png)
        let framed = try ImageProcessor.prepare(data: input, resize: example.frame, encode: EncodeOptions(format: .png, compression: 1))
        let sent = try ImageProcessor.prepare(data: framed.data, resize: example.plan, encode: png)
        // The endpoint's answer: the negative, at twice the size sent.
        let twice = PixelSize(width: sent.size.width * 2, height: sent.size.height * 2)
        let edited = try ImageProcessor.negative(data: sent.data, resize: ResizeOptions(size: twice, fit: .fill), encode: png).data
        var maskFrame = example.frame
        maskFrame.fill = .colour(.transparent)
        let framedMask = try ImageProcessor.prepare(data: mask, resize: maskFrame, encode: EncodeOptions(format: .png, compression: 1))

        let weights = try ImageProcessor.maskWeights(data: mask, for: try ImageProbe.probe(data: input), framedIn: example.frame)
        let layers = CompositeLayers(original: input, framedIn: example.frame, mask: weights)
        var lossless = Data()
        for format in [OutputFormat.png, .jpeg] {
            let encode = EncodeOptions(format: format)
            // Two steps: restored and encoded, then decoded again with the framed original and mask.
            let (twoStep, twoStepDecodes, twoStepEncodes) = try await counted { () throws -> PreparedImage in
                let restored = try ImageProcessor.restore(data: edited, geometry: sent.geometry, encode: encode)
                return try ImageProcessor.composite(edited: restored.data, original: framed.data, mask: framedMask.data, encode: encode)
            }
            #expect(twoStepDecodes == 4 && twoStepEncodes == 2)

            let (onePass, decodes, encodes) = try await counted {
                try ImageProcessor.finish(result: edited, restoring: sent.geometry, compositing: layers, encode: encode)
            }
            #expect(decodes == 2 && encodes == 1)
            // Restored to the frame (to the part of it that was sent, for a cover plan).
            #expect(onePass.size == twoStep.size && onePass.format == format)
            #expect(example.plan.fit == .cover || onePass.size == example.frame.size)
            if format == .png {
                // The same pixels, the mask's weights rounded once less.
                let difference = try differences(onePass.data, twoStep.data)
                #expect(difference.largest <= 2, "\(difference)")
                lossless = onePass.data
            } else {
                // One generation of JPEG loss instead of two: closer to the lossless result.
                let one = try differences(onePass.data, lossless), two = try differences(twoStep.data, lossless)
                #expect(one.mean <= two.mean, "one pass \(one), two steps \(two)")
            }

            // What a user sees: the input where the mask is opaque, the edit where it is clear.
            guard format == .png, example.frame.fit == .contain, example.frame.fill == .colour(.white) else { continue }
            let result = try Image.decode(data: onePass.data), original = try Image.decode(data: framed.data)
            for (x, y, keep) in [(70, 60, true), (210, 60, false)] {
                let shown = try result.pixel(x: x, y: y), source = try original.pixel(x: x, y: y)
                for (s, o) in zip(shown.prefix(3), source.prefix(3)) {
                    #expect(abs(Int(s) - (keep ? Int(o) : 255 - Int(o))) <= 8, "\(x),\(y): \(shown) from \(source)")
                }
            }
        }
    }

    @Test("Without layers, finish restores and converts as restore does, in one decode and one encode")
    func finishWithoutLayers() async throws {
        let input = try detailed()
        let sent = try ImageProcessor.prepare(
            data: input, resize: ResizeOptions(size: PixelSize(width: 256, height: 256)), encode: EncodeOptions(format: .png))
        let restored = try ImageProcessor.restore(data: sent.data, geometry: sent.geometry, encode: EncodeOptions(format: .png))
        let (finished, decodes, encodes) = try await counted {
            try ImageProcessor.finish(
                result: sent.data, restoring: sent.geometry, compositing: nil, encode: EncodeOptions(format: .png))
        }
        #expect(decodes == 1 && encodes == 1)
        #expect(finished.data == restored.data && finished.geometry == restored.geometry)
    }

    @Test("A damaged original is named as the original, and its file; a damaged result is corrupt input at stage load")
    func finishFailures() throws {
        let input = try detailed()
        let weights = try ImageProcessor.maskWeights(data: try rampMask(160, 120), for: try ImageProbe.probe(data: input), framedIn: nil)
        let png = EncodeOptions(format: .png)
        let cut = input.prefix(input.count / 2)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qie-one-pass-\(UUID().uuidString).png").path
        try Data(cut).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let original = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.finish(
                result: input, restoring: nil, compositing: CompositeLayers(originalFile: path, framedIn: nil, mask: weights),
                encode: png)
        }
        #expect(original?.reason.hasPrefix("the original: ") == true, "\(String(describing: original))")
        #expect(original?.file == path && original?.kind == .corrupt && original?.stage == .load)

        let result = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.finish(
                result: Data(cut), restoring: nil, compositing: CompositeLayers(original: input, framedIn: nil, mask: weights),
                encode: png)
        }
        #expect(result?.kind == .corrupt && result?.stage == .load)
        #expect(result?.reason.hasPrefix("corrupt or truncated PNG") == true, "\(String(describing: result))")

        // Both damaged (they decode at once): the result's error is the one said.
        let both = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.finish(
                result: Data(cut), restoring: nil, compositing: CompositeLayers(originalFile: path, framedIn: nil, mask: weights),
                encode: png)
        }
        #expect(both?.reason.hasPrefix("corrupt or truncated PNG") == true && both?.file == nil, "\(String(describing: both))")
    }

    @Test("A preview made beside a finished result from the same pixels: no decode added, the result's bytes unchanged, never enlarged")
    func finishPreview() async throws {
        let input = try detailed()
        let weights = try ImageProcessor.maskWeights(data: try rampMask(160, 120), for: try ImageProbe.probe(data: input), framedIn: nil)
        let layers = CompositeLayers(original: input, framedIn: nil, mask: weights)
        // The endpoint's answer: the negative, at twice the size, padded to a square.
        let geometry = ResizeGeometry.plan(source: PixelSize(width: 160, height: 120), target: PixelSize(width: 320, height: 320), fit: .contain)
        let edited = try ImageProcessor.negative(
            data: input, resize: ResizeOptions(size: PixelSize(width: 320, height: 320), fit: .contain), encode: EncodeOptions(format: .png)
        ).data
        for (side, expected) in [(40, PixelSize(width: 40, height: 30)), (1000, PixelSize(width: 160, height: 120))] {
            let preview = PreviewOptions(side: side, encode: EncodeOptions(format: .png))
            for composite in [false, true] {
                let finish = { (preview: PreviewOptions?) throws -> PreparedImage in
                    try ImageProcessor.finish(
                        result: edited, restoring: geometry, compositing: composite ? layers : nil, encode: EncodeOptions(format: .png),
                        preview: preview)
                }
                let (plain, plainDecodes, plainEncodes) = try await counted { try finish(nil) }
                let (shown, decodes, encodes) = try await counted { try finish(preview) }
                #expect(plain.preview == nil && shown.data == plain.data)
                #expect(decodes == plainDecodes && encodes == plainEncodes + 1)
                let made = try #require(shown.preview)
                #expect(try ImageProbe.probe(data: made).displaySize == expected, "side \(side)")
                // The result as delivered, each preview pixel the mean of the block it covers.
                let delivered = try Image.decode(data: shown.data)
                let averaged = boxAverage(
                    try delivered.pixels(), width: delivered.width, height: delivered.height, channels: delivered.channels,
                    to: (expected.width, expected.height))
                let samples = try Image.decode(data: made).pixels()
                #expect(samples.count == averaged.count)
                #expect(zip(samples, averaged).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
            }
        }
    }

    @Test("A preview side out of range is refused before anything is decoded")
    func previewSide() async throws {
        let count = ImagingCount()
        let error = await #expect(throws: ImagingError.self) {
            try await count.counting {
                _ = try ImageProcessor.finish(
                    result: try detailed(), restoring: nil, compositing: nil, encode: EncodeOptions(format: .png),
                    preview: PreviewOptions(side: 0))
            }
        }
        #expect(error?.reason.contains("a preview side from 1 to 16384 pixels") == true, "\(String(describing: error))")
        #expect(count.decodes == 0)
    }

    @Test("A preview of an image with alpha keeps it where its format can (PNG), and is flattened onto the background before averaging where it cannot (JPEG)")
    func previewWithAlpha() throws {
        // Left half opaque red, right half fully transparent green.
        let pixels = (0..<(120 * 80)).flatMap { i -> [UInt8] in i % 120 < 60 ? [220, 20, 20, 255] : [0, 255, 0, 0] }
        let image = try Image(pixels: pixels, size: PixelSize(width: 120, height: 80), channels: 4)

        let png = try Image.decode(data: try image.preview(PreviewOptions(side: 30, encode: EncodeOptions(format: .png))))
        #expect(png.size == PixelSize(width: 30, height: 20) && png.channels == 4)
        #expect(try png.pixel(x: 5, y: 10) == [220, 20, 20, 255])
        #expect(try png.pixel(x: 25, y: 10)[3] == 0, "transparent stays transparent")

        let jpeg = try Image.decode(data: try image.preview(PreviewOptions(side: 30, encode: EncodeOptions(format: .jpeg, quality: 95))))
        #expect(jpeg.size == PixelSize(width: 30, height: 20) && jpeg.channels == 3)
        // The transparent half is the background (white), not its hidden green.
        let right = try jpeg.pixel(x: 25, y: 10), left = try jpeg.pixel(x: 5, y: 10)
        #expect(right.allSatisfy { $0 >= 245 }, "\(right)")
        #expect(abs(Int(left[0]) - 220) <= 6 && left[1] <= 30 && left[2] <= 30, "\(left)")
    }

    @Test("Kept bytes checked with a preview at a fraction of their size find the same damage as a full decode", arguments: [OutputFormat.jpeg, .webp, .png])
    func verifyFindsDamage(_ format: OutputFormat) throws {
        let intact = try Make.encoded(640, 480, format: format, quality: 90) { x, y in
            [UInt8((x * 3 + y) & 255), UInt8((x ^ y) & 255), UInt8((x * y / 7) & 255)]
        }
        let preview = PreviewOptions(side: 64)
        let made = try #require(try ImageProcessor.verify(data: intact, preview: preview))
        #expect(try ImageProbe.probe(data: made).displaySize == PixelSize(width: 64, height: 48))
        #expect(try ImageProcessor.verify(data: intact) == nil)

        // Cut short at several points, and bytes of the compressed data overwritten.
        var damaged: [(String, Data)] = [0.3, 0.6, 0.9, 0.99].map { ("cut at \($0)", intact.prefix(Int(Double(intact.count) * $0))) }
        for at in [0.4, 0.7] {
            var bytes = intact
            let start = Int(Double(bytes.count) * at)
            for i in start..<(start + 48) { bytes[i] = 0xFF }
            damaged.append(("overwritten at \(at)", bytes))
        }
        var refused = 0
        for (what, bytes) in damaged {
            let whole = Result { () throws(ImagingError) in _ = try Image.decode(data: bytes) }
            let checked = Result { () throws(ImagingError) in _ = try ImageProcessor.verify(data: bytes, preview: preview) }
            switch (whole, checked) {
            case (.success, .success):
                break
            case (.failure, .failure(let error)):
                refused += 1
                #expect(error.kind == .corrupt, "\(format) \(what): \(error)")
            default:
                Issue.record("\(format) \(what): a full decode \(whole), the check with a preview \(checked)")
            }
        }
        #expect(refused >= 4, "\(format): the damage is found at all")
    }
}
