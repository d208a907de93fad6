import Foundation
import QieClient
import QieEmulator
import QieImaging
import QiePipeline
import QieProviders
import Synchronization
import Testing

/// The hash as coreutils' sha256sum computes it (an independent implementation).
func sha256sum(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}

/// A new temporary folder.
func folder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("qie-edit-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes a JPEG of the given size (creating folders).
func write(_ width: Int, _ height: Int, to path: String, colour: (UInt8, UInt8) = (200, 40)) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let pixels = [UInt8]((0..<(width * height)).flatMap { i in [UInt8(i % 256), colour.0, colour.1] })
    try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .jpeg)).write(to: URL(fileURLWithPath: path))
}

@Suite("Editing a folder against the emulator", .serialized)
struct EditBatchTests {
    private func run(
        _ root: String, profile: ProviderProfile, key: String, restore: RestoreMode?, format: OutputFormat?,
        base: String, numImages: Int = 1, flow: ProviderProfile.Flow? = nil
    ) async throws -> (BatchSummary, [PrepareResult]) {
        let (files, _) = InputWalker().walk([root + "/in"])
        let settings = EditSettings(
            target: ProviderTarget(profile: profile),
            request: EditRequest(prompt: "make it night", images: [], seed: 42, numImages: numImages),
            outputFormat: format, restore: restore, concurrency: 2, baseURL: base, apiKey: key, flow: flow,
            wait: WaitPolicy(firstInterval: 0.1, maxInterval: 0.5, fallbackInterval: 5, timeout: 60))
        let client = EditClient(retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01))
        let results = Mutex<[PrepareResult]>([])
        let summary = try await EditBatch(inputs: files, output: try OutputFolder(path: root + "/out"), settings: settings)
            .run(client: client) { result in results.withLock { $0.append(result) } }
        try await client.shutdown()
        return (summary, results.withLock { $0 })
    }

    @Test("Each input is edited once, restored to its own size, converted, and described in a sidecar")
    func editAndRestore() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(400, 300, to: root + "/in/wide.jpg")
        try write(300, 500, to: root + "/in/sub/tall.jpg")
        try Data("broken".utf8).write(to: URL(fileURLWithPath: root + "/in/broken.jpg"))
        try await withEmulator { emulator, base in
            let (summary, results) = try await run(
                root, profile: .runpodQwenImageEdit2511, key: "test-key", restore: .exact, format: .png, base: base)
            #expect(summary.written == 2 && summary.failed == 1 && summary.action == "edited")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 2)
            let wide = try ImageProbe.probe(file: root + "/out/wide.png")
            #expect(wide.format == .png && wide.width == 400 && wide.height == 300)
            let tall = try ImageProbe.probe(file: root + "/out/sub/tall.png")
            #expect(tall.width == 300 && tall.height == 500)
            let sidecar = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/out/wide.json"))) as? [String: Any]
            #expect(sidecar?["endpoint"] as? String == "runpod-qwen-image-edit-2511")
            #expect(sidecar?["prompt"] as? String == "make it night")
            #expect(sidecar?["seed"] as? Int == 42)
            #expect(sidecar?["reportedCostUSD"] as? String == "0.02")
            #expect((sidecar?["requestIDs"] as? [String])?.first?.hasPrefix("sync-") == true)
            #expect(!(String(decoding: try Data(contentsOf: URL(fileURLWithPath: root + "/out/wide.json")), as: UTF8.self)).contains("test-key"))
            #expect(sidecar?["inputSHA256"] as? String == (try sha256sum(root + "/in/wide.jpg")))
            #expect(sidecar?["flow"] as? String == "sync" && sidecar?["submissions"] as? Int == 1)
            let timings = sidecar?["timings"] as? [String: Double]
            #expect(timings.map { ["prepare", "endpoint", "fetch", "finish", "total"].allSatisfy($0.keys.contains) } == true)
            let failure = results.first { $0.input.relativePath == "broken.jpg" }
            guard case .failed(let reason) = failure?.outcome else { Issue.record("broken.jpg did not fail"); return }
            #expect(reason.contains("not an image"))
        }
    }

    @Test("num_images where the endpoint has no such field repeats the request; a wrong key fails each file clearly")
    func repeatsAndRejections() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(256, 256, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            let (summary, _) = try await run(
                root, profile: .runpodQwenImageEdit, key: "test-key", restore: nil, format: .avif, base: base, numImages: 2)
            // Each repeated request is a job of its own.
            #expect(summary.written == 2 && summary.total == 2)
            #expect(emulator.submissions(to: .runpodQwenImageEdit) == 2)
            #expect(try ImageProbe.probe(file: root + "/out/a-1.avif").format == .avif)
            #expect(try ImageProbe.probe(file: root + "/out/a-2.avif").format == .avif)

            let (rejected, results) = try await run(
                root, profile: .lumenfallQwenImageEdit2511, key: "sk-WRONG", restore: nil, format: nil, base: base)
            #expect(rejected.failed == 1)
            guard case .failed(let reason) = results.first?.outcome else { Issue.record("no failure"); return }
            #expect(reason == "lumenfall-qwen-image-edit-2511 answered HTTP 401: Unauthorized: missing or invalid bearer token")
        }
    }
}
