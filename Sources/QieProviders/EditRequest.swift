import Foundation
import QieCore

/// What a user asks of an edit, independent of any endpoint.
public struct EditRequest: Sendable {
    /// What to change, in words.
    public var prompt: String
    /// The image to edit first, then reference images.
    public var images: [PayloadImage]
    /// The format the user wants back; nil takes the endpoint's default.
    public var outputFormat: OutputFormat?
    /// What the result should not show.
    public var negativePrompt: String?
    /// A fixed random seed, for repeatable results.
    public var seed: Int?
    /// Outputs wanted (1 by default).
    public var numImages: Int
    /// The endpoint's `sync_mode` field, where it has one.
    public var syncMode: Bool?
    /// The address the endpoint POSTs the finished job to (callback flow).
    public var callbackURL: String?
    /// Key-value pairs the endpoint stores with the job and returns, where it takes them.
    public var metadata: [String: String]
    /// Whether the endpoint's safety checker runs, where it has one.
    public var safetyChecker: Bool?
    /// How closely the result follows the prompt (the endpoint's guidance or CFG scale).
    public var guidanceScale: Double?
    /// The number of inference steps.
    public var inferenceSteps: Int?
    /// The endpoint's acceleration level, such as `none`, `regular` or `high`.
    public var acceleration: String?
    /// `url` or `b64_json` (OpenAI-style endpoints).
    public var responseFormat: String?
    /// 0-100 for lossy output formats (OpenAI-style endpoints).
    public var outputCompression: Int?

    /// A request; options left nil are not sent, so the endpoint's defaults apply.
    public init(
        prompt: String, images: [PayloadImage], outputFormat: OutputFormat? = nil, negativePrompt: String? = nil,
        seed: Int? = nil, numImages: Int = 1, syncMode: Bool? = nil, callbackURL: String? = nil,
        metadata: [String: String] = [:], safetyChecker: Bool? = nil, guidanceScale: Double? = nil,
        inferenceSteps: Int? = nil, acceleration: String? = nil, responseFormat: String? = nil,
        outputCompression: Int? = nil
    ) {
        self.prompt = prompt
        self.images = images
        self.outputFormat = outputFormat
        self.negativePrompt = negativePrompt
        self.seed = seed
        self.numImages = numImages
        self.syncMode = syncMode
        self.callbackURL = callbackURL
        self.metadata = metadata
        self.safetyChecker = safetyChecker
        self.guidanceScale = guidanceScale
        self.inferenceSteps = inferenceSteps
        self.acceleration = acceleration
        self.responseFormat = responseFormat
        self.outputCompression = outputCompression
    }

    /// The options this request sets, with their values as JSON.
    var setOptions: [(EditOption, JSONValue)] {
        var result: [(EditOption, JSONValue)] = []
        if let negativePrompt { result.append((.negativePrompt, .string(negativePrompt))) }
        if let seed { result.append((.seed, .integer(seed))) }
        if numImages != 1 { result.append((.numImages, .integer(numImages))) }
        if let syncMode { result.append((.syncMode, .bool(syncMode))) }
        if let callbackURL { result.append((.callbackURL, .string(callbackURL))) }
        if !metadata.isEmpty {
            result.append((.metadata, .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        if let safetyChecker { result.append((.safetyChecker, .bool(safetyChecker))) }
        if let guidanceScale { result.append((.guidanceScale, .number(guidanceScale))) }
        if let inferenceSteps { result.append((.inferenceSteps, .integer(inferenceSteps))) }
        if let acceleration { result.append((.acceleration, .string(acceleration))) }
        if let responseFormat { result.append((.responseFormat, .string(responseFormat))) }
        if let outputCompression { result.append((.outputCompression, .integer(outputCompression))) }
        return result
    }
}

/// Work qie does locally because the endpoint cannot.
public enum Emulation: Sendable, Equatable, CustomStringConvertible {
    /// Convert the result from the endpoint's format to the one asked for.
    case convertOutput(from: OutputFormat, to: OutputFormat)
    /// Send the request this many times for that many outputs.
    case repeatRequest(times: Int)

    /// The work in words, for listings.
    public var description: String {
        switch self {
        case .convertOutput(let from, let to): "convert the \(from.rawValue) result to \(to.rawValue) locally"
        case .repeatRequest(let times): "send the request \(times) times for \(times) images"
        }
    }
}
