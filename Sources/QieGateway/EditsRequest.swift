import Crypto
import Foundation
import QiePipeline

/// The fields of `POST /v1/images/edits`, checked: each wrong value is a 400
/// that names its field (`param`), as the OpenAI API answers. A field the
/// edits endpoint does not have is refused as OpenAI refuses it
/// (`Unknown parameter: 'moderation'.`, code `unknown_parameter`), and one
/// no Qwen Image Edit endpoint can honour (`input_fidelity=high`,
/// `partial_images`, `background=transparent`) is refused with its `param`,
/// never dropped without a word.
struct EditsRequest {
    enum ResponseFormat: String { case base64 = "b64_json", url }

    /// The images, as files: the first is edited, the others are references.
    var images: [String]
    /// The field that holds them: `image` in the multipart form, `images` in the JSON one.
    var imageParam = "image"
    /// The mask, as a file: checked against the first image before anything is sent.
    var mask: String?
    var prompt: String
    var model: String?
    var n: Int
    var size: PixelSize?
    var responseFormat: ResponseFormat
    var outputFormat: OutputFormat?
    var compression: Int?
    var quality: String
    var seed: Int?
    var negativePrompt: String?
    var stream: Bool
    /// The end user the client names (`safety_identifier`, else `user`), for the log.
    var user: String?

    /// The text fields OpenAI's edits endpoint takes, and qie's own
    /// (`seed`, `negative_prompt`).
    static let textFields: Set<String> = [
        "prompt", "model", "n", "size", "response_format", "output_format", "output_compression", "background", "quality",
        "input_fidelity", "stream", "partial_images", "user", "safety_identifier", "seed", "negative_prompt",
    ]
    /// The file fields it takes.
    static let fileFields: Set<String> = ["image", "image[]", "mask"]

    /// What makes two requests the same edit: the endpoint, every field that
    /// changes the result, and the SHA-256 of each image and the mask.
    func fingerprint(model: String) throws -> String {
        var hasher = SHA256()
        let fields: [String] = [
            model, prompt, String(n), size.map { "\($0)" } ?? "auto", responseFormat.rawValue, outputFormat?.rawValue ?? "-",
            compression.map(String.init) ?? "-", quality, seed.map(String.init) ?? "-", negativePrompt ?? "-", String(stream),
        ]
        for field in fields { hasher.update(data: Data((field + "\u{0}").utf8)) }
        for path in images + (mask.map { [$0] } ?? []) {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            var file = SHA256()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { file.update(data: chunk) }
            hasher.update(data: Data(file.finalize()))
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The most images one request takes, as OpenAI's `image[]` (and its
    /// JSON form's `images`); each endpoint's own limit applies after it.
    static let maxImages = 16

    /// The first image's size as shown (orientation applied): the size of
    /// each result when no `size` is asked.
    var inputSize = PixelSize(width: 0, height: 0)

    /// The pixels the answer holds: `n` images of the asked size, or of the input's.
    var outputPixels: Int { n * (size ?? inputSize).width * (size ?? inputSize).height }

    init(form: EditsForm, limits: ImageLimits, maxOutputMegapixels: Double = .infinity) throws(GatewayError) {
        let fields = form.fields
        func text(_ name: String) -> String? {
            fields[name].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        func integer(_ name: String, _ range: ClosedRange<Int>, what: String) throws(GatewayError) -> Int? {
            guard let value = text(name) else { return nil }
            guard let number = Int(value), range.contains(number) else {
                throw .invalid(name, "\(name) must be \(what); got \(value)")
            }
            return number
        }

        // A field the endpoint does not have: refused by name, as OpenAI does.
        let unknown = (fields.keys.filter { !Self.textFields.contains($0) } + form.files.map(\.field).filter { !Self.fileFields.contains($0) })
            .sorted().first
        if let unknown {
            throw .invalid(unknown, "Unknown parameter: '\(unknown)'.", code: "unknown_parameter")
        }

        guard let prompt = text("prompt") else {
            throw .invalid("prompt", "prompt is required: say what to change in the image", code: "missing_required_parameter")
        }
        guard prompt.count <= 32_000 else { throw .invalid("prompt", "prompt is longer than 32000 characters") }
        self.prompt = prompt

        // Images: `image` once, or `image[]` repeated (the SDK sends a list of one that way too).
        let imageParts = form.files.filter { $0.field == "image" || $0.field == "image[]" }
        guard !imageParts.isEmpty else {
            throw .invalid(
                form.imageParam, "\(form.imageParam) is required: send the image to edit", code: "missing_required_parameter")
        }
        guard imageParts.count <= Self.maxImages else {
            throw .invalid(form.imageParam, "at most \(Self.maxImages) images per request; got \(imageParts.count)")
        }
        imageParam = form.imageParam
        for (index, part) in imageParts.enumerated() {
            let label = imageParts.count == 1 ? "image" : "image \(index + 1)"
            let named = part.filename.map { " (\($0))" } ?? ""
            // The JSON form names each image by its place in the list.
            let param = form.imageParam == "images" ? "images[\(index)]" : "image"
            guard part.byteCount > 0 else { throw .invalid(param, "\(label)\(named) is empty") }
            // The format is read from the bytes: the SDK labels raw bytes application/octet-stream.
            do throws(ImagingError) {
                let info = try ImageProbe.probe(file: part.path)
                try limits.check(info)
                if index == 0 { inputSize = info.displaySize }
            } catch {
                let code = error.kind == .tooLarge ? "image_too_large" : "invalid_image"
                throw .invalid(param, "\(label)\(named): \(error.reason)", code: code)
            }
        }
        images = imageParts.map(\.path)
        if let part = form.files.last(where: { $0.field == "mask" }) {
            guard part.byteCount > 0 else { throw .invalid("mask", "mask is empty") }
            mask = part.path
        }

        model = text("model")
        n = try integer("n", 1...10, what: "an integer from 1 to 10") ?? 1

        switch text("size")?.lowercased() {
        case nil, "auto":
            size = nil
        case let value?:
            let parts = value.split(separator: "x").map { Int($0) }
            guard parts.count == 2, let width = parts[0], let height = parts[1] else {
                throw .invalid("size", "size must be WIDTHxHEIGHT (such as 1024x1536) or auto; got \(value)")
            }
            guard (16...limits.maxSide).contains(width), (16...limits.maxSide).contains(height) else {
                throw .invalid("size", "each side of size must be from 16 to \(limits.maxSide) pixels; got \(value)")
            }
            guard Double(width * height) / 1_000_000 <= limits.maxMegapixels else {
                throw .invalid("size", "size \(value) is over \(limits.maxMegapixels) megapixels")
            }
            size = PixelSize(width: width, height: height)
        }

        switch text("response_format") {
        case nil: responseFormat = .base64
        case let value?:
            guard let format = ResponseFormat(rawValue: value) else {
                throw .invalid("response_format", "response_format must be b64_json or url; got \(value)")
            }
            responseFormat = format
        }

        switch text("output_format")?.lowercased() {
        case nil: outputFormat = nil
        case let value?:
            guard let format = OutputFormat(name: value) else {
                throw .invalid("output_format", "output_format must be png, jpeg, webp, avif or gif; got \(value)")
            }
            outputFormat = format
        }
        compression = try integer("output_compression", 0...100, what: "an integer from 0 to 100")
        if compression != nil, let format = outputFormat, format == .png || format == .gif {
            throw .invalid("output_compression", "output_compression applies to jpeg, webp and avif, not \(format.rawValue)")
        }

        switch text("background")?.lowercased() {
        case nil, "auto", "opaque":
            break
        case "transparent":
            throw .invalid(
                "background", "background=transparent cannot be honoured: no Qwen Image Edit endpoint returns transparency; use auto or opaque")
        case let value?:
            throw .invalid("background", "background must be auto, opaque or transparent; got \(value)")
        }

        switch text("input_fidelity")?.lowercased() {
        case nil, "low":
            break
        case "high":
            throw .invalid(
                "input_fidelity",
                "input_fidelity=high cannot be honoured: no Qwen Image Edit endpoint has such a setting (each keeps the input as its model does); use low or leave it out")
        case let value?:
            throw .invalid("input_fidelity", "input_fidelity must be high or low; got \(value)")
        }
        // OpenAI's `safety_identifier` names the end user; `user` is its older name, used when it is absent.
        for field in ["safety_identifier", "user"] {
            guard self.user == nil, let user = text(field) else { continue }
            guard user.count <= 256 else { throw .invalid(field, "\(field) is longer than 256 characters") }
            self.user = user
        }

        let quality = text("quality")?.lowercased() ?? "auto"
        guard ["auto", "low", "medium", "high", "standard", "hd"].contains(quality) else {
            throw .invalid("quality", "quality must be auto, low, medium or high; got \(quality)")
        }
        self.quality = quality

        if let value = text("seed") {
            guard let seed = Int(value), seed >= 0 else { throw .invalid("seed", "seed must be a whole number of 0 or more; got \(value)") }
            self.seed = seed
        }
        negativePrompt = text("negative_prompt")

        switch text("stream")?.lowercased() {
        case nil, "false", "0": stream = false
        case "true", "1": stream = true
        case let value?: throw .invalid("stream", "stream must be true or false; got \(value)")
        }
        // Every image made is decoded, restored and encoded here, and held
        // until it is answered: the request's work is bounded by its pixels.
        let megapixels = Double(outputPixels) / 1_000_000
        if megapixels > maxOutputMegapixels {
            let each = size ?? inputSize
            throw .invalid(
                size != nil ? "size" : "n",
                "n=\(n) image\(n == 1 ? "" : "s") of \(each.width)x\(each.height) make \(Int(megapixels.rounded(.up))) megapixels; this gateway makes at most \(formatMegapixels(maxOutputMegapixels)) per request: ask for fewer or smaller images",
                code: "output_too_large")
        }
        if let partial = try integer("partial_images", 0...3, what: "an integer from 0 to 3"), partial > 0 {
            throw .invalid(
                "partial_images",
                "partial_images is not available: no Qwen Image Edit endpoint produces partial images; ask for 0 (stream=true still sends each finished image)")
        }
    }
}
