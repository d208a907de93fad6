import Foundation
import QieImaging
import QiePipeline
import Synchronization
import Testing

@Suite("Preparing a folder")
struct PrepareBatchTests {
    @Test("Good files are written mirrored; bad ones fail with their reason; the batch goes on")
    func mixedBatch() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write("in/wide.jpg", try Sample.image(400, 200))
        try folder.write("in/sub/tall.png", try Sample.image(100, 300, format: .png))
        try folder.write("in/sub/named-wrong.png", try Sample.image(50, 50))  // a JPEG
        try folder.write("in/empty.jpg", Data())
        try folder.write("in/text.png", Data("not a picture".utf8))
        try folder.write("in/README.txt", Data("notes".utf8))
        let truncated = try Sample.image(300, 300, format: .png)
        try folder.write("in/cut.png", truncated.prefix(truncated.count / 3))

        let files = InputWalker().walk([folder.path + "/in"]).files
        let settings = PrepareSettings(
            resize: ResizeOptions(size: PixelSize(width: 128, height: 160)), format: .jpeg, encode: EncodeOptions(format: .jpeg),
            concurrency: 3)
        let results = Mutex<[PrepareResult]>([])
        let summary = try PrepareBatch(inputs: files, output: try OutputFolder(path: folder.path + "/out"), settings: settings)
            .run { result in results.withLock { $0.append(result) } }

        #expect(summary.total == 7)
        #expect(summary.written == 3)
        #expect(summary.failed == 3)
        #expect(summary.skipped == 1)
        #expect(!summary.succeeded)
        #expect(folder.listing().filter { $0.hasPrefix("out/") } == ["out/sub/named-wrong.jpg", "out/sub/tall.jpg", "out/wide.jpg"])
        for name in ["out/wide.jpg", "out/sub/tall.jpg"] {
            let info = try ImageProbe.probe(file: folder.path + "/" + name)
            #expect(info.format == .jpeg && info.width == 128 && info.height == 160)
        }
        let failures = results.withLock { all in
            all.compactMap { result -> (String, String)? in
                if case .failed(let error) = result.outcome { return (result.input.relativePath, error.description) }
                return nil
            }
        }.sorted { $0.0 < $1.0 }
        #expect(failures.map(\.0) == ["cut.png", "empty.jpg", "text.png"])
        #expect(failures[0].1.contains("truncated PNG") || failures[0].1.contains("corrupt"))
        #expect(failures[1].1.contains("empty"))
        #expect(failures[2].1.contains("not an image"))
        // The failure is data: a damaged input, typed by the stage that found it.
        let cut = results.withLock { $0.first { $0.input.relativePath == "cut.png" } }
        guard case .failed(.input(let error))? = cut?.outcome else {
            Issue.record("cut.png did not fail as a damaged input")
            return
        }
        #expect(error.kind == .corrupt && error.stage == .load)
    }

    @Test("Without --format each input keeps its format; HEIC and TIFF would become PNG")
    func keepsFormat() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write("in/a.webp", try Sample.image(64, 64, format: .webp))
        try folder.write("in/b.png", try Sample.image(64, 64, format: .png))
        let files = InputWalker().walk([folder.path + "/in"]).files
        let summary = try PrepareBatch(
            inputs: files, output: try OutputFolder(path: folder.path + "/out"),
            settings: PrepareSettings(resize: ResizeOptions(size: PixelSize(width: 32, height: 32)))
        ).run { _ in }
        #expect(summary.written == 2)
        #expect(try ImageProbe.probe(file: folder.path + "/out/a.webp").format == .webp)
        #expect(try ImageProbe.probe(file: folder.path + "/out/b.png").format == .png)
        #expect(ImageFormat.tiff.defaultOutput == .png && ImageFormat.heic.defaultOutput == .png)
    }

    @Test("A cancelled run starts no more files and says how many were left")
    func cancellation() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        for i in 0..<6 { try folder.write("in/\(i).jpg", try Sample.image(64, 64)) }
        let files = InputWalker().walk([folder.path + "/in"]).files
        let cancellation = BatchCancellation()
        let summary = try PrepareBatch(
            inputs: files, output: try OutputFolder(path: folder.path + "/out"),
            settings: PrepareSettings(concurrency: 1)
        ).run(cancellation: cancellation) { _ in cancellation.cancel() }
        #expect(summary.written == 1)
        #expect(summary.notStarted == 5)
        #expect(!summary.succeeded)
    }
}

@Suite("Architecture")
struct ArchitectureTests {
    @Test("Only the imaging module imports the C modules")
    func cStaysBehindImaging() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let cModules = ["CVips", "CPNG", "CJPEG", "CWebP", "CVipsShims", "CCodecShims"]
        var offenders: [String] = []
        var imagingImports = 0
        let enumerator = FileManager.default.enumerator(atPath: sources.path)
        while let item = enumerator?.nextObject() as? String {
            guard item.hasSuffix(".swift") else { continue }
            let text = try String(contentsOfFile: sources.path + "/" + item, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                guard let index = words.firstIndex(of: "import"), index + 1 < words.count,
                    cModules.contains(words[index + 1])
                else { continue }
                if item.hasPrefix("QieImaging/") {
                    imagingImports += 1
                    #expect(words.first != "public", "\(item) re-exports \(words[index + 1])")
                } else {
                    offenders.append(item)
                }
            }
        }
        #expect(offenders.isEmpty, "C imported outside the imaging module: \(offenders)")
        #expect(imagingImports > 0)
    }
}
