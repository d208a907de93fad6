import Foundation
import QieImaging
import Testing

/// Runs the built `qie` executable, as users do.
struct QieRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum QieBinary {
    /// `qie` is built next to the test bundle.
    static var url: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qie")
    }

    /// Runs `qie` with `arguments` to its end; `launcher` (`["/usr/bin/unshare", "-n"]`)
    /// runs it through another program, and `environment` adds variables.
    static func run(
        _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:], launcher: [String] = []
    ) throws -> QieRun {
        let process = Process()
        process.executableURL = launcher.first.map(URL.init(fileURLWithPath:)) ?? url
        process.arguments = launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [url.path] + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return QieRun(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}

private func makeFolder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("qie-cli-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func image(_ width: Int, _ height: Int, format: OutputFormat) throws -> Data {
    let pixels = [UInt8]((0..<(width * height)).flatMap { i in [UInt8(i % 251), 90, 160] })
    return try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: format))
}

@Suite("qie command", .serialized)
struct CLITests {
    @Test("qie prepare over a folder with odd names and bad files: one line per bad file, the rest written, exit 1")
    func prepareFolder() throws {
        let root = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let input = root + "/photos"
        try FileManager.default.createDirectory(atPath: input + "/nested", withIntermediateDirectories: true)
        try image(300, 200, format: .jpeg).write(to: URL(fileURLWithPath: input + "/with space.jpg"))
        try image(120, 360, format: .png).write(to: URL(fileURLWithPath: input + "/nested/ünïcødé 写真.png"))
        try image(80, 80, format: .webp).write(to: URL(fileURLWithPath: input + "/-dash.webp"))
        try Data().write(to: URL(fileURLWithPath: input + "/empty.png"))
        try Data("<svg xmlns='http://www.w3.org/2000/svg'/>".utf8).write(to: URL(fileURLWithPath: input + "/vector.svg"))
        let before = try FileManager.default.contentsOfDirectory(atPath: input).sorted()

        let run = try QieBinary.run([
            "prepare", input, "--size", "1024x1280", "--fit", "contain", "--format", "jpeg", "--quality", "85",
            "--out", root + "/out",
        ])
        #expect(run.status == 1)
        let errorLines = run.stderr.split(separator: "\n")
        #expect(errorLines.count == 2, "stderr: \(run.stderr)")
        #expect(errorLines.contains { $0.contains("empty.png") && $0.contains("empty") })
        #expect(errorLines.contains { $0.contains("vector.svg") && $0.contains("SVG is not accepted") })
        #expect(run.stdout.contains("prepared 3 of 5 files"))
        for name in ["with space.jpg", "nested/ünïcødé 写真.jpg", "-dash.jpg"] {
            let info = try ImageProbe.probe(file: root + "/out/" + name)
            #expect(info.width == 1024 && info.height == 1280 && info.format == .jpeg, "\(name)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: input).sorted() == before)
        let everything = try FileManager.default.subpathsOfDirectory(atPath: root).filter { !$0.hasPrefix("photos") }
        #expect(Set(everything) == ["out", "out/with space.jpg", "out/nested", "out/nested/ünïcødé 写真.jpg", "out/-dash.jpg"])
    }

    @Test("A folder with no images at all is reported, not a crash")
    func noImagesAtAll() throws {
        let root = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Data("hi".utf8).write(to: URL(fileURLWithPath: root + "/notes.txt"))
        try Data("hi".utf8).write(to: URL(fileURLWithPath: root + "/fake.png"))
        let run = try QieBinary.run(["prepare", root, "--size", "64x64", "--out", root + "/out"])
        #expect(run.status == 1, "exit \(run.status): \(run.stderr)")
        #expect(run.stdout.contains("prepared 0 of 2 files"))
        #expect(run.stderr.contains("fake.png: not an image"))
    }

    @Test("A file named with a leading dash is taken as a file after --")
    func leadingDash() throws {
        let root = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try image(64, 48, format: .png).write(to: URL(fileURLWithPath: root + "/-x.png"))
        let run = try QieBinary.run(["prepare", "--size", "32x32", "--out", "out", "--", "-x.png"], in: root)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(FileManager.default.fileExists(atPath: root + "/out/-x.png"))
    }

    @Test("qie probe prints one line per file and reports non-images without stopping")
    func probe() throws {
        let root = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try image(640, 480, format: .jpeg).write(to: URL(fileURLWithPath: root + "/a.jpg"))
        try Data("hello".utf8).write(to: URL(fileURLWithPath: root + "/b.png"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: root + "/notes.txt"))
        let run = try QieBinary.run(["probe", root])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasSuffix("a.jpg: jpeg 640x480 0.31 MP, orientation 1, ycbcr 8-bit"))
        #expect(lines[1].contains("b.png: error: not an image"))
        #expect(lines[2].contains("notes.txt: skipped"))
        #expect(run.status == 1)

        let json = try QieBinary.run(["probe", "--json", root + "/a.jpg"])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let info = object?["info"] as? [String: Any]
        #expect(info?["width"] as? Int == 640)
        #expect(object?["megapixels"] as? Double == 0.3072)
    }

    @Test("Bad options are refused with the value and what is accepted")
    func badOptions() throws {
        let cases: [([String], String)] = [
            (["prepare", "x.jpg", "--out", "o", "--size", "10xx"], "--size must be WxH"),
            (["prepare", "x.jpg", "--out", "o", "--format", "bmp"], "--format must be jpeg, jpg, png, webp, avif or gif"),
            (["prepare", "x.jpg", "--out", "o", "--quality", "101", "--format", "jpeg"], "--quality must be an integer from 1 to 100; got 101"),
            (["prepare", "x.jpg", "--out", "o", "--background", "plaid"], "--background must be a colour: #rrggbb"),
            (["prepare", "x.jpg", "--out", "o", "--fit", "squash"], "squash"),
        ]
        for (arguments, message) in cases {
            let run = try QieBinary.run(arguments)
            #expect(run.status != 0)
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }

    @Test("--json gives one object per file and a summary")
    func jsonLines() throws {
        let root = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try image(400, 100, format: .png).write(to: URL(fileURLWithPath: root + "/wide.png"))
        let run = try QieBinary.run(["prepare", root + "/wide.png", "--size", "200x200", "--out", root + "/out", "--json"])
        #expect(run.status == 0)
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(first?["status"] as? String == "ok")
        let geometry = (first?["result"] as? [String: Any])?["geometry"] as? [String: Any]
        let padding = geometry?["padding"] as? [String: Any]
        #expect(padding?["top"] as? Int == 75 && padding?["bottom"] as? Int == 75)
        let summary = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]
        #expect(summary?["written"] as? Int == 1)
    }
}
