import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QieImaging
import QieTestSupport
import Testing

/// The gateway's page as a person sees it in a browser: headless Chromium
/// opens `/gateway#key=KEY` on a `qie serve` that made a few edits.
@Suite("qie serve's page in a browser", .serialized)
struct GatewayPageCLITests {
    static let chromium = "/usr/bin/chromium"

    /// Runs headless Chromium on `address` with `arguments`; what it wrote on
    /// standard output, and on standard error (its console among it). Both
    /// go to files: helpers Chromium leaves behind may hold a pipe open.
    func chromium(_ arguments: [String], work: String, name: String, address: String) async throws -> (output: String, errors: String) {
        let output = work + "/\(name).out", errors = work + "/\(name).err"
        for path in [output, errors] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let browser = Process()
        browser.executableURL = URL(fileURLWithPath: Self.chromium)
        browser.arguments =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + work + "/\(name)-profile",
                "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
            ] + arguments + [address]
        browser.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        browser.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try browser.run()
        await offThePool { browser.waitUntilExit() }
        return (try String(contentsOfFile: output, encoding: .utf8), try String(contentsOfFile: errors, encoding: .utf8))
    }

    @Test("/gateway#key=KEY shows the day's spending, the budgets left, the requests with their outcomes and their results' thumbnails, without a script error")
    func page() async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.chromium),
            "Chromium is needed to look at the page: scripts/ensure-deps.sh chromium (make test runs it)")
        let work = try folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        // Red in, its negative (cyan) out: the thumbnails are the results'.
        let red = try Image(pixels: [UInt8]((0..<(320 * 240)).flatMap { _ in [200, 40, 40] as [UInt8] }), size: PixelSize(width: 320, height: 240), channels: 3)
            .encoded(EncodeOptions(format: .png))
        let emulator = try EmulatorProcess(effect: "negative")
        let key = "page-cli-key-\(UUID().uuidString.prefix(8))"
        let gateway = try GatewayProcess(
            serving: [
                "--provider", "runpod-qwen-image-edit-2511", "--state", work + "/state", "--max-cost-per-day", "1",
                "--max-cost-per-user-per-day", "0.03",
            ],
            environment: ["QIE_GATEWAY_KEYS": key, "RUNPOD_API_KEY": "cli-key", "QIE_RUNPOD_BASE_URL": emulator.address])
        func edit(user: String) async throws -> HTTPAnswer {
            let form = multipart { form in
                form.file("image", red)
                form.field("prompt", "turn it over")
                form.field("user", user)
            }
            var request = URLRequest(url: URL(string: gateway.address + "/v1/images/edits")!)
            request.httpMethod = "POST"
            request.setValue(form.contentType, forHTTPHeaderField: "Content-Type")
            request.setValue("Bearer " + key, forHTTPHeaderField: "Authorization")
            request.httpBody = form.bytes
            return try await send(request)
        }
        #expect(try await edit(user: "alice").status == 200)
        #expect(try await edit(user: "bob").status == 200)
        let refused = try await edit(user: "alice")
        #expect(refused.status == 429, "\(String(decoding: refused.body, as: UTF8.self))")

        let page = gateway.address + "/gateway#key=" + key
        let dump = try await chromium(["--dump-dom"], work: work, name: "dom", address: page)
        let dom = dump.output
        #expect(dom.contains("data-rendered=\"yes\""), "\(dom)\n--- chromium:\n\(dump.errors)")
        #expect(!dom.contains("data-error"), "\(dom)")
        #expect(!dump.errors.contains("Uncaught"), "\(dump.errors)")
        // The day's spending, by user, and the budgets left.
        #expect(dom.contains(">$0.04<") && dom.contains(">spent today<"), "\(dom)")
        #expect(dom.contains(">alice<") && dom.contains(">bob<"))
        #expect(dom.contains(">user alice<") && dom.contains(">$0.01<"), "\(dom)")
        // The requests with their outcomes, the refused one among them.
        #expect(dom.components(separatedBy: "class=\"outcome ok\">200<").count - 1 == 2, "\(dom)")
        #expect(dom.contains("class=\"outcome warn\">429 gateway_budget_reached<"), "\(dom)")
        // The key left the address bar, and is nowhere in the page.
        #expect(!dom.contains(key))

        let shot = work + "/page.png"
        let screenshot = try await chromium(
            ["--screenshot=" + shot, "--window-size=1400,1400"], work: work, name: "shot", address: page)
        let image = try Image.decode(file: shot)
        // Sampled every 8 pixels: each sample is read through libvips on its own.
        var cyan = 0
        for y in stride(from: 0, to: image.height, by: 8) {
            for x in stride(from: 0, to: image.width, by: 8) {
                let pixel = try image.pixel(x: x, y: y)
                if zip(pixel, [55, 215, 215] as [UInt8]).allSatisfy({ abs(Int($0) - Int($1)) < 30 }) { cyan += 1 }
            }
        }
        // Two 85x64 thumbnails (the page shows results 64 pixels high) hold about 160 samples; nothing else on the page is cyan.
        #expect(cyan > 100, "\(cyan) cyan samples\n\(screenshot.errors)")
    }
}
