import ArgumentParser
import Foundation
import QieClient
import QieImaging
import QiePipeline
import QieProviders

extension RestoreMode: ExpressibleByArgument {}

struct Edit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Edit images on an endpoint: prepare, send, fetch, convert and restore.",
        discussion: """
            Each input is prepared for the endpoint (see `qie plan`), sent with the prompt, and its \
            result downloaded at once, converted to --format if asked, restored with --restore, and \
            written atomically next to a JSON sidecar (endpoint, prompt, seed, request ids, cost, \
            plan). The key comes from the endpoint's environment variable (see `qie providers`). \
            Synchronous endpoints only for now: RunPod, Oxen.ai's edit, Lumenfall.
            """)

    @Argument(help: "Image files or folders.", completion: .file())
    var inputs: [String]

    @OptionGroup var endpoint: ProviderOptions

    @Option(help: "The edit instruction.")
    var prompt: String

    @Option(help: "Output folder (created if missing).", completion: .directory)
    var out: String

    @Option(name: .customLong("negative-prompt"), help: "What to keep out of the result.")
    var negativePrompt: String?

    @Option(help: "Seed for reproducible results.")
    var seed: Int?

    @Option(name: .customLong("num-images"), help: "Results per input (repeated requests where the endpoint has no such field).")
    var numImages: Int = 1

    @Option(help: "Ask for this exact size (WxH).")
    var size: String?

    @Option(help: "contain (pad, default), cover (crop) or fill (stretch).")
    var fit: Fit = .contain

    @Option(help: "Padding colour, blur or edge (see `qie prepare --help`).")
    var background: String = "white"

    @Option(help: "Format written: jpeg, png, webp, avif or gif (converted locally when the endpoint cannot). Default: as returned.")
    var format: String?

    @Option(help: "Quality 1-100 when converting.")
    var quality: Int?

    @Option(help: "Undo the padding on the result: exact (the input's size) or aspect (its shape at the result's scale).")
    var restore: RestoreMode?

    @Option(name: .customLong("image"), help: "A reference image sent after each input (repeat for several).")
    var references: [String] = []

    @Option(help: "Edits in flight at once.")
    var concurrency: Int = 4

    @Option(name: .customLong("base-url"), help: "Send to this address instead (for example `qie emulate`).")
    var baseURL: String?

    @Flag(help: "One JSON object per file and a summary object.")
    var json = false

    @OptionGroup var limits: LimitOptions

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one file or folder to edit") }
        if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("--prompt is empty; say what to change")
        }
        if let format, OutputFormat(name: format) == nil {
            throw ValidationError("--format must be jpeg, jpg, png, webp, avif or gif; got \"\(format)\"")
        }
        if let quality, !(1...100).contains(quality) {
            throw ValidationError("--quality must be an integer from 1 to 100, got \(quality)")
        }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1, got \(concurrency)") }
        if ![Fit.contain, .cover, .fill].contains(fit) {
            throw ValidationError("--fit for an endpoint must be contain, cover or fill: the endpoint needs its exact size")
        }
        let profile = try endpoint.profile()
        if references.count + 1 > profile.images.maxCount {
            throw ValidationError(
                "\(profile.id) takes at most \(profile.images.maxCount) image\(profile.images.maxCount == 1 ? "" : "s") per request: the input plus \(profile.images.maxCount - 1) --image")
        }
        try checkBeforeReading(
            profile: profile, size: try endpoint.sizeRequest(size: size), fit: fit, request: editRequest(),
            imageCount: references.count + 1)
    }

    private func editRequest() -> EditRequest {
        EditRequest(prompt: prompt, images: [], outputFormat: nil, negativePrompt: negativePrompt, seed: seed, numImages: numImages)
    }

    func run() async throws {
        let profile = try endpoint.profile()
        let environment = ProcessInfo.processInfo.environment
        guard let key = environment[profile.auth.keyVariable], !key.isEmpty else {
            TextStream.standardError.write(
                "error: \(profile.id) needs an API key in \(profile.auth.keyVariable) (read from the environment only)\n")
            throw ExitCode(2)
        }
        let folder: OutputFolder
        do {
            folder = try OutputFolder(path: out)
        } catch {
            TextStream.standardError.write("error \(error)\n")
            throw ExitCode(1)
        }
        let target = ProviderTarget(
            profile: profile, size: try endpoint.sizeRequest(size: size), fit: fit, position: .centre,
            fill: try PaddingFill(parsing: background))
        let settings = EditSettings(
            target: target, request: editRequest(), references: references,
            outputFormat: format.flatMap(OutputFormat.init(name:)), quality: quality, restore: restore,
            limits: limits.limits, concurrency: concurrency,
            baseURL: baseURL ?? environment[profile.baseURLVariable], apiKey: key)
        let (files, problems) = InputWalker(excluding: [out]).walk(inputs)
        for problem in problems { TextStream.standardError.write("error \(problem)\n") }
        let reporter: any BatchReporter = json ? JSONLinesReporter() : LineReporter()
        reporter.start(total: files.count)
        let client = EditClient(connectionsPerHost: max(8, concurrency))
        var summary = await EditBatch(inputs: files, output: folder, settings: settings).run(client: client) {
            reporter.report($0)
        }
        try? await client.shutdown()
        summary.failed += problems.count
        summary.total += problems.count
        reporter.finish(summary, outputFolder: out)
        if !summary.succeeded { throw ExitCode(1) }
    }
}
