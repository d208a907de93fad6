import Foundation
internal import CVips
internal import CVipsShims

/// qie's resampling timed beside libvips' own on the same image, for the
/// package's micro-benchmarks (`qie-bench finishing`); not part of the API.
package struct ResamplingTiming {
    /// Median milliseconds: qie's Lanczos 3 from 1280x960 to 1024x768.
    package var shrink: Double
    /// The same by libvips' `vips_resize` (Lanczos 3, its default).
    package var libvipsShrink: Double
    /// qie's cubic from 1280x960 to 1600x1200.
    package var enlarge: Double

    /// A photo-like 8-bit RGB texture: smooth waves plus fine detail, so
    /// every codec and resampler does real work.
    package static func texture(width: Int, height: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let (u, v) = (Double(x), Double(y))
                let base = (y * width + x) * 3
                pixels[base] = UInt8(128 + 90 * sin(u / 37) * cos(v / 23))
                pixels[base + 1] = UInt8(128 + 80 * cos(u / 19 + v / 41))
                pixels[base + 2] = UInt8((x ^ y) & 0xFF)
            }
        }
        return pixels
    }

    /// Each of the three made `rounds` times from a photo-like 1280x960
    /// image in memory and computed into memory on `threads` worker threads.
    package static func measure(rounds: Int, threads: Int) throws(ImagingError) -> ResamplingTiming {
        try ImagingRuntime.start()
        let (width, height) = (1280, 960)
        let pixels = texture(width: width, height: height)
        let source = try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3).handle
        let previous = vips_concurrency_get()
        vips_concurrency_set(Int32(threads))
        defer { vips_concurrency_set(previous) }
        func median(_ what: String, _ body: (UnsafeMutablePointer<UnsafeMutablePointer<VipsImage>?>) -> Int32)
            throws(ImagingError) -> Double
        {
            var times: [Double] = []
            for _ in 0..<max(1, rounds) {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try source.apply(what) { _, out in body(out) }.inMemory(what)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            return times.sorted()[times.count / 2]
        }
        return ResamplingTiming(
            shrink: try median("shrinking") { qie_vips_resample(source.pointer, $0, 1024, 768, Int32(QIE_KERNEL_LANCZOS3)) },
            libvipsShrink: try median("resizing") { qie_vips_resize(source.pointer, $0, 0.8, 0.8) },
            enlarge: try median("enlarging") { qie_vips_resample(source.pointer, $0, 1600, 1200, Int32(QIE_KERNEL_CUBIC)) })
    }
}
