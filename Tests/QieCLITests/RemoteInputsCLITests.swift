import Foundation
import QieImaging
import Testing

/// Python's own file server on 127.0.0.1, serving a folder: what `qie edit
/// https://...` fetches from in these tests.
final class FileServer: @unchecked Sendable {
    let process = Process()
    let address: String
    private let errors = Pipe()

    init(folder: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", folder]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = errors
        try process.run()
        // Its first line: "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let banner = firstLine(of: out)
        guard let port = banner.split(separator: " ").drop(while: { $0 != "port" }).dropFirst().first else {
            process.terminate()
            throw ServerStartError(description: "python3 -m http.server printed no port: \(banner)")
        }
        address = "http://127.0.0.1:\(port)"
    }

    /// The requests it logged (one line each on standard error), once it stopped.
    func stop() -> [String] {
        // SIGKILL: a test process may hand its children SIGTERM blocked, which Python then never sees.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.split(separator: "\n").map(String.init).filter { $0.contains("\"GET ") }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

@Suite("qie edit takes inputs given as addresses, fetched as results are")
struct RemoteInputsCLITests {
    @Test("An https:// input is fetched once into the output folder and edited; a private address is refused unless allowed; a failed one is named and the run goes on")
    func editsAddresses() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/site", withIntermediateDirectories: true)
        let pixels = [UInt8]((0..<(300 * 200)).flatMap { _ in [200, 40, 40] as [UInt8] })
        try Image(pixels: pixels, size: PixelSize(width: 300, height: 200), channels: 3)
            .encoded(EncodeOptions(format: .jpeg, quality: 90)).write(to: URL(fileURLWithPath: root + "/site/red barn.jpg"))
        let site = try FileServer(folder: root + "/site")
        let emulator = try EmulatorProcess()
        let photo = site.address + "/red%20barn.jpg"
        let missing = site.address + "/gone.jpg"
        let common = ["--provider", "runpod", "--prompt", "make it night", "--base-url", emulator.address, "--restore", "exact"]
        let key = ["RUNPOD_API_KEY": "cli-key"]

        // Loopback is not the public internet: refused before connecting, with the flag that allows it.
        let (refusedStatus, refused) = try runQie(["edit", photo, "--out", root + "/refused"] + common, environment: key)
        #expect(refusedStatus == 1, "\(refused)")
        #expect(refused.contains("error \(photo): the image address \(photo) is refused: 127.0.0.1 is a loopback address"), "\(refused)")
        #expect(refused.contains("--allow-private-inputs fetches it anyway"), "\(refused)")

        let (status, output) = try runQie(
            ["edit", photo, missing, "--out", root + "/out", "--allow-private-inputs"] + common, environment: key)
        #expect(status == 1, "\(output)")
        #expect(output.contains("error \(missing): the image at \(missing) answered HTTP 404"), "\(output)")
        #expect(output.contains("edited 1 of 2 files"), "\(output)")
        let edited = try ImageProbe.probe(file: root + "/out/red_barn.jpg")
        #expect(edited.width == 300 && edited.height == 200, "\(edited)")

        // Picked up again: done in the earlier run, and not fetched again.
        let (againStatus, again) = try runQie(["edit", photo, "--out", root + "/out", "--allow-private-inputs"] + common, environment: key)
        #expect(againStatus == 0 && again.contains("1 done in an earlier run"), "\(again)")
        // A plan into another folder fetches the address for it, and names the address, not the file.
        let (planStatus, plan) = try runQie(
            ["edit", photo, "--out", root + "/plan", "--allow-private-inputs", "--dry-run"] + common, environment: key)
        #expect(planStatus == 0 && plan.contains("would edit \(photo) as ") && !plan.contains(".qie-inputs"), "\(plan)")
        let requests = site.stop()
        // Fetched once for the output folder, and once more for the plan's own.
        #expect(requests.filter { $0.contains("red%20barn.jpg") }.count == 2, "\(requests)")
        #expect(emulator.count(of: "POST /v2/qwen-image-edit-2511/run -> 200") == 1, "\(emulator.output)")
    }
}
