import Foundation
import QieImaging
import Testing

/// A smooth 97x61 image (sums of low-frequency waves, well inside 0...255,
/// so the cubic's overshoot is never clipped): what a photo looks like to a
/// resampler.
private func smooth(_ x: Int, _ y: Int) -> [UInt8] {
    let (u, v) = (Double(x), Double(y))
    return [
        128 + 60 * sin(u / 9) * cos(v / 13),
        128 + 50 * cos(u / 17 + v / 11),
        90 + Double(x + y) * 0.5,
    ].map { UInt8($0.rounded()) }
}

/// The Catmull-Rom cubic (libvips' bicubic interpolator), or Lanczos 3,
/// sampled with centres aligned and edges extended, in double precision,
/// without rounding between the axes: the reference for the separable
/// resampler.
private func reference(
    width: Int, height: Int, from source: [UInt8], size: PixelSize, channels: Int, lanczos: Bool = false
) -> [UInt8] {
    func taps(_ out: Int, _ inSize: Int, _ outSize: Int) -> [(Int, Double)] {
        let scale = Double(inSize) / Double(outSize), stretch = max(1, scale)
        let centre = (Double(out) + 0.5) * scale - 0.5
        func kernel(_ d: Double) -> Double {
            let x = abs(d)
            if lanczos { return x == 0 ? 1 : x < 3 ? 3 * sin(.pi * x) * sin(.pi * x / 3) / (.pi * .pi * x * x) : 0 }
            return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? ((-0.5 * x + 2.5) * x - 4) * x + 2 : 0
        }
        // A side that shrinks widens the kernel by its factor.
        let support = (lanczos ? 3 : 2) * stretch
        let near = Int((centre - support).rounded(.up))...Int((centre + support).rounded(.down))
        let weights = near.map { kernel((Double($0) - centre) / stretch) }
        let total = weights.reduce(0, +)
        return zip(near, weights).map { (min(max($0, 0), inSize - 1), $1 / total) }
    }
    var out: [UInt8] = []
    for y in 0..<size.height {
        let down = taps(y, height, size.height)
        for x in 0..<size.width {
            let across = taps(x, width, size.width)
            for c in 0..<channels {
                var sum = 0.0
                for (row, wy) in down {
                    for (column, wx) in across { sum += wy * wx * Double(source[(row * width + column) * channels + c]) }
                }
                out.append(UInt8(min(max(sum.rounded(), 0), 255)))
            }
        }
    }
    return out
}

/// The largest difference between two runs of samples of the same length.
private func largestDifference(_ samples: [UInt8], _ expected: [UInt8]) -> Int {
    zip(samples, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
}

@Suite("Enlarging: libvips' bicubic, in two separable passes")
struct EnlargeTests {
    @Test(
        "An enlarged image is the Catmull-Rom cubic of its pixels, exactly at the size asked, within one level of the double-precision reference",
        arguments: [PixelSize(width: 121, height: 76), PixelSize(width: 233, height: 150), PixelSize(width: 97, height: 200)])
    func matchesReference(_ size: PixelSize) throws {
        let source = Make.pixels(97, 61, paint: smooth)
        let input = try Make.encoded(97, 61, format: .png, paint: smooth)
        let prepared = try ImageProcessor.prepare(
            data: input, resize: ResizeOptions(size: size, fit: .fill), encode: EncodeOptions(format: .png))
        let image = try Image.decode(data: prepared.data)
        #expect(image.size == size && prepared.size == size)
        let pixels = try image.pixels()
        let expected = reference(width: 97, height: 61, from: source, size: size, channels: 3)
        #expect(pixels.count == expected.count)
        let largest = largestDifference(pixels, expected)
        #expect(largest <= 1, "largest difference \(largest)")
        // The first and last pixels take the edge's own samples (extended, not black).
        #expect(abs(Int(pixels[0]) - Int(source[0])) <= 2 && abs(Int(pixels.last!) - Int(source.last!)) <= 2)
    }

    @Test("An enlarged image keeps its metadata: a Display P3 photo is still converted to sRGB after enlarging")
    func keepsProfile() throws {
        let prepared = try ImageProcessor.prepare(
            file: Fixture.path("p3-green.png"), resize: ResizeOptions(size: PixelSize(width: 80, height: 64), fit: .fill),
            encode: EncodeOptions(format: .png))
        let image = try Image.decode(data: prepared.data)
        #expect(image.size == PixelSize(width: 80, height: 64))
        // Stored as P3 (117, 251, 76); sRGB green once its profile is applied.
        try expectPixel(image, 40, 32, [0, 255, 0], tolerance: 6)
    }

    @Test("Grey inputs enlarge too; a side that shrinks goes through libvips' own resize, at the size asked")
    func otherShapes() throws {
        let grey = try Make.encoded(40, 30, channels: 1, format: .png) { x, _ in [UInt8(x * 6)] }
        let up = try Image.decode(
            data: try ImageProcessor.prepare(
                data: grey, resize: ResizeOptions(size: PixelSize(width: 80, height: 60), fit: .fill),
                encode: EncodeOptions(format: .png)
            ).data)
        #expect(up.size == PixelSize(width: 80, height: 60))
        // A ramp stays a ramp: 6 levels per source pixel, 3 per enlarged one.
        let row = try up.pixels().prefix(up.size.width * up.channels)
        let samples = stride(from: 0, to: row.count, by: up.channels).map { Int(row[row.startIndex + $0]) }
        #expect(samples[40] - samples[20] >= 55 && samples[40] - samples[20] <= 65, "\(samples)")

        let mixed = try ImageProcessor.prepare(
            data: try Make.encoded(97, 61, format: .png, paint: smooth),
            resize: ResizeOptions(size: PixelSize(width: 150, height: 40), fit: .fill), encode: EncodeOptions(format: .png))
        #expect(mixed.size == PixelSize(width: 150, height: 40))
    }
}

@Suite("Shrinking a result back: Lanczos 3, in two separable passes")
struct ShrinkBackTests {
    @Test(
        "A result restored to a smaller input is the Lanczos 3 of its pixels, exactly at the input's size, within one level of the double-precision reference",
        arguments: [PixelSize(width: 160, height: 100), PixelSize(width: 121, height: 77), PixelSize(width: 291, height: 183)])
    func matchesReference(_ resultSize: PixelSize) throws {
        // The input was 97x61, sent stretched to the result's size.
        let input = try Make.encoded(97, 61, format: .png, paint: smooth)
        let sent = try ImageProcessor.prepare(
            data: input, resize: ResizeOptions(size: resultSize, fit: .fill), encode: EncodeOptions(format: .png))
        let result = Make.pixels(resultSize.width, resultSize.height) { x, y in smooth(x * 2 / 3, y * 3 / 4) }
        let restored = try ImageProcessor.restore(
            data: try Image(pixels: result, size: resultSize, channels: 3).encoded(EncodeOptions(format: .png)),
            geometry: sent.geometry, encode: EncodeOptions(format: .png))
        let image = try Image.decode(data: restored.data)
        #expect(image.size == PixelSize(width: 97, height: 61))
        let expected = reference(
            width: resultSize.width, height: resultSize.height, from: result, size: image.size, channels: 3, lanczos: true)
        let pixels = try image.pixels()
        #expect(pixels.count == expected.count)
        let largest = largestDifference(pixels, expected)
        #expect(largest <= 1, "largest difference \(largest)")
    }

    @Test("A grey result shrinks the same way")
    func grey() throws {
        let sent = try ImageProcessor.prepare(
            data: try Make.encoded(40, 30, channels: 1, format: .png) { x, _ in [UInt8(x * 6)] },
            resize: ResizeOptions(size: PixelSize(width: 100, height: 75), fit: .fill), encode: EncodeOptions(format: .png))
        let ramp = Make.pixels(100, 75, channels: 1) { x, _ in [UInt8(x * 255 / 99)] }
        let restored = try Image.decode(
            data: try ImageProcessor.restore(
                data: try Image(pixels: ramp, size: PixelSize(width: 100, height: 75), channels: 1).encoded(
                    EncodeOptions(format: .png)),
                geometry: sent.geometry, encode: EncodeOptions(format: .png)
            ).data)
        #expect(restored.size == PixelSize(width: 40, height: 30))
        let expected = reference(width: 100, height: 75, from: ramp, size: restored.size, channels: 1, lanczos: true)
        // Every band of each pixel is the grey shrunk.
        let pixels = try restored.pixels(), bands = restored.channels
        #expect(pixels.count == expected.count * bands)
        let largest = largestDifference(pixels, expected.flatMap { [UInt8](repeating: $0, count: bands) })
        #expect(largest <= 1, "largest difference \(largest)")
    }
}
