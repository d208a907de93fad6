import Foundation
import QieEmulator
import QieFiles
import QiePipeline
import QieProviders
import Testing

/// Inputs, references, manifests and prompt files are checked from their
/// status before a byte is read, and read once.
@Suite("Inputs: manifest references, pipes and devices, sizes, prompt files")
struct InputSafetyTests {
    @Test("A manifest naming /etc/passwd or a file outside the folders is refused before anything is sent")
    func manifestReferences() async throws {
        let root = try folder()
        let elsewhere = try folder()
        defer {
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: elsewhere)
        }
        try write(160, 120, to: root + "/in/a.jpg")
        try write(64, 64, to: root + "/in/logo.jpg")
        try write(64, 64, to: elsewhere + "/private.jpg")
        try await withEmulator { emulator, base in
            for reference in ["/etc/passwd", elsewhere + "/private.jpg", root + "/in/../../etc/passwd"] {
                let manifest = root + "/prompts.jsonl"
                try Data("{\"file\": \"in/a.jpg\", \"prompt\": \"add a hat\", \"images\": [\"\(reference)\"]}\n".utf8)
                    .write(to: URL(fileURLWithPath: manifest))
                let error = await #expect(throws: EditError.self) {
                    _ = try await runFolder(root, options: runsync(base)) { $0.manifest = manifest }
                }
                let message = error?.reason(naming: \.name) ?? ""
                #expect(message.contains("outside the input folders and the manifest's folder") && message.contains("allowOutsideReferences"), "\(message)")
            }
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 0)

            // Under the input folder it is sent; outside, only when allowed.
            let manifest = root + "/prompts.jsonl"
            try Data("{\"file\": \"in/a.jpg\", \"prompt\": \"add a hat\", \"images\": [\"in/logo.jpg\"]}\n".utf8)
                .write(to: URL(fileURLWithPath: manifest))
            let inside = try await runFolder(root, options: runsync(base)) { $0.manifest = manifest }
            #expect(inside.summary.batch.written >= 1 && emulator.submissions(to: .runpodQwenImageEdit2511) >= 1)
            try Data("{\"file\": \"in/a.jpg\", \"prompt\": \"add a hat\", \"images\": [\"\(elsewhere)/private.jpg\"]}\n".utf8)
                .write(to: URL(fileURLWithPath: manifest))
            let allowed = try await runFolder(root, options: runsync(base), output: "allowed") {
                $0.manifest = manifest
                $0.allowOutsideReferences = true
            }
            #expect(allowed.summary.batch.failed == 0 && allowed.summary.batch.written >= 1)
        }
    }

    @Test("A FIFO, /dev/zero and a file over maxFileBytes are refused from their status, and the batch goes on")
    func specialFiles() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try write(400, 300, to: root + "/big/b.jpg")
        let fifo = root + "/pipe.jpg"
        let mkfifo = try Process.run(URL(fileURLWithPath: "/usr/bin/mkfifo"), arguments: [fifo])
        mkfifo.waitUntilExit()
        try await withEmulator { emulator, base in
            let size = try #require(try FileManager.default.attributesOfItem(atPath: root + "/big/b.jpg")[.size] as? NSNumber)
            var configuration = EditRunConfiguration(
                inputs: [root + "/in", fifo, "/dev/zero", root + "/big/b.jpg"], output: root + "/out", options: runsync(base))
            configuration.maxFileBytes = size.intValue - 1
            let log = EventLog()
            let summary = try await EditRun(configuration).run(environment: testEnvironment(), events: log.record)
            #expect(summary.batch.written == 1, "a.jpg is still edited")
            let reasons = log.failureLines
            #expect(reasons.contains { $0.hasPrefix("b.jpg: ") && $0.contains("over the \(size.intValue - 1)-byte limit; refused before reading") && $0.contains("maxFileBytes") }, "\(reasons)")
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            // The pipe and the device never became jobs that were sent, and nothing hung on them.
            for name in ["pipe.jpg", "zero"] {
                #expect(reasons.contains("\(name): is not a regular file (device, pipe or socket); copy its content to a file"), "\(reasons)")
            }
            #expect(summary.inputProblems + summary.batch.failed >= 3, "\(reasons)")
        }
    }

    @Test("A prompt file that is a pipe or over 64 KB gives a clear error; a good one is read")
    func promptFiles() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["good", "huge", "piped"] { try write(120, 90, to: root + "/in/\(name).jpg") }
        try Data("make it dusk\n".utf8).write(to: URL(fileURLWithPath: root + "/in/good.txt"))
        try Data(String(repeating: "a", count: 70_000).utf8).write(to: URL(fileURLWithPath: root + "/in/huge.txt"))
        let mkfifo = try Process.run(URL(fileURLWithPath: "/usr/bin/mkfifo"), arguments: [root + "/in/piped.txt"])
        mkfifo.waitUntilExit()
        try await withEmulator { emulator, base in
            let run = try await runFolder(root, options: testOptions(.runpodQwenImageEdit2511, base: base, prompt: nil))
            #expect(run.summary.batch.written == 1 && emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            #expect(run.failures["huge.jpg"]?.contains("huge.txt is over 64 KB") == true, "\(run.failures)")
            #expect(run.failures["piped.jpg"]?.contains("piped.txt is not a regular file") == true, "\(run.failures)")
        }
    }

    @Test("FileContents refuses from the descriptor's status and returns exactly the bytes checked")
    func fileContents() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/f.bin"
        try Data([1, 2, 3, 4]).write(to: URL(fileURLWithPath: path))
        #expect(try FileContents.read(path, maxBytes: 4) == Data([1, 2, 3, 4]))
        #expect(throws: FileContents.Refusal.tooLarge(size: 4, limit: 3)) { try FileContents.read(path, maxBytes: 3) }
        #expect(throws: FileContents.Refusal.notRegular) { try FileContents.read("/dev/zero", maxBytes: 1 << 20) }
        #expect(throws: FileContents.Refusal.folder) { try FileContents.read(root, maxBytes: 1 << 20) }
        #expect(throws: FileContents.Refusal.missing) { try FileContents.read(root + "/none", maxBytes: 1) }
    }
}
