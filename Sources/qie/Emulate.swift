import ArgumentParser
import Foundation
import QieEmulator
import QiePipeline
import QieProviders

struct Emulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a local server that speaks every endpoint's wire format, strictly.",
        discussion: """
            Emulates every endpoint of every host qie knows (\(ProviderCatalog.hosts.map(\.name).joined(separator: ", "))) \
            on 127.0.0.1, each route as its host documents it (submit, queue, status, cancel, event \
            stream, callbacks signed with the host's signing secret when its variable is set): it \
            rejects what the real endpoint would (wrong or missing bearer token, unknown field, wrong \
            enum, unsupported size, too many images, wrong content type) and answers with a real image \
            made from the input at the size the endpoint would produce, after --latency. Point a \
            provider at it with --base-url or its base-URL variable (listed when it starts, and by \
            `qie providers`).
            """)

    /// The library's defaults, which the options below start from.
    static let defaults = EmulatorConfiguration()

    @Option(help: "Port on 127.0.0.1 (0 picks a free one).")
    var port = defaults.port

    @Option(name: .customLong("api-key"), help: "The key the emulator accepts (each host's own header and scheme).")
    var apiKey = defaults.apiKey

    @Option(help: "Seconds from submission to result.")
    var latency = defaults.latency

    @Option(help: "What the emulated edit does: none (the input at the output size) or negative (its negative, to tell results from inputs).")
    var effect = defaults.effect.rawValue

    @Option(
        name: .customLong("fault"),
        help: ArgumentHelp(
            "A fault played instead of a normal answer, one per submission in the order given (repeat for several).",
            discussion: "One of: \(EmulatedFault.spellings.joined(separator: ", "))."))
    var faults: [String] = []

    @Option(name: .customLong("poll-fault"), help: "A fault played instead of a status poll's answer (repeat for several).")
    var pollFaults: [String] = []

    @Option(help: "Seconds finished jobs and result files are kept before they are forgotten.")
    var retention = defaults.retention

    @Option(name: .customLong("latency-max"), help: "Draw each submission's latency between --latency and this many seconds.")
    var latencyMax: Double?

    @Option(name: .customLong("record-bodies"), help: "Write every accepted submission's body to this folder (with index.jsonl), for replay.", completion: .directory)
    var recordBodies: String?

    @Flag(name: .customLong("log-requests"), help: "Print one line per request answered (method, path, status, time taken).")
    var logRequests = false

    func validate() throws {
        guard EmulatedEffect(rawValue: effect) != nil else { throw ValidationError("--effect must be none or negative, got \(effect)") }
        for fault in faults + pollFaults where EmulatedFault(parsing: fault) == nil {
            throw ValidationError("--fault \(fault) is not a fault; use one of: \(EmulatedFault.spellings.joined(separator: ", "))")
        }
        do { try configuration().validate() } catch {
            throw ValidationError(error.message { "--" + $0.replacing(/[A-Z]/) { "-" + $0.output.lowercased() } })
        }
    }

    /// The emulator's configuration: the environment's, then these options.
    func configuration() -> EmulatorConfiguration {
        var configuration = EmulatorConfiguration.fromEnvironment()
        configuration.port = port
        configuration.apiKey = apiKey
        configuration.latency = latency
        configuration.latencyMax = latencyMax
        configuration.effect = EmulatedEffect(rawValue: effect) ?? Self.defaults.effect
        configuration.retention = retention
        configuration.faults = faults.compactMap(EmulatedFault.init(parsing:))
        configuration.pollFaults = pollFaults.compactMap(EmulatedFault.init(parsing:))
        configuration.recordBodies = recordBodies
        return configuration
    }

    func run() async throws {
        let configuration = configuration()
        var log: (@Sendable (String) -> Void)? = nil
        if logRequests { log = { @Sendable line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) } }
        let emulator = EditEmulator(configuration: configuration, requestLog: log)
        try await emulator.run(port: configuration.port) { bound in
            var lines = ["qie emulator listening on http://127.0.0.1:\(bound) (Ctrl-C to stop)"]
            for profile in EditEmulator.profiles {
                let routes = profile.routes
                var paths = ["POST \(ProviderProfile.Routes.path(onOneAddress: routes.submit))"]
                if let enqueue = routes.enqueue { paths.append("POST \(enqueue)") }
                if let poll = routes.poll { paths.append("GET \(poll)") }
                if let events = routes.events { paths.append("GET \(events)") }
                if let result = routes.result { paths.append("GET \(result)") }
                if let cancel = routes.cancel { paths.append("\(routes.cancelMethod) \(cancel)") }
                lines.append("  \(profile.id): \(paths.joined(separator: ", "))")
                lines.append("      \(profile.baseURLVariable)=http://127.0.0.1:\(bound)")
            }
            if let variable = configuration.signingVariable { lines.append("callbacks are signed with \(variable)") }
            TextStream.standardOutput.write(lines.joined(separator: "\n") + "\n")
        }
    }
}
