// A first program with qie:
//   1. prepare one image for an endpoint and look at what was done to it;
//   2. edit a folder of images on a local emulator of that endpoint;
//   3. stop that run part-way, resume it from its ledger, and check that
//      every image was edited exactly once;
//   4. edit one image held in memory.
// Run it with `swift run` in this folder, or `make example` at the top of the
// repository (which builds it in qie's own .build, where qie is compiled already).

import Foundation
import QieEmulator
import QiePipeline
import Synchronization

/// The endpoint every step uses: Runflow's Qwen Image Edit 2511, whose output
/// follows the input's shape and which answers with a job id to poll.
let endpoint = "runflow"

do {
    try prepareOneImage()
    try await editFolderOnEmulator()
} catch {
    // Every qie error describes itself: the file, what was found, what to do.
    fail("\(error)")
}

// MARK: 1. One image, prepared for the endpoint

func prepareOneImage() throws {
    print("== 1. prepare one image for \(endpoint)")
    let photo = try testImage(width: 640, height: 480, tint: 40)

    // The header alone says what the image is; no pixels are decoded.
    let info = try ImageProbe.probe(data: photo)
    print(
        "probe: \(info.format.displayName) \(info.displaySize), \(info.megapixels) MP, \(info.colourModel) \(info.bitDepth)-bit")

    // The size the endpoint will be asked for, and how the image reaches it.
    let profile = try ProviderCatalog.profile(named: endpoint)
    let plan = try SizePlanner.plan(input: info.displaySize, for: profile)
    // Endpoints with a list of sizes are sent a size field; Runflow's output
    // follows the input, so it is sent none.
    let fields =
        plan.fields.isEmpty ? "no size field" : plan.fields.map { "\($0.name)=\($0.value)" }.joined(separator: ", ")
    print("plan: \(plan.input) -> \(plan.target) \(plan.fit.rawValue), \(fields), result expected at \(plan.expectedOutput)")

    // Prepare it as planned: resized, padded where the shapes differ, re-encoded.
    let prepared = try ImageProcessor.prepare(
        data: photo, resize: ResizeOptions(size: plan.target, fit: plan.fit),
        encode: EncodeOptions(format: .jpeg, quality: 90))
    let g = prepared.geometry
    let padding = "top \(g.padding.top) right \(g.padding.right) bottom \(g.padding.bottom) left \(g.padding.left)"
    print("prepared: \(prepared.size) \(prepared.format.rawValue), \(prepared.data.count) bytes")
    print("geometry: resized to \(g.resized), padding \(padding) (\(percent(g.paddingFraction))), picture at \(g.contentRect)")
    // The geometry is what a later step needs to crop the padding off the
    // edited result, whatever size the endpoint returns it at.
    let crop = g.contentRect(inResultOf: plan.expectedOutput)
    print("restore: crop \(crop) of a \(plan.expectedOutput) result, resize to \(info.displaySize)")
}

// MARK: 2-4. A folder, edited on the emulator, stopped and resumed

func editFolderOnEmulator() async throws {
    print("\n== 2. edit a folder on a local emulator of \(endpoint)")

    // The emulator answers like the real endpoint, 0.3 s after each request.
    let emulator = EditEmulator(latency: .milliseconds(300))
    let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
    let server = Task {
        // Port 0: any free port; the emulator says which once it listens.
        do {
            try await emulator.run(port: 0) { port in portSink.yield(port) }
        } catch is CancellationError {
            // Stopped when the program is done with it.
        } catch {
            FileHandle.standardError.write(Data("emulator: \(error)\n".utf8))
        }
        portSink.finish()  // a server that could not start ends the wait below
    }
    defer { server.cancel() }
    var portReader = ports.makeAsyncIterator()
    guard let port = await portReader.next() else { fail("the emulator did not start") }
    print("emulator listening on 127.0.0.1:\(port)")

    // A folder of test images of several shapes; results go to a folder beside it.
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("qie-edit-folder-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: work) }
    let inputs = work.appendingPathComponent("photos").path
    let output = work.appendingPathComponent("edited").path
    try FileManager.default.createDirectory(atPath: inputs, withIntermediateDirectories: true)
    let shapes = [(640, 480), (480, 640), (800, 450), (500, 500), (900, 300)]
    for (index, (width, height)) in shapes.enumerated() {
        let data = try testImage(width: width, height: height, tint: index * 50)
        try data.write(to: URL(fileURLWithPath: inputs).appendingPathComponent("photo-\(index + 1).jpg"))
    }

    // What every edit asks. The configuration is stored in the output
    // folder's ledger, so a stopped run can be resumed from it alone.
    var options = EditOptions(endpoint: endpoint)
    options.baseURL = "http://127.0.0.1:\(port)"
    options.prompt = "Make it night"
    options.restore = .exact  // crop the padding off and bring back each input's own size
    options.format = .webp
    options.timeouts.pollInterval = 0.2  // the emulator answers in 0.3 s; the 1 s default would mostly wait
    var configuration = EditRunConfiguration(inputs: [inputs], output: output, options: options)
    configuration.concurrency = 2

    // Keys come from the environment only; here the emulator's own key goes
    // into the variable the endpoint reads (RUNFLOW_API_KEY), never printed.
    let profile = try options.profile()
    let environment = [profile.auth.keyVariable: emulator.apiKey]

    // The first run stops after its first finished edit: the edit still in
    // flight finishes (it may be paid for already), no more start.
    let outputs = OutputLog()
    let stop = BatchCancellation()
    let first = try await EditRun(configuration).run(environment: environment, stop: stop) { event in
        outputs.record(event)
        if let line = describe(event) { print(line) }
        if case .done = event { stop.cancel() }
    }
    let firstBatch = first.batch
    print("first run: \(firstBatch.written) edited, \(firstBatch.notStarted) not started, stopped: \(first.stopped)")
    guard first.stopped, firstBatch.written > 0, firstBatch.notStarted > 0 else {
        fail("the first run was meant to stop part-way, but it edited \(firstBatch.written) of \(firstBatch.total)")
    }

    print("\n== 3. resume the run from its ledger")
    // Everything but the keys comes back from the ledger in the output folder.
    // The stored base URL is not the endpoint's documented address: it is
    // given again, as the key goes only where the caller says now.
    let resumed = try await EditRun.resume(folder: output, trust: ResumeTrust(baseURL: options.baseURL))
    let second = try await resumed.run(environment: environment) { event in
        outputs.record(event)
        if let line = describe(event) { print(line) }
    }
    let secondBatch = second.batch
    print(
        "resumed run: \(secondBatch.written) edited, \(secondBatch.earlier) done in the first run, \(secondBatch.failed) failed")
    if let report = second.report { print("report: \(fileName(output))/\(fileName(report))") }

    // Every image edited exactly once: one submission each, no more.
    let submissions = emulator.submissions(to: profile)
    print("emulator received \(submissions) submissions for \(shapes.count) images")
    guard second.succeeded else {
        fail(
            "the resumed run left \(secondBatch.failed) failed, \(secondBatch.held) held and \(secondBatch.notStarted) not started")
    }
    guard secondBatch.earlier == firstBatch.written else {
        fail("the resumed run found \(secondBatch.earlier) jobs done earlier; the first run edited \(firstBatch.written)")
    }
    guard submissions == shapes.count else {
        fail("\(submissions) submissions reached the emulator for \(shapes.count) images: some were sent twice or never")
    }
    // Every output exists, as WebP, at its input's own size.
    let written = outputs.paths
    guard written.count == shapes.count else {
        fail("\(written.count) outputs reported for \(shapes.count) images")
    }
    for (input, result) in written.sorted(by: { $0.key < $1.key }) {
        let before = try ImageProbe.probe(file: input)
        let after = try ImageProbe.probe(file: result)
        let name = fileName(input)
        guard after.displaySize == before.displaySize, after.format == .webp else {
            fail("\(name) is \(before.displaySize) but its result \(result) is \(after.format.displayName) \(after.displaySize)")
        }
        print("checked \(name) \(before.displaySize) -> \(fileName(result)) \(after.displaySize) WebP")
    }
    print("every image was edited exactly once")

    print("\n== 4. one edit in memory: bytes in, bytes out")
    let bytes = try testImage(width: 400, height: 300, tint: 200)
    // `Editor.with` owns the HTTP client for as long as the closure runs.
    let result = try await Editor.with(options, environment: environment) { editor in
        try await editor.edit(EditInput(image: .data(bytes), prompt: "Make it snow"))
    }
    guard let edited = result.images.first else { fail("the in-memory edit returned no image") }
    print("in: \(bytes.count) bytes of JPEG 400x300")
    print("out: \(edited.data.count) bytes of \(edited.format.rawValue) \(edited.size), sent at \(result.plan.target)")
    print("job \(result.requestIDs.joined(separator: ", ")), \(String(format: "%.2f", result.timings.total)) s")
}

// MARK: Helpers

/// A plain line for each run event (a terminal program might draw a progress bar instead).
func describe(_ event: EditRunEvent) -> String? {
    switch event {
    case .started(let total, let endpoint): "started: \(total) jobs on \(endpoint)"
    case .inputProblem(let problem): "error \(problem)"
    // A link leading outside the inputs is not read (EditRunConfiguration.followLinks follows it).
    case .linkSkipped(let link): "warning \(link)"
    case .jobStarted(let job): "start \(job.input.relativePath)"
    // With several endpoints (EditOptions.routing): where the job goes, and the one that refused it before taking it.
    case .routed(let job, let endpoint, let after):
        "routed \(job.input.relativePath) to \(endpoint)" + (after.map { " after \($0.endpoint) refused it: \($0.reason)" } ?? "")
    case .sent(let job, let jobID): "sent \(job.input.relativePath): job \(jobID)"
    case .done(let job, let output):
        // One file per result (one here), and a JSON sidecar saying how it was made.
        "ok \(job.input.relativePath) -> \(output.paths.map(fileName).joined(separator: ", ")), \(fileName(output.sidecar))"
    case .earlier(let job, let output): "done \(job.input.relativePath) -> \(fileName(output)) (earlier run)"
    case .skipped(let job): "skipped \(job.input.relativePath): not an image"
    // Prepared ahead of a free connection, but the run was stopped first.
    case .withdrawn(let job): "not sent \(job.input.relativePath): the run was stopped"
    case .held(let job, let error): "held \(job.input.relativePath): \(error)"
    // Another worker sharing the run's PostgreSQL store has it (see RunStoreSettings).
    case .elsewhere(let job): "elsewhere \(job.input.relativePath): another worker has it"
    case .failed(let job, let error): "error \(job.input.relativePath): \(error)"
    // Emulated edits are priced like real ones, but nobody pays.
    case .cost(_, let amount, let spent): "cost $\(amount) (run total $\(spent))"
    }
}

/// Each input's first output, as the runs report them: written now or in an earlier run.
/// Events arrive from several edits at once, hence the lock.
final class OutputLog: Sendable {
    private let written = Mutex<[String: String]>([:])

    func record(_ event: EditRunEvent) {
        switch event {
        case .done(let job, let output):
            if let first = output.paths.first { written.withLock { $0[job.input.path] = first } }
        case .earlier(let job, let output):
            written.withLock { $0[job.input.path] = output }
        default:
            break
        }
    }

    /// Input path -> output path.
    var paths: [String: String] { written.withLock { $0 } }
}

/// A JPEG of a colour gradient, so resizing and padding are visible in the results.
func testImage(width: Int, height: Int, tint: Int) throws -> Data {
    var pixels: [UInt8] = []
    pixels.reserveCapacity(width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            pixels += [UInt8(x * 255 / width), UInt8(y * 255 / height), UInt8(tint % 256)]
        }
    }
    return try Image(pixels: pixels, size: PixelSize(width: width, height: height), channels: 3)
        .encoded(EncodeOptions(format: .jpeg, quality: 90))
}

func percent(_ fraction: Double) -> String { String(format: "%.1f%%", fraction * 100) }

func fileName(_ path: String) -> String { (path as NSString).lastPathComponent }

/// Ends the program with a message on standard error and a non-zero status.
func fail(_ message: String) -> Never {
    fflush(nil)  // what was printed so far comes first, also through a pipe (as in CI logs)
    FileHandle.standardError.write(Data("edit-folder: \(message)\n".utf8))
    exit(1)
}
