import ArgumentParser
import Foundation
import QieImaging
import QiePipeline
import QieProviders

/// Choosing an endpoint and the size asked of it.
struct ProviderOptions: ParsableArguments {
    @Option(help: "Endpoint: runpod-qwen-image-edit-2511 (runpod), runpod-qwen-image-edit, runflow, oxen, lumenfall. See `qie providers`.")
    var provider: String

    @Option(name: .customLong("aspect-ratio"), help: "Ask for this aspect ratio (W:H) instead of the closest one.")
    var aspectRatio: String?

    @Option(help: "Ask for this resolution tier (for example 1K) where the endpoint has tiers.")
    var resolution: String?

    func profile() throws -> ProviderProfile { try ProviderOptions.profile(named: provider) }

    static func profile(named name: String) throws -> ProviderProfile {
        do {
            return try ProviderCatalog.profile(named: name)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func sizeRequest(size: String?) throws -> SizeRequest {
        try ProviderOptions.sizeRequest(size: size, aspectRatio: aspectRatio, resolution: resolution)
    }

    static func sizeRequest(size: String?, aspectRatio: String?, resolution: String?) throws -> SizeRequest {
        var ratio: AspectRatio? = nil
        if let aspectRatio {
            guard let parsed = AspectRatio(parsing: aspectRatio) else {
                throw ValidationError("--aspect-ratio must be W:H, for example 16:9; got \"\(aspectRatio)\"")
            }
            ratio = parsed
        }
        if let size {
            guard let parsed = PixelSize(parsing: size) else {
                throw ValidationError("--size must be WxH with positive integers, for example 1024x1280; got \"\(size)\"")
            }
            guard ratio == nil, resolution == nil else {
                throw ValidationError("--size sets both shape and scale: leave out --aspect-ratio and --resolution")
            }
            return .size(parsed)
        }
        if let resolution { return .tier(resolution, aspectRatio: ratio) }
        if let ratio { return .aspectRatio(ratio) }
        return .automatic
    }

    /// Plans each input, reporting what cannot be planned.
    func plans(for files: [InputFile], size: SizeRequest, fit: Fit, position: Position, profile: ProviderProfile)
        -> [(InputFile, Result<(ImageInfo, SizePlan), Error>)]
    {
        let results = ProbeBatch(files: files).run()
        return zip(files, results).map { file, result in
            switch result {
            case .failure(let error): return (file, .failure(error))
            case .success(let info):
                do {
                    let plan = try SizePlanner.plan(
                        input: info.displaySize, for: profile, request: size, fit: fit, position: position)
                    return (file, .success((info, plan)))
                } catch {
                    return (file, .failure(error))
                }
            }
        }
    }
}

/// Prices set by the user, for endpoints that publish none or to override them.
struct PriceOptions: ParsableArguments {
    @Option(name: .customLong("price-per-image"), help: "Your price in USD per output image (overrides the endpoint's).")
    var pricePerImage: String?

    @Option(name: .customLong("price-per-megapixel"), help: "Your price in USD per output megapixel.")
    var pricePerMegapixel: String?

    @Option(name: .customLong("megapixel-rounding"), help: "How billed megapixels round: none, hundredth or whole.")
    var rounding: String = "none"

    func validate() throws {
        if MegapixelRounding(rawValue: rounding) == nil {
            throw ValidationError("--megapixel-rounding must be none, hundredth or whole; got \"\(rounding)\"")
        }
        for (name, value) in [("--price-per-image", pricePerImage), ("--price-per-megapixel", pricePerMegapixel)] {
            if let value, Decimal(string: value).map({ $0 >= 0 }) != true {
                throw ValidationError("\(name) must be a price in USD such as 0.02; got \"\(value)\"")
            }
        }
    }

    var override: PriceOverride {
        PriceOverride(
            perImage: pricePerImage.flatMap { Decimal(string: $0) },
            perMegapixel: pricePerMegapixel.flatMap { Decimal(string: $0) })
    }

    var megapixelRounding: MegapixelRounding { MegapixelRounding(rawValue: rounding) ?? .none }
}

/// Checks, before any image is read, that `profile` takes the size asked for
/// and, when given, the request's options with `imageCount` images.
func checkBeforeReading(
    profile: ProviderProfile, size: SizeRequest, fit: Fit, request: EditRequest?, imageCount: Int = 1
) throws {
    do {
        let plan = try SizePlanner.plan(input: PixelSize(width: 1024, height: 1024), for: profile, request: size, fit: fit)
        if var request {
            request.images = Array(repeating: .url("https://example.invalid/check.png"), count: imageCount)
            _ = try RequestBuilder.build(request, plan: plan, for: profile, apiKey: nil)
        }
    } catch {
        throw ValidationError(error.message)
    }
}

/// Buffers output lines and writes them in large pieces.
struct LineBuffer {
    private var text = ""
    private let stream: TextStream

    init(_ stream: TextStream = .standardOutput) { self.stream = stream }

    mutating func add(_ line: String) {
        text += line
        text += "\n"
        if text.utf8.count > 64 * 1024 { flush() }
    }

    mutating func flush() {
        stream.write(text)
        text = ""
    }
}

func reason(_ error: Error) -> String {
    if let error = error as? ImagingError { return error.reason }
    return "\(error)"
}

struct Providers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the endpoints qie knows and what each accepts.")

    func run() throws {
        var out = LineBuffer()
        for profile in ProviderCatalog.all {
            out.add("\(profile.id)  (\(([profile.provider + " " + profile.model] + profile.aliases.map { "alias " + $0 }).joined(separator: ", ")))")
            out.add("  endpoint: POST \(profile.baseURL)\(profile.routes.submit)  (base URL from \(profile.baseURLVariable) if set)")
            if let enqueue = profile.routes.enqueue { out.add("  queue:    POST \(enqueue)") }
            if let poll = profile.routes.poll { out.add("  poll:     GET \(poll)") }
            if let events = profile.routes.events { out.add("  events:   GET \(events) (server-sent events)") }
            out.add("  auth:     \(profile.auth.header): \(profile.auth.scheme) $\(profile.auth.keyVariable)")
            let images = profile.images
            out.add(
                "  images:   \(images.field) (\(images.isArray ? "array" : "one"), at most \(images.maxCount)), local files as \(images.inline.rawValue); \(images.accepts.map(\.rawValue).joined(separator: "/"))"
            )
            out.add("  sizes:    \(profile.sizes.summary)")
            let formats = profile.outputFormat.spellings.map { $0.0.rawValue == $0.1 ? $0.1 : "\($0.0.rawValue) as \"\($0.1)\"" }
            out.add(
                "  output:   \(profile.outputFormat.field): \(formats.joined(separator: ", ")) (default \(profile.outputFormat.defaultFormat.rawValue)); others converted locally"
            )
            let options = profile.fields.map { "--\($0.option.rawValue) (\($0.name)\($0.defaultValue.map { ", default " + $0 } ?? ""))" }
            out.add("  options:  \(options.isEmpty ? "none" : options.joined(separator: ", "))")
            out.add("  flow:     \(profile.flow.map(\.rawValue).joined(separator: ", ")); result at \(profile.result.description)")
            out.add("  price:    \(profile.pricing.summary)")
            for note in profile.notes { out.add("  note:     \(note)") }
            out.add("")
        }
        out.flush()
    }
}
