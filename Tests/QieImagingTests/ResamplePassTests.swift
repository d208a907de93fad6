import Foundation
@testable import QieImaging
import Testing

/// qie_vips_resample sums each row across in plain C, with SSSE3 or with
/// AVX2, whichever the CPU has; all three must give the same pixels, so the
/// output does not depend on the machine.
@Suite("Resampling: the same pixels from every way of summing a row", .serialized)
struct ResamplePassTests {
    @Test("Enlarged and shrunk, grey and colour: the plain, SSSE3 and AVX2 passes agree to the byte")
    func passesAgree() throws {
        defer { _ = ImageProcessor.useResamplePass(.fastest) }
        var checked: [ImageProcessor.ResamplePass] = []
        // Images with alpha are resized premultiplied, by libvips.
        for bands in [1, 3] {
            let input = try Image(
                pixels: Make.pixels(203, 151, channels: bands) { x, y in
                    (0..<bands).map { c in UInt8(truncatingIfNeeded: (x &* 73 &+ y &* 151 &+ c &* 29) &* 2_654_435_761 >> 13) }
                }, size: PixelSize(width: 203, height: 151), channels: bands)
            for size in [PixelSize(width: 257, height: 190), PixelSize(width: 131, height: 97), PixelSize(width: 60, height: 45)] {
                func resampled() throws -> [UInt8] {
                    let enlarging = size.width >= input.width
                    let made = try #require(
                        enlarging
                            ? try ImageProcessor.enlarged(input.handle, to: size)
                            : try ImageProcessor.shrunk(input.handle, to: size))
                    return try Image(handle: made, info: nil).pixels()
                }
                try #require(ImageProcessor.useResamplePass(.plain))
                let plain = try resampled()
                // Read back as sRGB: grey comes out as three equal bands.
                #expect(plain.count == size.width * size.height * 3)
                for pass in [ImageProcessor.ResamplePass.ssse3, .avx2] where ImageProcessor.useResamplePass(pass) {
                    #expect(try resampled() == plain, "\(pass) differs from plain C: \(bands) bands to \(size)")
                    if !checked.contains(pass) { checked.append(pass) }
                }
            }
        }
        #if arch(x86_64)
        // Every x86-64 machine qie builds for has SSSE3.
        #expect(checked.contains(.ssse3))
        #endif
    }
}
