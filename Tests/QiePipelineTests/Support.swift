import Foundation
import QieImaging

/// A fresh folder under the system temporary folder, removed by `remove()`.
struct TemporaryFolder {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("qie-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: url) }

    @discardableResult
    func write(_ relative: String, _ data: Data) throws -> String {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: file)
        return file.path
    }

    func exists(_ relative: String) -> Bool {
        FileManager.default.fileExists(atPath: url.appendingPathComponent(relative).path)
    }

    /// Every file below the folder, relative, sorted.
    func listing() -> [String] {
        let base = url.resolvingSymlinksInPath().path
        let enumerator = FileManager.default.enumerator(atPath: base)
        var files: [String] = []
        while let item = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + item, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(item)
            }
        }
        return files.sorted()
    }
}

enum Sample {
    static func image(_ width: Int, _ height: Int, _ colour: [UInt8] = [200, 60, 20], format: OutputFormat = .jpeg) throws
        -> Data
    {
        let pixels = [UInt8]((0..<(width * height)).flatMap { _ in colour })
        let image = try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: colour.count)
        return try image.encoded(EncodeOptions(format: format))
    }
}
