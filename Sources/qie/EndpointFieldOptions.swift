import ArgumentParser
import QiePipeline
import QieProviders

/// The endpoint-specific request fields, each sent only where the endpoint
/// documents it (otherwise refused with what the endpoint takes).
struct EndpointFieldOptions: ParsableArguments {
    @Flag(
        name: .customLong("sync-mode"), inversion: .prefixedNo,
        help: "Ask for results inline as data URIs (\(ProviderCatalog.fieldNames(of: .syncMode))).")
    var syncMode: Bool?

    @Option(name: .customLong("response-format"), help: "url or b64_json (\(ProviderCatalog.fieldNames(of: .responseFormat))).")
    var responseFormat: String?

    @Option(name: .customLong("output-compression"), help: "0-100 for lossy formats (\(ProviderCatalog.fieldNames(of: .outputCompression))).")
    var outputCompression: Int?

    @Option(name: .customLong("guidance-scale"), help: "Guidance scale (\(ProviderCatalog.fieldNames(of: .guidanceScale))).")
    var guidanceScale: Double?

    @Option(help: "Inference steps (\(ProviderCatalog.fieldNames(of: .inferenceSteps))).")
    var steps: Int?

    @Option(help: "Acceleration: none, regular or high (\(ProviderCatalog.fieldNames(of: .acceleration))).")
    var acceleration: String?

    @Flag(
        name: .customLong("safety-checker"), inversion: .prefixedNo,
        help: "Turn the endpoint's safety checker on or off (\(ProviderCatalog.fieldNames(of: .safetyChecker))).")
    var safetyChecker: Bool?

    @Option(help: "KEY=VALUE attached to the job (\(ProviderCatalog.fieldNames(of: .metadata))); repeat for several.")
    var metadata: [String] = []

    /// The fields as the library takes them.
    func fields() throws -> EndpointFields {
        var fields = EndpointFields()
        fields.syncMode = syncMode
        fields.responseFormat = responseFormat
        fields.outputCompression = outputCompression
        fields.guidanceScale = guidanceScale
        fields.inferenceSteps = steps
        fields.acceleration = acceleration
        fields.safetyChecker = safetyChecker
        for entry in metadata {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("--metadata must be KEY=VALUE, got \"\(entry)\"")
            }
            fields.metadata[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        return fields
    }
}
