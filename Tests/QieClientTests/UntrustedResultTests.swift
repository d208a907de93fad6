import Foundation
import QieClient
import QieCore
import QieEmulator
import QieImaging
import QiePipeline
import QieProviders
import QieStore
import Testing

/// Results come from the endpoint's answer: their addresses, sizes, counts,
/// download times and bytes are checked before anything is written.
@Suite("Untrusted results: addresses, redirects, counts, sizes, deadlines, bytes", .hangGuard)
struct UntrustedResultTests {
    @Test("Result addresses: http(s) only, no credentials, public hosts unless the endpoint is private or it is allowed")
    func addresses() throws {
        let checks = ResultChecks(endpoint: "https://203.0.113.10")
        for address in [
            "http+unix://%2Ftmp%2Fqie.sock/result.png", "unix:///tmp/qie.sock", "file:///etc/passwd",
            "ftp://203.0.113.9/a.png", "gopher://203.0.113.9/a",
        ] {
            let error = try #require(throws: ClientError.self, "\(address)") { try checks.check(address, endpoint: "runpod") }
            #expect(error.message.contains("http or https only"), "\(error.message)")
        }
        let credentials = try #require(throws: ClientError.self) {
            try checks.check("https://user:hunter2@203.0.113.9/a.png", endpoint: "runpod")
        }
        #expect(credentials.message.contains("user name or password") && !credentials.description.contains("hunter2"))
        for address in [
            "http://127.0.0.1/a.png", "http://localhost:8080/a.png", "http://api.localhost/a.png", "http://10.1.2.3/a.png",
            "http://172.20.0.1/a.png", "http://192.168.1.1/a.png", "http://100.64.0.1/a.png",
            "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/a.png", "http://[::1]/a.png", "http://[fe80::1]/a.png",
            "http://[fd00::1]/a.png", "http://[::ffff:10.0.0.1]/a.png", "http://224.0.0.1/a.png",
        ] {
            let error = try #require(throws: ClientError.self, "\(address)") { try checks.check(address, endpoint: "runpod") }
            #expect(error.message.contains("public addresses only"), "\(error.message)")
            #expect(error.message(naming: { $0 == .allowPrivateResults ? "--allow-private-results" : $0.name }).contains(
                "--allow-private-results fetches it anyway"))
        }
        for address in ["https://203.0.113.9/a.png", "http://198.51.100.7:8080/r/a.webp", "https://[2001:db8::5]/a.png"] {
            try checks.check(address, endpoint: "runpod")
        }
        // An endpoint on a private address (a local emulator) may hand out
        // private results; so may any endpoint when the user allows it.
        try ResultChecks(endpoint: "http://127.0.0.1:8787").check("http://10.1.2.3/a.png", endpoint: "runpod")
        try ResultChecks(allowPrivateAddresses: true, endpoint: "https://203.0.113.10").check(
            "http://169.254.169.254/a.png", endpoint: "runpod")
        // The scheme is checked even then.
        #expect(throws: ClientError.self) {
            try ResultChecks(allowPrivateAddresses: true).check("http+unix://%2Ftmp%2Fx.sock/a", endpoint: "runpod")
        }
    }

    @Test("Results in a format no endpoint returns (TIFF, HEIC) are refused before decoding")
    func formats() async throws {
        try await withTestClient { client in
            let tiff = Data([0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00] + [UInt8](repeating: 0, count: 64))
            let heic = Data([0, 0, 0, 0x18] + Array("ftypheic".utf8) + [0, 0, 0, 0] + Array("mif1heic".utf8) + [UInt8](repeating: 0, count: 32))
            for (data, name) in [(tiff, "TIFF"), (heic, "HEIC")] {
                let error = await #expect(throws: ClientError.self) {
                    _ = try await client.fetch(.inline(data), from: .runpodQwenImageEdit2511)
                }
                #expect(
                    error?.message.contains("the result is \(name), a format runpod-qwen-image-edit-2511 does not return (JPEG, PNG, WebP)") == true,
                    "\(String(describing: error))")
            }
            let big = await #expect(throws: ClientError.self) {
                _ = try await client.fetch(.inline(try photo(64, 64)), from: .runpodQwenImageEdit2511, checks: ResultChecks(maxBytes: 100))
            }
            #expect(big?.message.contains("over the 100-byte limit") == true)
        }
    }

    @Test("A redirect chain ending on a unix socket is refused at that hop; resumed, it is fetched again, never sent again")
    func redirectToUnixSocket() async throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        try await withEmulator { emulator, base in
            emulator.inject([.redirectedResult(hops: 3, location: "http+unix://%2Ftmp%2Fqie-result.sock/result.png")])
            let first = try await runFolder(root, options: runsync(base))
            let reason = first.failures["a.jpg"] ?? ""
            #expect(reason.contains("http+unix") && reason.contains("http or https only"), "\(reason)")
            #expect(first.summary.batch.failed == 1 && emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            #expect(try images(in: root + "/out").isEmpty)

            let again = try await runFolder(root, options: runsync(base)) { $0.retryFailed = true }
            #expect(again.failures["a.jpg"]?.contains("http or https only") == true)
            #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1, "a recorded result is fetched, not paid again")
        }
    }

    @Test("A result address with credentials is refused without showing them")
    func credentials() async throws {
        let (reason, submissions) = try await failedEdit(fault: { base in
            .resultAddress("http://user:hunter2@127.0.0.1:\(URL(string: base)!.port!)/files/a.png")
        })
        #expect(reason.contains("user name or password") && !reason.contains("hunter2"), "\(reason)")
        #expect(submissions == 1)
    }

    @Test("1,000 result URLs for one image asked: an error naming the endpoint; none is recorded or fetched")
    func tooManyResults() async throws {
        let lumenfall = ProviderProfile.lumenfallQwenImageEdit2511
        let (reason, submissions) = try await failedEdit(fault: { _ in .manyResults(1000) }, profile: lumenfall, inspect: { root throws in
            #expect(try Ledger(folder: root + "/out").jobs().first?.resultURLList.isEmpty == true)
        })
        #expect(reason.contains("\(lumenfall.id) answered with 1000 results to a request for 1"), "\(reason)")
        #expect(submissions == 1)
    }

    @Test("A result served at 1 byte a second is cut off at the download deadline, not the idle timeout")
    func slowResult() async throws {
        // Nothing races here: the result needs thousands of seconds at that
        // rate, the deadline 1.5 s (300 s is the idle timeout).
        let (reason, submissions) = try await failedEdit(fault: { _ in .slowResult(bytesPerSecond: 1) }) {
            $0.timeouts.download = 1.5
        }
        #expect(reason.contains("did not arrive within 1.5 s") && reason.contains("downloadTimeout"), "\(reason)")
        #expect(submissions == 1)
    }

    @Test("The download deadline is on the client's clock: a result still arriving is cut off once that clock passes it")
    func downloadDeadline() async throws {
        let clock = ManualClock()
        try await withTestClient(clock: clock) { client in try await withEmulator { emulator, base in
            let profile = ProviderProfile.runpodQwenImageEdit2511
            emulator.inject([.slowResult(bytesPerSecond: 1)])
            let outcome = try await client.send(try build(profile, base: base), to: profile)
            guard case .completed(let images, _, _) = outcome, let result = images.first else { Issue.record("\(outcome)"); return }
            let start = clock.now()
            let error = await #expect(throws: ClientError.self) {
                _ = try await advancingClock(clock) {
                    try await client.fetch(result, from: profile, checks: ResultChecks(deadline: 1.5, endpoint: base))
                }
            }
            #expect(error?.message.contains("did not arrive within 1.5 s; it was cut off") == true, "\(String(describing: error))")
            #expect(error?.message(naming: \.name).contains("downloadTimeout gives downloads longer") == true)
            #expect(clock.now().timeIntervalSince(start) == 1.5)
        } }
    }

    @Test("A 200 MB result is cut off at the cap while it streams; nothing is written")
    func hugeResult() async throws {
        let (reason, submissions) = try await failedEdit(fault: { _ in .hugeResult(bytes: 200_000_000) })
        #expect(reason.contains("over the \(64 << 20)-byte limit") && reason.contains("maxResultBytes"), "\(reason)")
        #expect(submissions == 1)
    }

    /// One input edited synchronously on `profile` with `fault` injected:
    /// the failure's reason and the submissions the emulator counted, after
    /// checking no image was written (and running `inspect` on the folder).
    private func failedEdit(
        fault: (String) -> EmulatedFault, profile: ProviderProfile = .runpodQwenImageEdit2511,
        configure: (inout EditOptions) -> Void = { _ in }, inspect: (String) throws -> Void = { _ in }
    ) async throws -> (reason: String, submissions: Int) {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(160, 120, to: root + "/in/a.jpg")
        var outcome = ("", 0)
        try await withEmulator { emulator, base in
            emulator.inject([fault(base)])
            var options = testOptions(profile, base: base)
            options.flow = .synchronous
            configure(&options)
            let run = try await runFolder(root, options: options)
            #expect(try images(in: root + "/out").isEmpty)
            // Nothing outside the output folder, and the key in no file.
            #expect(try FileManager.default.contentsOfDirectory(atPath: root).sorted() == ["in", "out"])
            for name in FileManager.default.subpaths(atPath: root + "/out") ?? [] {
                let data = (try? Data(contentsOf: URL(fileURLWithPath: root + "/out/" + name))) ?? Data()
                #expect(data.range(of: Data("test-key".utf8)) == nil, "\(name) holds the key")
            }
            try inspect(root)
            outcome = (run.failures["a.jpg"] ?? "", emulator.submissions(to: profile))
        }
        return outcome
    }

    @Test("Results are encoded again from their pixels by default; keepResultBytes writes the endpoint's own bytes")
    func resultBytes() async throws {
        try await withEmulator { _, base in
            for keep in [false, true] {
                let root = try folder()
                defer { try? FileManager.default.removeItem(atPath: root) }
                try write(160, 120, to: root + "/in/a.jpg")
                var options = runsync(base)
                options.keepResultBytes = keep
                let run = try await runFolder(root, options: options)
                #expect(run.summary.batch.written == 1)
                let job = try #require(try Ledger(folder: root + "/out").jobs().first)
                let url = try #require(job.resultURLList.first)
                let served = try await withTestClient { client in
                    try await client.fetch(.url(url), from: .runpodQwenImageEdit2511, checks: ResultChecks(allowPrivateAddresses: true))
                }
                let written = try Data(contentsOf: URL(fileURLWithPath: job.outputPaths[0]))
                #expect((written == served) == keep, "keepResultBytes \(keep)")
                let info = try ImageProbe.probe(data: written)
                let endpoint = try ImageProbe.probe(data: served)
                #expect(info.format == .jpeg && info.width == endpoint.width && info.height == endpoint.height)
            }
        }
    }

    /// Image files (not sidecars or reports) in a folder, recursively.
    private func images(in folder: String) throws -> [String] {
        let names = FileManager.default.subpaths(atPath: folder) ?? []
        return names.filter { [".jpg", ".jpeg", ".png", ".webp"].contains(where: $0.hasSuffix) && !$0.contains("thumb") }
    }
}
