import Foundation
import HTTPTypes
import QieImaging
import QieProviders

/// Why the emulator refuses a request, as the endpoint would.
struct EmulatorRejection: Error {
    var status: HTTPResponse.Status
    var message: String
    var param: String?

    static func bad(_ message: String, param: String? = nil) -> EmulatorRejection {
        EmulatorRejection(status: .badRequest, message: message, param: param)
    }
}

/// A request checked against its endpoint's document.
struct EmulatedRequest: Sendable {
    var prompt: String
    var input: Data
    var outputSize: PixelSize
    var format: OutputFormat
    var count: Int
    var returnsBase64: Bool
    /// Where to POST the job's end (Runflow `callback_url`).
    var callbackURL: String? = nil
    /// Returned with the job (Runflow `metadata`), as JSON.
    var metadata: Data? = nil
    /// Results as data URIs instead of URLs (Runflow `sync_mode`).
    var syncMode = false

    /// The "edit": the first input image at the endpoint's output size and
    /// format, with `effect` applied.
    func render(effect: EmulatedEffect = .none) throws -> PreparedImage {
        let resize = ResizeOptions(size: outputSize, fit: .fill)
        do {
            switch effect {
            case .none:
                // A JPEG already at the output size comes back as it is (its
                // metadata removed), so the emulator spends little of the
                // machine it shares with what it is measured against.
                return try ImageProcessor.prepare(data: input, reusingUnchanged: true) { _ in (resize, EncodeOptions(format: format)) }
            case .negative: return try ImageProcessor.negative(data: input, resize: resize, encode: EncodeOptions(format: format))
            }
        } catch {
            throw EmulatorRejection.bad("Invalid image: \(error.reason)")
        }
    }

    static func parse(_ body: Data, contentType: String, profile: ProviderProfile, query: [String: String] = [:]) throws
        -> EmulatedRequest
    {
        var fields: [String: Any]
        var images: [Data]
        var callbackURL: String? = nil
        var metadata: Data? = nil
        // Fields the endpoint takes in the submission's URL.
        for (name, value) in query {
            guard let field = profile.fields.first(where: { $0.inQuery && $0.name == name }) else {
                throw EmulatorRejection.bad("Unknown query parameter: \(name)", param: name)
            }
            if field.option == .callbackURL {
                guard let url = URL(string: value), ["http", "https"].contains(url.scheme ?? "") else {
                    throw EmulatorRejection.bad("\(name) must be an http(s) URL", param: name)
                }
                callbackURL = value
            }
        }
        switch profile.envelope {
        case .inputObject, .flatJSON, .routedJSON:
            guard contentType.lowercased().hasPrefix("application/json") else {
                throw EmulatorRejection(status: .unsupportedMediaType, message: "Content-Type must be application/json")
            }
            guard var object = StrictJSON.object(body) else {
                throw EmulatorRejection.bad("Request body is not a JSON object")
            }
            if let refusal = profile.host.emulatedCheck(&object, for: profile) {
                throw EmulatorRejection.bad(refusal.message, param: refusal.param)
            }
            if let laidOut = try hostFields(object, profile: profile) {
                fields = laidOut
            } else if profile.envelope == .inputObject {
                let topLevel = Set(["input"] + profile.fields.filter { [.callbackURL, .metadata].contains($0.option) }.map(\.name))
                if let extra = object.keys.first(where: { !topLevel.contains($0) }) {
                    throw EmulatorRejection.bad("Unknown field: \(extra)", param: extra)
                }
                guard let input = object["input"] as? [String: Any] else {
                    throw EmulatorRejection.bad("Missing required field: input", param: "input")
                }
                fields = input
                if let name = profile.field(for: .callbackURL)?.name, let value = object[name], !(value is NSNull) {
                    guard let text = value as? String, let url = URL(string: text), ["http", "https"].contains(url.scheme ?? "")
                    else { throw EmulatorRejection.bad("\(name) must be an http(s) URL or null", param: name) }
                    callbackURL = text
                }
                if let name = profile.field(for: .metadata)?.name, let value = object[name], !(value is NSNull) {
                    guard let object = value as? [String: Any] else {
                        throw EmulatorRejection.bad("\(name) must be an object or null", param: name)
                    }
                    metadata = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                }
            } else if profile.envelope == .routedJSON {
                fields = object
            } else {
                fields = object
                guard fields.removeValue(forKey: "model") as? String == profile.model else {
                    throw EmulatorRejection.bad("model must be \(profile.model)", param: "model")
                }
            }
            images = try jsonImages(fields.removeValue(forKey: profile.images.field), profile: profile)
        case .multipart:
            guard let boundary = contentType.components(separatedBy: "boundary=").dropFirst().first,
                contentType.lowercased().hasPrefix("multipart/form-data")
            else {
                throw EmulatorRejection(status: .unsupportedMediaType, message: "Content-Type must be multipart/form-data")
            }
            (fields, images) = try multipart(body, boundary: boundary.trimmingCharacters(in: CharacterSet(charactersIn: "\"")), profile: profile)
            guard fields.removeValue(forKey: "model") as? String == profile.model else {
                throw EmulatorRejection.bad("model must be \(profile.model)", param: "model")
            }
        }

        guard let prompt = fields.removeValue(forKey: "prompt") as? String, !prompt.isEmpty else {
            throw EmulatorRejection.bad("Missing required field: prompt", param: "prompt")
        }
        guard !images.isEmpty else {
            throw EmulatorRejection.bad("Missing required field: \(profile.images.field)", param: profile.images.field)
        }
        guard images.count <= profile.images.maxCount else {
            throw EmulatorRejection.bad("At most \(profile.images.maxCount) images", param: profile.images.field)
        }

        // Output format, in the endpoint's spelling.
        var format = profile.outputFormat.defaultFormat
        if let spelled = fields.removeValue(forKey: profile.outputFormat.field) {
            guard let text = spelled as? String, let match = profile.outputFormat.spellings.first(where: { $0.1 == text }) else {
                throw EmulatorRejection.bad(
                    "\(profile.outputFormat.field) must be one of \(profile.outputFormat.spellings.map(\.1).joined(separator: ", "))",
                    param: profile.outputFormat.field)
            }
            format = match.0
        }

        let inputInfo = try? ImageProbe.probe(data: images[0])
        let inputSize = inputInfo?.displaySize ?? PixelSize(width: 1024, height: 1024)
        let lastSize = images.count > 1 ? (try? ImageProbe.probe(data: images[images.count - 1]))?.displaySize : nil
        let outputSize = try size(&fields, rule: profile.sizes, input: inputSize, last: lastSize ?? inputSize)

        // Optional fields: known names, right types, allowed values.
        var count = 1
        var base64 = false
        var syncMode = false
        for (name, value) in fields {
            let topLevelOnly: Set<EditOption> = profile.envelope == .inputObject ? [.callbackURL, .metadata] : []
            guard let field = profile.fields.first(where: { $0.name == name && !topLevelOnly.contains($0.option) && !$0.inQuery })
            else {
                throw EmulatorRejection.bad("Unknown field: \(name)", param: name)
            }
            try check(value, field: field, multipart: profile.envelope == .multipart)
            if field.option == .numImages { count = Int("\(value)") ?? 1 }
            if field.option == .responseFormat { base64 = "\(value)" == "b64_json" }
            if field.option == .syncMode { syncMode = (value as? Bool) ?? ("\(value)" == "true") }
        }
        guard (1...10).contains(count) else { throw EmulatorRejection.bad("n must be from 1 to 10", param: "n") }
        return EmulatedRequest(
            prompt: prompt, input: images[0], outputSize: outputSize, format: format, count: count, returnsBase64: base64,
            callbackURL: callbackURL, metadata: metadata, syncMode: syncMode)
    }

    /// The body's fields as its host reads them back, when it is not in a standard envelope.
    private static func hostFields(_ object: [String: Any], profile: ProviderProfile) throws -> [String: Any]? {
        do throws(EmulatedRefusal) {
            return try profile.host.emulatedFields(of: object, for: profile)
        } catch {
            throw EmulatorRejection(status: HTTPResponse.Status(code: error.status), message: error.message, param: error.param)
        }
    }

    private static func jsonImages(_ value: Any?, profile: ProviderProfile) throws -> [Data] {
        let strings: [String]
        if profile.images.isArray {
            guard let array = value as? [String] else {
                throw EmulatorRejection.bad("\(profile.images.field) must be an array of image URLs", param: profile.images.field)
            }
            strings = array
        } else {
            guard let single = value as? String else {
                throw EmulatorRejection.bad("\(profile.images.field) must be an image URL", param: profile.images.field)
            }
            strings = [single]
        }
        return try strings.map { text in
            guard let decoded = DataURI.decode(text) else {
                // The emulator fetches nothing from the network.
                throw EmulatorRejection.bad("Invalid image URL", param: profile.images.field)
            }
            return Data(decoded.bytes)
        }
    }

    private static func size(_ fields: inout [String: Any], rule: SizeRule, input: PixelSize, last: PixelSize) throws -> PixelSize {
        switch rule {
        case .fixedSizes(let field, let sizes, let separator, let defaultSize):
            guard let value = fields.removeValue(forKey: field) else { return defaultSize }
            guard let text = value as? String,
                let size = sizes.first(where: { "\($0.width)\(separator)\($0.height)" == text })
            else {
                throw EmulatorRejection.bad(
                    "\(field) must be one of \(sizes.map { "\($0.width)\(separator)\($0.height)" }.joined(separator: ", "))", param: field)
            }
            return size
        case .aspectRatios(let field, let ratios, let defaultRatio):
            var ratio = defaultRatio
            if let value = fields.removeValue(forKey: field) {
                guard let text = value as? String, let match = ratios.first(where: { $0.description == text }) else {
                    throw EmulatorRejection.bad("\(field) must be one of \(ratios.map(\.description).joined(separator: ", "))", param: field)
                }
                ratio = match
            }
            return SizePlanner.freeSize(ratio: ratio.value)
        case .sizeOrTier(let sizeField, let ratioField, let tierField, let table, let maxSide):
            let ratio = fields.removeValue(forKey: ratioField).map { "\($0)" }
            let tier = fields.removeValue(forKey: tierField).map { "\($0)" }
            if let value = fields.removeValue(forKey: sizeField) {
                let text = "\(value)"
                if text == "auto" { return input }
                guard let size = PixelSize(parsing: text), text.contains("x"), size.width <= maxSide, size.height <= maxSide
                else {
                    throw EmulatorRejection.bad("size must be WxH from 1 to \(maxSide) a side, or auto", param: sizeField)
                }
                return size
            }
            if ratio != nil || tier != nil {
                guard let row = table.first(where: { (ratio == nil || $0.ratio.description == ratio) && (tier == nil || $0.tier == tier) })
                else { throw EmulatorRejection.bad("unsupported aspect_ratio or resolution", param: ratioField) }
                return row.size
            }
            return input
        case .followsInput:
            return input
        case .sizeObject(let field, let maxSide, let presets):
            guard let value = fields.removeValue(forKey: field), !(value is NSNull) else { return input }
            if let name = value as? String, let preset = presets.first(where: { $0.name == name }) { return preset.size }
            guard let object = value as? [String: Any], Set(object.keys) == ["width", "height"],
                let width = object["width"] as? Int, let height = object["height"] as? Int,
                (1...maxSide).contains(width), (1...maxSide).contains(height)
            else {
                throw EmulatorRejection.bad(
                    "\(field) must be one of \(presets.map(\.name).joined(separator: ", ")) or {width, height} from 1 to \(maxSide)",
                    param: field)
            }
            return PixelSize(width: width, height: height)
        case .aboutOneMegapixel(let sizeField, let separator, let sides):
            guard let sizeField, let value = fields.removeValue(forKey: sizeField) else {
                return SizePlanner.freeSize(ratio: last.aspectRatio, sides: sides)
            }
            let parts = ((value as? String) ?? "").components(separatedBy: separator).map { Int($0) }
            guard parts.count == 2, let width = parts[0], let height = parts[1], sides.contains(width), sides.contains(height)
            else {
                throw EmulatorRejection.bad(
                    "\(sizeField) must be W\(separator)H with each side from \(sides.lowerBound) to \(sides.upperBound)", param: sizeField)
            }
            return PixelSize(width: width, height: height)
        }
    }

    private static func check(_ value: Any, field: ProviderProfile.Field, multipart: Bool) throws {
        let text = "\(value)"
        let ok: Bool
        switch field.kind {
        case .string: ok = multipart || value is String
        case .integer: ok = multipart ? Int(text) != nil : value is Int
        case .number: ok = multipart ? Double(text) != nil : value is Int || value is Double
        case .boolean: ok = multipart ? ["true", "false"].contains(text) : value is Bool
        case .object: ok = value is [String: Any]
        case .oneOf(let allowed): ok = allowed.contains(text)
        }
        guard ok else {
            let expected: String =
                switch field.kind {
                case .oneOf(let allowed): "one of " + allowed.joined(separator: ", ")
                default: "\(field.kind)"
                }
            throw EmulatorRejection.bad("\(field.name) must be \(expected)", param: field.name)
        }
        if let range = field.range, let number = Double(text), !range.contains(number) {
            throw EmulatorRejection.bad(
                "\(field.name) must be from \(range.lowerBound) to \(range.upperBound), not \(text)", param: field.name)
        }
    }

    private static func multipart(_ body: Data, boundary: String, profile: ProviderProfile) throws -> ([String: Any], [Data]) {
        var fields: [String: Any] = [:]
        var images: [Data] = []
        let delimiter = Data("--\(boundary)".utf8)
        var rest = body[...]
        var chunks: [Data] = []
        while let range = rest.range(of: delimiter) {
            chunks.append(Data(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        guard chunks.count >= 2 else { throw EmulatorRejection.bad("Malformed multipart body") }
        for chunk in chunks.dropFirst() {
            guard let split = chunk.range(of: Data("\r\n\r\n".utf8)) else { continue }
            let head = String(decoding: chunk[..<split.lowerBound], as: UTF8.self)
            var value = Data(chunk[split.upperBound...])
            if value.suffix(2) == Data("\r\n".utf8) { value = value.dropLast(2) }
            guard let nameStart = head.range(of: "name=\"") else { continue }
            let name = String(head[nameStart.upperBound...].prefix { $0 != "\"" })
            if head.contains("filename=") {
                guard name == profile.images.field || name == profile.images.field + "[]" else {
                    throw EmulatorRejection.bad("Unexpected file field: \(name)", param: name)
                }
                images.append(value)
            } else {
                fields[name] = String(decoding: value, as: UTF8.self)
            }
        }
        return (fields, images)
    }
}

/// JSON parsed into plain Swift values (Bool, Int, Double, String, arrays,
/// dictionaries), so booleans and integers can be told apart exactly as a
/// strict endpoint would.
enum StrictJSON: Decodable {
    case bool(Bool), int(Int), double(Double), string(String), array([StrictJSON]), object([String: StrictJSON]), null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([StrictJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: StrictJSON].self))
        }
    }

    var native: Any {
        switch self {
        case .bool(let value): value
        case .int(let value): value
        case .double(let value): value
        case .string(let value): value
        case .array(let items): items.map(\.native)
        case .object(let members): members.mapValues(\.native)
        case .null: NSNull()
        }
    }

    static func object(_ data: Data) -> [String: Any]? {
        (try? JSONDecoder().decode(StrictJSON.self, from: data))?.native as? [String: Any]
    }
}
