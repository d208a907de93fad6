import Foundation
import QieEmulator
import QiePipeline
import QieTestSupport
import Synchronization
import Testing

/// An emulator whose "edit" is the negative of what it was sent.
private func withNegativeEmulator(_ body: (EditEmulator, String) async throws -> Void) async throws {
    let emulator = EditEmulator(apiKey: "test-key", effect: .negative)
    try await whileRunning({ ready in try await emulator.run(port: 0) { ready($0) } }) { port in
        defer { emulator.release() }
        try await body(emulator, "http://127.0.0.1:\(port)")
    }
}

/// A 160x120 PNG: red and green smooth ramps, blue in 40-pixel squares
/// whose sharp edges show any shift of a resize.
private func detailedPNG() throws -> Data {
    var pixels: [UInt8] = []
    for y in 0..<120 {
        for x in 0..<160 { pixels += [UInt8(x * 255 / 159), UInt8(y * 255 / 119), (x / 40 + y / 40) % 2 == 0 ? 40 : 200] }
    }
    return try Image(pixels: pixels, size: PixelSize(width: 160, height: 120), channels: 3).encoded(EncodeOptions(format: .png))
}

/// A mask for the 160x120 input at `width` x `height`: opaque (keep) on the
/// left quarter, an alpha ramp across the middle, clear (edit) on the right.
private func rampMask(_ width: Int, _ height: Int) throws -> Data {
    var pixels: [UInt8] = []
    for _ in 0..<height {
        for x in 0..<width {
            let alpha = x < width / 4 ? 255 : x >= width * 3 / 4 ? 0 : 255 - (x - width / 4) * 255 / (width / 2)
            pixels += [0, 0, 0, UInt8(alpha)]
        }
    }
    return try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 4).encoded(EncodeOptions(format: .png))
}

/// The image bytes of the data URI in the endpoint's `index`th request, and what precedes them.
private func sentImage(_ emulator: EditEmulator, _ index: Int = 0) throws -> (Data, String) {
    let bodies = emulator.bodies(sentTo: .runpodQwenImageEdit2511)
    try #require(bodies.count > index)
    let body = try #require(try JSONSerialization.jsonObject(with: bodies[index]) as? [String: Any])
    let uri = try #require(((body["input"] as? [String: Any])?["images"] as? [String])?.first)
    let comma = try #require(uri.firstIndex(of: ","))
    return (try #require(Data(base64Encoded: String(uri[uri.index(after: comma)...]))), String(uri[..<comma]))
}

/// The largest difference of any sample between two encoded images of one size.
private func largestDifference(_ a: Data, _ b: Data) throws -> Int {
    let first = try Image.decode(data: a), second = try Image.decode(data: b)
    #expect(first.size == second.size && first.channels == second.channels)
    guard first.size == second.size, first.channels == second.channels else { return .max }
    return zip(try first.pixels(), try second.pixels()).reduce(0) { max($0, abs(Int($1.0) - Int($1.1))) }
}

/// Decodes and encodes of one edit, counted when it was prepared and when it ended.
private struct Counts: Equatable, CustomStringConvertible {
    var prepare: (decodes: Int, encodes: Int)
    var endpoint: (decodes: Int, encodes: Int)
    var finish: (decodes: Int, encodes: Int)
    var description: String { "prepare \(prepare), while at the endpoint \(endpoint), finish \(finish)" }
    static func == (a: Counts, b: Counts) -> Bool {
        a.prepare == b.prepare && a.endpoint == b.endpoint && a.finish == b.finish
    }
}

/// `input` edited by `editor`, with the images it decoded and encoded in
/// each direction: up to `.prepared`, from there to `.fetched`, and after.
private func countedEdit(_ editor: Editor, _ input: EditInput) async throws -> (EditResult, Counts) {
    let count = ImagingCount()
    let marks = Mutex<[(Int, Int)]>([])
    var hooks = EditHooks()
    hooks.events = { event in
        switch event {
        case .prepared, .fetched: marks.withLock { $0.append((count.decodes, count.encodes)) }
        default: break
        }
    }
    let result = try await count.counting { try await editor.edit(input, hooks: hooks) }
    let (prepared, fetched) = try marks.withLock { marks throws -> ((Int, Int), (Int, Int)) in
        try #require(marks.count == 2)
        return (marks[0], marks[1])
    }
    return (
        result,
        Counts(
            prepare: prepared, endpoint: (fetched.0 - prepared.0, fetched.1 - prepared.1),
            finish: (count.decodes - fetched.0, count.encodes - fetched.1))
    )
}

/// A size asked, with how the options fit the input into it.
struct FrameCase: Sendable, CustomTestStringConvertible {
    var size: PixelSize
    var fit: Fit
    var background: PaddingFill
    /// The mask's size: the input's, or half of it (a mask may be scaled).
    var maskSize: PixelSize
    var testDescription: String { "\(size) \(fit) on \(background), mask \(maskSize)" }

    static let all: [FrameCase] = [
        FrameCase(size: PixelSize(width: 240, height: 120), fit: .contain, background: .colour(.white), maskSize: PixelSize(width: 160, height: 120)),
        FrameCase(size: PixelSize(width: 120, height: 120), fit: .cover, background: .colour(.white), maskSize: PixelSize(width: 80, height: 60)),
        FrameCase(
            size: PixelSize(width: 100, height: 160), fit: .contain, background: .colour(Colour(red: 200, green: 30, blue: 90)),
            maskSize: PixelSize(width: 160, height: 120)),
        FrameCase(size: PixelSize(width: 200, height: 200), fit: .contain, background: .colour(.transparent), maskSize: PixelSize(width: 80, height: 60)),
    ]
}

@Suite("One pass per image and direction, through an editor", .serialized, .hangGuard)
struct OnePassEditTests {
    @Test("A size and a mask: what is sent and what comes back match framing to PNG and compositing after restoring, with each image decoded once per direction and one encode each way",
          arguments: FrameCase.all)
    func sizeAndMask(_ example: FrameCase) async throws {
        let input = try detailedPNG()
        let mask = try rampMask(example.maskSize.width, example.maskSize.height)
        try await withNegativeEmulator { emulator, base in
            var options = testOptions(.runpodQwenImageEdit2511, base: base)
            options.format = .png
            options.fit = example.fit
            options.background = example.background
            let (result, counts) = try await Editor.with(options, environment: testEnvironment()) { editor in
                try await countedEdit(editor, EditInput(image: .data(input), size: example.size, mask: .data(mask)))
            }
            // The input and the mask are each decoded once before sending,
            // one image is encoded; the result and the input once after it.
            #expect(counts == Counts(prepare: (2, 1), endpoint: (0, 0), finish: (2, 1)), "\(counts)")
            #expect(result.images.count == 1 && result.images[0].size == example.size && result.source.format == .png)

            // The two steps an edit took before, from the same public calls.
            let png = EncodeOptions(format: .png)
            let frame = ResizeOptions(size: example.size, fit: example.fit, fill: example.background)
            let framed = try ImageProcessor.prepare(data: input, resize: frame, encode: EncodeOptions(format: .png, compression: 1))
            let plan = try options.plan(framed.size, on: .runpodQwenImageEdit2511)
            #expect(plan == result.plan)
            let planned = try ImageProcessor.prepare(
                data: framed.data, resize: ResizeOptions(size: plan.target, fit: plan.fit, fill: example.background), encode: png)
            // What the endpoint received: those pixels, as PNG.
            let (sent, header) = try sentImage(emulator)
            #expect(header == "data:image/png;base64")
            #expect(try largestDifference(sent, planned.data) <= 1)
            // What came back: the emulator's negative of it, restored to the
            // frame, composited over the framed input through the framed mask.
            let edited = try ImageProcessor.negative(
                data: sent, resize: ResizeOptions(size: plan.target, fit: .fill), encode: png)
            let restored = try ImageProcessor.restore(data: edited.data, geometry: planned.geometry, encode: png)
            var maskFrame = frame
            maskFrame.fill = .colour(.transparent)
            let framedMask = try ImageProcessor.prepare(data: mask, resize: maskFrame, encode: EncodeOptions(format: .png, compression: 1))
            let expected = try ImageProcessor.composite(edited: restored.data, original: framed.data, mask: framedMask.data, encode: png)
            #expect(try largestDifference(result.images[0].data, expected.data) <= 2)

            // And in a user's terms: the input kept where the mask is opaque,
            // edited where it is clear.
            let shown = try Image.decode(data: result.images[0].data), original = try Image.decode(data: framed.data)
            let weights = try Image.decode(data: framedMask.data)
            var kept = 0, editedPixels = 0
            for y in stride(from: 4, to: shown.height - 4, by: 7) {
                for x in stride(from: 4, to: shown.width - 4, by: 7) {
                    let alpha = try weights.pixel(x: x, y: y)[3]
                    guard alpha == 255 || alpha == 0 else { continue }
                    let pixel = try shown.pixel(x: x, y: y), source = try original.pixel(x: x, y: y)
                    guard source.count < 4 || source[3] == 255 else { continue }
                    // Away from the frame's padding, where resizes blend the two.
                    let around = try [(x - 4, y), (x + 4, y), (x, y - 4), (x, y + 4)].map { try original.pixel(x: $0.0, y: $0.1) }
                    guard around.allSatisfy({ zip($0.prefix(2), source.prefix(2)).allSatisfy { abs(Int($0) - Int($1)) <= 24 } })
                    else { continue }
                    // Red and green: the smooth ramps, which survive the endpoint's resizes.
                    for (s, o) in zip(pixel.prefix(2), source.prefix(2)) {
                        #expect(abs(Int(s) - (alpha == 255 ? Int(o) : 255 - Int(o))) <= 12, "\(x),\(y): \(pixel) from \(source)")
                    }
                    if alpha == 255 { kept += 1 } else { editedPixels += 1 }
                }
            }
            #expect(kept > 10 && editedPixels > 10)
        }
    }

    @Test("The mask decodes beside the input: a damaged mask is refused before anything is sent; with the input damaged too, the input's error is the one said")
    func damagedMask() async throws {
        let input = try detailedPNG()
        let mask = try rampMask(160, 120)
        let cutMask = mask.prefix(mask.count / 2), cutInput = input.prefix(input.count / 2)
        try await withNegativeEmulator { emulator, base in
            let options = testOptions(.runpodQwenImageEdit2511, base: base)
            try await Editor.with(options, environment: testEnvironment()) { editor in
                let maskError = await #expect(throws: EditError.self) {
                    _ = try await editor.edit(EditInput(image: .data(input), size: PixelSize(width: 240, height: 120), mask: .data(Data(cutMask))))
                }
                guard case .mask(let cause)? = maskError else { Issue.record("\(String(describing: maskError))"); return }
                #expect(cause.kind == .corrupt && cause.reason.contains("corrupt or truncated PNG"), "\(cause)")

                let inputError = await #expect(throws: EditError.self) {
                    _ = try await editor.edit(EditInput(image: .data(Data(cutInput)), size: PixelSize(width: 240, height: 120), mask: .data(Data(cutMask))))
                }
                guard case .input(let cause)? = inputError else { Issue.record("\(String(describing: inputError))"); return }
                #expect(cause.kind == .corrupt, "\(cause)")
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0, "nothing is sent, nothing paid")
        }
    }

    @Test("A JPEG asked at a size goes to the endpoint as JPEG, framed and planned in one pass")
    func jpegAtASize() async throws {
        let input = try photo(400, 300)
        try await withNegativeEmulator { emulator, base in
            let options = testOptions(.runpodQwenImageEdit2511, base: base)
            let (result, counts) = try await Editor.with(options, environment: testEnvironment()) { editor in
                try await countedEdit(editor, EditInput(image: .data(input), size: PixelSize(width: 512, height: 512)))
            }
            #expect(counts == Counts(prepare: (1, 1), endpoint: (0, 0), finish: (1, 1)), "\(counts)")
            let (sent, header) = try sentImage(emulator)
            #expect(header == "data:image/jpeg;base64")
            #expect(try ImageProbe.probe(data: sent).displaySize == result.plan.target)
            #expect(result.images[0].size == PixelSize(width: 512, height: 512))
            #expect(result.source.displaySize == PixelSize(width: 400, height: 300) && result.source.format == .jpeg)
        }
    }

    @Test("Padded and restored without a size or a mask: one decode and one encode each way; a JPEG at a size the endpoint takes is sent as it is")
    func paddedAndUnchanged() async throws {
        try await withNegativeEmulator { emulator, base in
            var options = testOptions(.runpodQwenImageEdit2511, base: base)
            options.restore = .exact
            try await Editor.with(options, environment: testEnvironment()) { editor in
                let (padded, counts) = try await countedEdit(editor, EditInput(image: .data(try photo(400, 300))))
                #expect(counts == Counts(prepare: (1, 1), endpoint: (0, 0), finish: (1, 1)), "\(counts)")
                #expect(padded.images[0].size == PixelSize(width: 400, height: 300))

                // 1024x1280 is one of the endpoint's sizes: the JPEG goes as it is.
                let taken = try photo(1024, 1280)
                let (_, reused) = try await countedEdit(editor, EditInput(image: .data(taken)))
                #expect(reused.prepare == (0, 0), "\(reused)")
                let (sent, header) = try sentImage(emulator, 1)
                #expect(header == "data:image/jpeg;base64" && sent == taken)
            }
        }
    }

    /// How a result is finished, for the preview test.
    struct FinishCase: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var size: PixelSize? = nil
        var mask = false
        var restore: RestoreMode? = nil
        var format: OutputFormat? = .png
        var keepResultBytes = false

        static let all: [FinishCase] = [
            FinishCase(testDescription: "framed, restored and composited", size: PixelSize(width: 240, height: 120), mask: true),
            FinishCase(testDescription: "padded and restored", restore: .exact),
            FinishCase(testDescription: "encoded again from its pixels"),
            FinishCase(testDescription: "converted to JPEG", format: .jpeg),
            FinishCase(testDescription: "the endpoint's own bytes kept", format: nil, keepResultBytes: true),
        ]
    }

    @Test("A preview beside each result, on every way a result is finished: the result's bytes unchanged, no decode added, the preview the result shrunk",
          arguments: FinishCase.all)
    func preview(_ example: FinishCase) async throws {
        let input = try detailedPNG()
        let mask = try rampMask(160, 120)
        try await withNegativeEmulator { _, base in
            var options = testOptions(.runpodQwenImageEdit2511, base: base)
            options.format = example.format
            options.restore = example.restore
            options.keepResultBytes = example.keepResultBytes
            let edit = EditInput(image: .data(input), size: example.size, mask: example.mask ? .data(mask) : nil)
            let (plain, plainCounts) = try await Editor.with(options, environment: testEnvironment()) { editor in
                try await countedEdit(editor, edit)
            }
            // Lossless, so it can be compared with the result shrunk sample for sample.
            options.preview = PreviewOptions(side: 64, encode: EncodeOptions(format: .png))
            let (shown, counts) = try await Editor.with(options, environment: testEnvironment()) { editor in
                try await countedEdit(editor, edit)
            }
            #expect(plain.images[0].preview == nil)
            #expect(shown.images[0].data == plain.images[0].data, "the result is what it is without a preview")
            #expect(counts.finish.decodes == plainCounts.finish.decodes, "\(counts) against \(plainCounts)")
            #expect(counts.finish.encodes == plainCounts.finish.encodes + 1, "\(counts) against \(plainCounts)")

            let result = shown.images[0]
            let preview = try #require(result.preview)
            let info = try ImageProbe.probe(data: preview)
            let box = try #require(options.preview).box(for: result.size)
            #expect(info.format == .png)
            #expect(max(info.displaySize.width, info.displaySize.height) == 64)
            #expect(info.displaySize.width <= box.width && info.displaySize.height <= box.height)
            if example.keepResultBytes {
                // Checked at the fraction of its size the preview needs, and shrunk as a prepare shrinks.
                let shrunk = try ImageProcessor.prepare(
                    data: result.data, resize: ResizeOptions(size: box, fit: .inside), encode: EncodeOptions(format: .png))
                #expect(try largestDifference(preview, shrunk.data) <= 1)
                return
            }
            // The result as delivered, each preview pixel the mean of the block it covers.
            let delivered = try Image.decode(data: result.data)
            let averaged = boxAverage(
                try delivered.pixels(), width: delivered.width, height: delivered.height, channels: delivered.channels,
                to: (info.displaySize.width, info.displaySize.height))
            let samples = try Image.decode(data: preview).pixels()
            #expect(samples.count == averaged.count)
            // Made from the pixels before they were encoded: a JPEG's own loss, averaged, is all that differs.
            let largest = zip(samples, averaged).map { abs(Int($0) - Int($1)) }.max() ?? .max
            #expect(largest <= (result.format == .jpeg ? 4 : 1), "\(largest)")
        }
    }
}
