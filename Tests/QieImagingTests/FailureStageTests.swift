import Foundation
import QieImaging
import Synchronization
import Testing

/// Damaged inputs whose headers are intact, so the damage is only met when
/// pixels are decoded, which libvips does lazily, inside the encoder.
private enum Damaged {
    static func gradientJPEG(_ width: Int, _ height: Int) throws -> Data {
        try Make.encoded(width, height, format: .jpeg) { x, y in [UInt8(x & 255), UInt8(y & 255), 90] }
    }

    static func gradientPNG(_ width: Int, _ height: Int) throws -> Data {
        try Make.encoded(width, height, format: .png) { x, y in [UInt8(x & 255), UInt8(y & 255), UInt8((x ^ y) & 255)] }
    }

    /// The first half of a JPEG: header and part of the scan.
    static func truncatedJPEG(_ width: Int = 256, _ height: Int = 256) throws -> Data {
        let jpeg = try gradientJPEG(width, height)
        return jpeg.prefix(jpeg.count / 2)
    }

    /// A PNG with one byte of its first IDAT flipped, so that chunk's CRC no longer matches.
    static func pngWithBrokenIDAT(_ width: Int = 64, _ height: Int = 64) throws -> Data {
        var bytes = [UInt8](try gradientPNG(width, height))
        let idat = try #require(PNGBytes.chunks(in: bytes).first { $0.type == "IDAT" })
        bytes[idat.offset + 8 + idat.length / 2] ^= 0xFF
        return Data(bytes)
    }

    /// Prepares `data` expecting it to be refused as corrupt input, found at stage load.
    static func failure(
        _ data: Data, resize: ResizeOptions? = nil, encode format: OutputFormat,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ImagingError {
        let error = #expect(throws: ImagingError.self, sourceLocation: sourceLocation) {
            _ = try ImageProcessor.prepare(data: data, resize: resize, encode: EncodeOptions(format: format))
        }
        let found = try #require(error, sourceLocation: sourceLocation)
        #expect(found.kind == .corrupt, "\(found)", sourceLocation: sourceLocation)
        #expect(found.stage == .load, "\(found)", sourceLocation: sourceLocation)
        #expect(found.reason.hasSuffix("; re-export or download it again"), "\(found)", sourceLocation: sourceLocation)
        return found
    }
}

@Suite("Failures typed by stage")
struct FailureStageTests {
    @Test("A truncated JPEG passes the probe, then fails at the encode step as corrupt input at stage load")
    func truncatedJPEGAtEncode() throws {
        let cut = try Damaged.truncatedJPEG()
        // The header is whole: nothing is found before pixels are decoded.
        #expect(try ImageProbe.probe(data: cut).width == 256)
        // No resize, no rotation: the first step that reads pixels is the PNG encoder.
        let reason = try Damaged.failure(cut, encode: .png).reason
        #expect(reason.hasPrefix("corrupt or truncated JPEG: VipsJpeg: "), "\(reason)")
        #expect(!reason.contains("encoding"), "the encoder is not what failed: \(reason)")
    }

    @Test("A PNG with a broken IDAT CRC fails at the encode step as corrupt input at stage load, with libpng's verdict")
    func brokenIDATAtEncode() throws {
        let broken = try Damaged.pngWithBrokenIDAT()
        #expect(try ImageProbe.probe(data: broken).width == 64)
        let reason = try Damaged.failure(broken, encode: .jpeg).reason
        #expect(reason.hasPrefix("corrupt or truncated PNG: vipspng: libpng read error"), "\(reason)")

        // Where pixels are first computed by a copy to memory, the input is
        // found damaged the same way.
        let decoding = #expect(throws: ImagingError.self) { _ = try Image.decode(data: broken) }
        #expect(decoding?.kind == .corrupt)
        #expect(decoding?.stage == .load)
        #expect(decoding?.reason == reason)
    }

    @Test("An encoder that refuses a valid input fails at stage save, not as corrupt input")
    func encoderFailure() throws {
        // WebP stops at 16383 pixels a side; the input is a valid PNG one pixel wider.
        let wide = try Make.solid(16384, 1, [20, 40, 60], format: .png)
        #expect(try Image.decode(data: wide).width == 16384)
        let error = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.prepare(data: wide, resize: nil, encode: EncodeOptions(format: .webp))
        }
        #expect(error?.kind == .processingFailed)
        #expect(error?.stage == .save)
        // The encoder is named: by libvips' own text ("webpsave: image too
        // large"), or by the shim when another test's failure at the same
        // moment took that text from libvips' one shared buffer. Only the
        // decoder check, which runs alone, gives an exact message.
        let reason = error?.reason ?? ""
        #expect(reason.hasPrefix("encoding webp failed: ") && reason.contains("webpsave"), "\(reason)")

        // The same from pixels that never were encoded.
        let image = try Image(pixels: [UInt8](repeating: 9, count: 16384 * 3), size: PixelSize(width: 16384, height: 1), channels: 3)
        let fromPixels = #expect(throws: ImagingError.self) { _ = try image.encoded(EncodeOptions(format: .webp)) }
        #expect(fromPixels?.kind == .processingFailed)
        #expect(fromPixels?.stage == .save)
    }

    @Test("A pixel buffer that does not match its size fails at stage transform")
    func transformFailure() {
        let error = #expect(throws: ImagingError.self) {
            _ = try Image(pixels: [UInt8](repeating: 0, count: 10), size: PixelSize(width: 4, height: 4), channels: 3)
        }
        #expect(error?.kind == .invalidOption)
        #expect(error?.stage == .transform)
        #expect(error?.reason.contains("creating an image from pixels failed: pixel buffer of 10 bytes") == true)
    }

    @Test("Errors found before any image work have no stage")
    func noStage() {
        let html = #expect(throws: ImagingError.self) {
            _ = try ImageProcessor.prepare(
                data: Data("<html>502 Bad Gateway</html>".utf8), resize: nil, encode: EncodeOptions(format: .png))
        }
        #expect(html?.kind == .refusedFormat)
        #expect(html?.stage == nil)
    }

    @Test("Corrupt and valid images prepared at once: each failure carries its own decoder's message")
    func concurrentFailures() throws {
        let truncatedJPEG = try Damaged.truncatedJPEG(320, 240)
        let brokenPNG = try Damaged.pngWithBrokenIDAT(240, 320)
        let jpeg = try Damaged.gradientJPEG(320, 240)
        let png = try Damaged.gradientPNG(240, 320)
        let resize = ResizeOptions(size: PixelSize(width: 120, height: 120))
        let encodings: [OutputFormat] = [.png, .jpeg, .webp]
        // Interleaved, so corrupt JPEGs and PNGs fail side by side.
        let inputs = (0..<48).map { i in ([truncatedJPEG, brokenPNG, jpeg, png][i % 4], encodings[i % 3]) }

        // What each corrupt input says on its own, before the jobs start.
        let jpegReason = try Damaged.failure(truncatedJPEG, resize: resize, encode: .png).reason
        let pngReason = try Damaged.failure(brokenPNG, resize: resize, encode: .png).reason
        #expect(jpegReason.hasPrefix("corrupt or truncated JPEG: VipsJpeg: "))
        #expect(pngReason.hasPrefix("corrupt or truncated PNG: vipspng: "))

        let results = Mutex([Result<PixelSize, ImagingError>?](repeating: nil, count: inputs.count))
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            let (data, format) = inputs[i]
            let result = Result { () throws(ImagingError) in
                try ImageProcessor.prepare(data: data, resize: resize, encode: EncodeOptions(format: format)).size
            }
            results.withLock { $0[i] = result }
            ImagingRuntime.endOfJobOnThisThread()
        }

        for (i, result) in results.withLock({ $0 }).enumerated() {
            switch (i % 4, result) {
            case (0, .failure(let error)?):
                #expect(error.kind == .corrupt && error.stage == .load, "job \(i): \(error)")
                #expect(error.reason == jpegReason, "job \(i), a truncated JPEG, said: \(error.reason)")
                #expect(!error.reason.lowercased().contains("png"), "job \(i), a JPEG, mentions PNG: \(error.reason)")
            case (1, .failure(let error)?):
                #expect(error.kind == .corrupt && error.stage == .load, "job \(i): \(error)")
                #expect(error.reason == pngReason, "job \(i), a broken PNG, said: \(error.reason)")
                #expect(!error.reason.lowercased().contains("jpeg"), "job \(i), a PNG, mentions JPEG: \(error.reason)")
            case (2, .success(let size)?), (3, .success(let size)?):
                #expect(size == resize.size, "job \(i)")
            default:
                Issue.record("job \(i) ended as \(String(describing: result))")
            }
        }
    }
}
