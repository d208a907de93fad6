import ArgumentParser
import Dispatch
import Foundation
import QieImaging
import QiePipeline
import QieFiles
import QieProviders

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resize, pad or crop, normalise and re-encode images into an output folder.",
        discussion: """
            Inputs are files and folders (walked recursively, hidden files skipped). Each output \
            mirrors its input's path relative to the folder it was found in, under --out, and is \
            written atomically; inputs are never overwritten and nothing is written outside --out. \
            A file that fails is reported with the reason and the batch goes on; the exit status \
            is 1 if any file failed. EXIF orientation is applied, colour converted to 8-bit sRGB, \
            and metadata stripped (GPS included).
            """)

    /// The library's defaults, which the options below start from.
    static let defaults = (
        settings: PrepareSettings(), resize: ResizeOptions(size: PixelSize(width: 1, height: 1)),
        encode: EncodeOptions(format: .jpeg))

    @Argument(help: "Image files or folders.", completion: .file())
    var inputs: [String]

    @Option(help: "Output folder (created if missing).", completion: .directory)
    var out: String

    @Option(
        name: .customLong("name"),
        help: ArgumentHelp(
            "Name outputs from a template, relative to --out: {dir} (the input's folder under its input folder), {stem} (its name without extension), {ext} (the output format's), {index} (always 1 here). It ends with .{ext}; names that leave --out or meet are refused before any image is read. Default: the input's path and name.",
            valueName: "template"))
    var name: String?

    @Flag(name: .customLong("skip-existing"), help: "Leave inputs whose output is in --out already (counted as skipped; nothing read past the header).")
    var skipExisting = false

    @Option(help: "Target size WxH, for example 1024x1280. Without it images keep their size.")
    var size: String?

    @Option(help: "How to reach --size: contain (pad), cover (crop), fill (stretch), inside, outside.")
    var fit = defaults.resize.fit

    @Option(
        help:
            "Where the image sits when padded or which part a crop keeps: centre, north, northeast, east, southeast, south, southwest, west, northwest; with --fit cover also attention or entropy."
    )
    var position = defaults.resize.position.rawValue

    @Option(help: "Padding for --fit contain: a colour (#rrggbb, #rrggbbaa, r,g,b[,a], white, transparent...), blur or edge.")
    var background = defaults.resize.fill.description

    @Option(help: "Output format: jpeg (jpg), png, webp, avif or gif. Default: the input's (HEIC and TIFF become png).")
    var format: String?

    @Option(help: "Quality 1-100 for jpeg, webp and avif (defaults: 90, 90, 60).")
    var quality: Int?

    @Option(help: "PNG compression level 0-9 (default 6).")
    var compression: Int?

    @Option(help: "Encoder effort: webp 0-6, avif 0-9, gif 1-10.")
    var effort: Int?

    @Flag(help: "Progressive JPEG, interlaced PNG or GIF.")
    var progressive = false

    @Flag(help: "Lossless webp or avif.")
    var lossless = false

    @Option(help: "JPEG chroma subsampling: 420 (smaller, faster) or 444 (full colour resolution).")
    var chroma = defaults.encode.chromaSubsampling ? "420" : "444"

    @Flag(help: "Embed an sRGB ICC profile (all other metadata is always stripped).")
    var keepIcc = false

    @Option(help: "Images processed at once (the number of cores unless given).")
    var concurrency = defaults.settings.concurrency

    @Flag(help: "One JSON object per file (and a summary object) on standard output.")
    var json = false

    @OptionGroup var limits: LimitOptions

    @OptionGroup var links: LinkOptions

    @Option(
        help: ArgumentHelp(
            "Prepare for this endpoint: its planned size per image replaces --size (see `qie providers`).",
            valueName: "provider"))
    var provider: String?

    @Option(name: .customLong("aspect-ratio"), help: "With --provider: ask for this aspect ratio (W:H).")
    var aspectRatio: String?

    @Option(help: "With --provider: ask for this resolution tier (for example 1K).")
    var resolution: String?

    @Flag(
        name: .customLong("emit-requests"),
        help: "With --provider: write each image's request next to it as NAME.request.http, key redacted.")
    var emitRequests = false

    @Option(help: "With --emit-requests: the edit instruction.")
    var prompt: String?

    @Option(name: .customLong("negative-prompt"), help: "With --emit-requests: what to keep out.")
    var negativePrompt: String?

    @Option(help: "With --emit-requests: the seed.")
    var seed: Int?

    @Option(name: .customLong("num-images"), help: "With --emit-requests: outputs wanted.")
    var numImages = Edit.defaults.options.numImages

    @Option(name: .customLong("result-format"), help: "With --emit-requests: the format wanted back (converted locally if the endpoint cannot).")
    var resultFormat: String?

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one file or folder to prepare") }
        if let size, PixelSize(parsing: size) == nil {
            throw ValidationError("--size must be WxH with positive integers, for example 1024x1280; got \"\(size)\"")
        }
        if let format, OutputFormat(name: format) == nil {
            throw ValidationError("--format must be jpeg, jpg, png, webp, avif or gif; got \"\(format)\"")
        }
        if Position(parsing: position) == nil {
            throw ValidationError(
                "--position must be one of \(Position.allCases.map(\.rawValue).joined(separator: ", ")); got \"\(position)\"")
        }
        if chroma != "420" && chroma != "444" {
            throw ValidationError("--chroma must be 420 or 444; got \"\(chroma)\"")
        }
        if provider == nil && (aspectRatio != nil || resolution != nil || emitRequests) {
            throw ValidationError("--aspect-ratio, --resolution and --emit-requests need --provider")
        }
        if let provider {
            _ = try ProviderOptions.profile(named: provider)
            _ = try ProviderOptions.sizeRequest(size: size, aspectRatio: aspectRatio, resolution: resolution)
        }
        if let resultFormat, OutputFormat(name: resultFormat) == nil {
            throw ValidationError("--result-format must be jpeg, jpg, png, webp, avif or gif; got \"\(resultFormat)\"")
        }
        let settings = try settings()
        try Flags.validating { try settings.validate() }
    }

    func settings() throws -> PrepareSettings {
        let fill = try Flags.validating { try PaddingFill(parsing: background) }
        var flatten = Colour.white
        if case .colour(let colour) = fill, colour.isOpaque { flatten = colour }
        let resize = size.flatMap(PixelSize.init(parsing:)).map {
            ResizeOptions(size: $0, fit: fit, position: Position(parsing: position) ?? .centre, fill: fill)
        }
        let outputFormat = format.flatMap(OutputFormat.init(name:))
        let encode = EncodeOptions(
            format: outputFormat ?? .png, quality: quality, compression: compression, progressive: progressive,
            lossless: lossless, chromaSubsampling: chroma == "420", effort: effort, keepICCProfile: keepIcc, flattenBackground: flatten)
        var target: ProviderTarget? = nil
        if let provider {
            let profile = try ProviderOptions.profile(named: provider)
            let request =
                emitRequests
                ? EditRequest(
                    prompt: prompt ?? "", images: [], outputFormat: resultFormat.flatMap(OutputFormat.init(name:)),
                    negativePrompt: negativePrompt, seed: seed, numImages: numImages) : nil
            target = ProviderTarget(
                profile: profile,
                size: try ProviderOptions.sizeRequest(size: size, aspectRatio: aspectRatio, resolution: resolution),
                fit: fit, position: Position(parsing: position) ?? .centre, fill: fill, request: request)
        }
        var settings = PrepareSettings(
            resize: target == nil ? resize : nil, format: outputFormat, encode: encode, limits: limits.limits,
            concurrency: concurrency, provider: target)
        settings.concurrency = concurrency
        settings.outputName = try name.map { text in try Flags.validating { try OutputNameTemplate(text) } }
        settings.skipExisting = skipExisting
        return settings
    }

    func run() throws {
        let settings = try settings()
        let folder: OutputFolder
        do {
            folder = try OutputFolder(path: out)
        } catch {
            TextStream.standardError.write("error \(error)\n")
            throw ExitCode(1)
        }
        let (files, problems) = links.walk(inputs, excluding: [out])
        let reporter = progressReporter(json: json)
        for problem in problems {
            TextStream.standardError.write("error \(problem)\n")
        }

        let cancellation = BatchCancellation()
        let interrupt = Terminal.onInterrupt {
            if cancellation.isCancelled {
                // A second Ctrl-C: stop now. Finished outputs are complete files;
                // an image in progress leaves at most a hidden temporary file.
                TextStream.standardError.write("\nstopped\n")
                Terminal.exitNow(130)
            }
            TextStream.standardError.write(
                "\ninterrupted: finishing the images in progress, starting no more (Ctrl-C again to stop now)\n")
            cancellation.cancel()
        }

        let batch = PrepareBatch(inputs: files, output: folder, settings: settings)
        var summary: BatchSummary
        do {
            // Names that would meet are refused before anything is read.
            _ = try batch.naming()
            reporter.start(total: files.count)
            summary = try batch.run(cancellation: cancellation) { reporter.report(ItemReport($0)) }
        } catch {
            interrupt.cancel()
            TextStream.standardError.write("error: \(Flags.message(error))\n")
            throw ExitCode(2)
        }
        summary.failed += problems.count
        summary.total += problems.count
        reporter.finish(summary, outputFolder: out)
        interrupt.cancel()

        if cancellation.isCancelled { throw ExitCode(130) }
        if !summary.succeeded { throw ExitCode(1) }
    }
}

extension Fit: ExpressibleByArgument {}
