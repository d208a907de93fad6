import Foundation
import QieImaging

/// The image work of one padded edit through the gateway, step by step and
/// in-process, as `scripts/bench-gateway.sh` measures it end to end: a
/// 1024x768 photo prepared for an endpoint that takes 1280x1024 (decoded,
/// enlarged with the cubic, padded, encoded as the request's JPEG), a mask
/// made for it (a PNG with a soft clear ellipse) read into weights, and the
/// endpoint's 1280x1024 JPEG finished: restored to 1024x768 with Lanczos 3,
/// encoded for the client with a 256-pixel preview, and the same composited
/// through the mask over the original. Each step is offloaded as the
/// gateway offloads it (alone, it has every core). Prints the median and
/// the fastest of each step over `rounds` (`quick`: 3 rounds, to keep it
/// running).
func finishingSteps(rounds: Int) async throws {
    let (width, height) = (1024, 768)
    let pixels = ResamplingTiming.texture(width: width, height: height)
    let photo = try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .jpeg, quality: 90))
    // An OpenAI-style mask: opaque (keep) but for a clear ellipse (edit) with a soft edge.
    var mask = [UInt8](repeating: 0, count: width * height * 4)
    for y in 0..<height {
        for x in 0..<width {
            let dx = Double(x - width / 2) / Double(width / 4), dy = Double(y - height / 2) / Double(height / 4)
            let edge = ((dx * dx + dy * dy).squareRoot() - 1) * 40
            mask[(y * width + x) * 4 + 3] = UInt8(max(0, min(255, 128 + edge * 127)))
        }
    }
    let maskData = try Image(pixels: mask, size: PixelSize(width: width, height: height), channels: 4)
        .encoded(EncodeOptions(format: .png))
    let info = try ImageProbe.probe(data: photo)
    let frame = PixelSize(width: 1280, height: 1024)
    let request = EncodeOptions(format: .jpeg, quality: 95, optimizeCoding: false)
    let answer = EncodeOptions(format: .jpeg)
    let prepare: @Sendable () throws -> PreparedImage = {
        try ImageProcessor.prepare(data: photo, framedIn: nil, reusingUnchanged: true) { _, _ in
            (ResizeOptions(size: frame, fit: .contain), request)
        }
    }
    let sent = try prepare()
    let weights = try ImageProcessor.maskWeights(data: maskData, for: info, framedIn: nil)
    // The endpoint's answer: the frame sent, as an endpoint that changed nothing would return it.
    let result = sent.data
    let steps: [(String, @Sendable () throws -> Void)] = [
        ("prepare: decode, enlarge, pad, encode", { _ = try prepare() }),
        ("mask weights", { _ = try ImageProcessor.maskWeights(data: maskData, for: info, framedIn: nil) }),
        ("finish: decode, restore, encode, preview", {
            _ = try ImageProcessor.finish(
                result: result, restoring: sent.geometry, compositing: nil, encode: answer, preview: PreviewOptions())
        }),
        ("finish through the mask", {
            _ = try ImageProcessor.finish(
                result: result, restoring: sent.geometry,
                compositing: CompositeLayers(original: photo, framedIn: nil, mask: weights), encode: answer,
                preview: PreviewOptions())
        }),
    ]
    print("the gateway's image work for a 1024x768 photo padded to 1280x1024, in-process (ms, \(rounds) rounds)")
    print("  step                                        median   fastest")
    for (name, step) in steps {
        var times: [Double] = []
        for _ in 0..<rounds {
            let start = DispatchTime.now().uptimeNanoseconds
            try await ImagingRuntime.offload(step)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        print(String(format: "  %@ %8.2f  %8.2f", name.padding(toLength: 42, withPad: " ", startingAt: 0), times[times.count / 2], times[0]))
    }
}

/// qie's Lanczos 3 shrink beside libvips 8.14's own (`vips_resize`, whose
/// default kernel is Lanczos 3) on the same image in memory, in one run, on
/// one worker thread and on two; and qie's cubic enlargement. The restore
/// of a padded result is such a shrink.
func resamplingRatios(rounds: Int) throws {
    print("resampling a 1280x960 image in memory (ms, median of \(rounds))")
    print("                                   threads       qie   libvips  qie/libvips")
    for threads in [1, 2] {
        let timing = try ResamplingTiming.measure(rounds: rounds, threads: threads)
        print(
            String(
                format: "  Lanczos 3 to 1024x768 %15d %9.2f %9.2f %11.2fx", threads, timing.shrink, timing.libvipsShrink,
                timing.shrink / timing.libvipsShrink))
        print(String(format: "  cubic to 1600x1200 %18d %9.2f", threads, timing.enlarge))
    }
}
