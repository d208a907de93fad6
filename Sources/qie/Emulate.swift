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

    @Option(help: "Port on 127.0.0.1 (0 picks a free one).")
    var port: Int = 8787

    @Option(name: .customLong("api-key"), help: "The bearer token the emulator accepts.")
    var apiKey: String = "emulator-key"

    @Option(help: "Seconds from submission to result.")
    var latency: Double = 0

    @Option(help: "What the emulated edit does: none (the input at the output size) or negative (its negative, to tell results from inputs).")
    var effect: String = "none"

    @Option(
        name: .customLong("fault"),
        help: ArgumentHelp(
            "A fault played instead of a normal answer, one per submission in the order given (repeat for several).",
            discussion: "One of: \(EmulatedFault.spellings.joined(separator: ", "))."))
    var faults: [String] = []

    @Option(name: .customLong("poll-fault"), help: "A fault played instead of a status poll's answer (repeat for several).")
    var pollFaults: [String] = []

    @Option(help: "Seconds finished jobs and result files are kept before they are forgotten.")
    var retention: Double = 3600

    @Option(name: .customLong("latency-max"), help: "Draw each submission's latency between --latency and this many seconds.")
    var latencyMax: Double?

    @Option(name: .customLong("record-bodies"), help: "Write every accepted submission's body to this folder (with index.jsonl), for replay.", completion: .directory)
    var recordBodies: String?

    @Flag(name: .customLong("log-requests"), help: "Print one line per request answered (method, path, status, time taken).")
    var logRequests = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535, got \(port)") }
        guard latency >= 0 else { throw ValidationError("--latency must not be negative, got \(latency)") }
        guard EmulatedEffect(rawValue: effect) != nil else { throw ValidationError("--effect must be none or negative, got \(effect)") }
        if let latencyMax, latencyMax < latency {
            throw ValidationError("--latency-max must be at least --latency (\(latency)), got \(latencyMax)")
        }
        guard retention > 0 else { throw ValidationError("--retention must be positive, got \(retention)") }
        for fault in faults + pollFaults where EmulatedFault(parsing: fault) == nil {
            throw ValidationError("--fault \(fault) is not a fault; use one of: \(EmulatedFault.spellings.joined(separator: ", "))")
        }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let signing = ProviderCatalog.all.compactMap(\.callback).first { environment[$0.secretVariable]?.isEmpty == false }
        let secret = signing.flatMap { environment[$0.secretVariable] }
        var log: (@Sendable (String) -> Void)? = nil
        if logRequests { log = { @Sendable line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) } }
        let emulator = EditEmulator(
            apiKey: apiKey, latency: .milliseconds(Int(latency * 1000)), signingSecret: secret,
            effect: EmulatedEffect(rawValue: effect) ?? .none, retention: retention,
            latencyMax: latencyMax.map { .milliseconds(Int($0 * 1000)) }, recordBodies: recordBodies, requestLog: log)
        emulator.inject(faults.compactMap(EmulatedFault.init(parsing:)))
        emulator.injectIntoPolls(pollFaults.compactMap(EmulatedFault.init(parsing:)))
        try await emulator.run(port: port) { bound in
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
            if let signing { lines.append("callbacks are signed with \(signing.secretVariable)") }
            TextStream.standardOutput.write(lines.joined(separator: "\n") + "\n")
        }
    }
}
