import ArgumentParser
import Foundation
import QieImaging
import QieFiles
import QiePipeline

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each image's format, size, megapixels and orientation, read from its header.",
        discussion: """
            Folders are walked recursively (hidden files skipped). Files that are not images are \
            reported and the walk goes on; the exit status is 1 if any image could not be read.
            """)

    @Argument(help: "Image files or folders.", completion: .file())
    var paths: [String]

    @Flag(help: "One JSON object per file instead of text.")
    var json = false

    @OptionGroup var links: LinkOptions

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one file or folder") }
    }

    func run() throws {
        let (files, problems) = links.walk(paths)
        var failed = problems.count
        for problem in problems {
            TextStream.standardError.write("error \(problem)\n")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let results = ProbeBatch(files: files).run()
        for (file, result) in zip(files, results) {
            switch result {
            case .success(let info):
                if json {
                    let line = ProbeLine(path: file.path, info: info, megapixels: info.megapixels)
                    let data = (try? encoder.encode(line)) ?? Data()
                    TextStream.standardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
                } else {
                    TextStream.standardOutput.write("\(DisplayPath.escape(file.path)): \(describe(info))\n")
                }
            case .failure(let error):
                let skip = file.isSkippable(error)
                if !skip { failed += 1 }
                if json {
                    let line = ProbeLine(path: file.path, error: error.reason, skipped: skip)
                    let data = (try? encoder.encode(line)) ?? Data()
                    TextStream.standardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
                } else {
                    let text = skip ? "skipped, not an image" : "error: \(error.reason)"
                    TextStream.standardOutput.write("\(DisplayPath.escape(file.path)): \(text)\n")
                }
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }

    private func describe(_ info: ImageInfo) -> String {
        var text = "\(info.format.rawValue) \(info.width)x\(info.height) \(megapixels(info.megapixels)) MP"
        if info.orientation != 1 {
            text += ", orientation \(info.orientation) (displayed \(info.displaySize))"
        } else {
            text += ", orientation 1"
        }
        text += ", \(info.colourModel) \(info.bitDepth)-bit"
        if info.hasAlpha { text += ", alpha" }
        if info.isAnimated { text += ", animated" + (info.frameCount.map { " (\($0) frames)" } ?? "") }
        if info.hasICCProfile { text += ", ICC profile" }
        return text
    }

    private func megapixels(_ value: Double) -> String {
        String(format: value < 0.1 ? "%.3f" : "%.2f", value)
    }
}

private struct ProbeLine: Encodable {
    var path: String
    var info: ImageInfo?
    var megapixels: Double?
    var displayWidth: Int?
    var displayHeight: Int?
    var error: String?
    var skipped: Bool?

    init(path: String, info: ImageInfo, megapixels: Double) {
        self.path = path
        self.info = info
        self.megapixels = megapixels
        displayWidth = info.displaySize.width
        displayHeight = info.displaySize.height
    }

    init(path: String, error: String, skipped: Bool) {
        self.path = path
        self.error = error
        self.skipped = skipped
    }
}
