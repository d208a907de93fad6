import ArgumentParser
import Foundation
import Logging
import QieFiles
import QieGateway
import QiePipeline
import QieStore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve an OpenAI-compatible images API over the edit endpoints.",
        discussion: """
            POST /v1/images/edits takes what the OpenAI SDKs send (image or image[], prompt, model, n, \
            size, response_format, output_format, output_compression, background, quality, stream; \
            seed and negative_prompt besides) and runs the edit on the endpoint the model names \
            (GET /v1/models lists them). qie supplies what the endpoint lacks: any size (planned to the \
            nearest accepted one and restored to exactly the size asked), n (repeated requests where \
            the endpoint has no count), output formats, result URLs (GET /v1/files/ID), cost \
            (x-litellm-response-cost) and Idempotency-Key. Endpoint keys come from the environment as for \
            `qie edit` (each endpoint's variable, listed by `qie providers`) and never leave the gateway. Clients send a gateway key \
            from QIE_GATEWAY_KEYS (comma separated) or --keys-file; without keys the gateway listens \
            on loopback only.
            """)

    @Option(help: "Address to listen on. Anything but loopback needs gateway keys.")
    var host = "127.0.0.1"

    @Option(help: "Port (0 picks a free one; the address is printed once listening).")
    var port = 8080

    @Option(name: .customLong("provider"), help: "An endpoint to offer as a model (repeat for more; the first is the default). Default: all.")
    var providers: [String] = []

    @Option(name: .customLong("keys-file"), help: "A file of gateway keys, one per line (added to QIE_GATEWAY_KEYS).")
    var keysFile: String?

    @Option(
        help: ArgumentHelp(
            "Where the gateway keeps idempotency keys, result files and the day's spending: a folder (SQLite), or postgres://USER@HOST/DATABASE shared by replicas behind a load balancer.",
            discussion: "Default: QIE_GATEWAY_STATE, else $XDG_STATE_HOME/qie/serve. A password comes from the URL, PGPASSWORD or ~/.pgpass (PGPASSFILE); a server on another machine needs ?sslmode=require, verify-full or disable."))
    var state: String?

    @Option(help: "With a PostgreSQL state: seconds a replica may miss its heartbeat before its running edits count as stopped.")
    var lease: Double = 30

    @Option(name: .customLong("max-body"), help: "Largest request body, MiB.")
    var maxBody = 64

    @Option(
        name: .customLong("max-output-megapixels"),
        help: "Most megapixels one request's answer may hold (n times the size asked); more is refused with 400. Default: \(Int(GatewayConfiguration(stateDirectory: "").maxOutputMegapixels)).")
    var maxOutputMegapixels: Double?

    @Option(help: "Edits running at once; more wait in the queue.")
    var concurrency = 8

    @Option(help: "Requests waiting beyond --concurrency; more are answered 429.")
    var queue = 64

    @Option(help: "Per-edit time limit in seconds, from submission to result.")
    var timeout: Double = 600

    @Option(name: .customLong("file-lifetime"), help: "Seconds a result asked for as a URL stays downloadable.")
    var fileLifetime: Double = 3600

    @Option(name: .customLong("key-lifetime"), help: "Seconds an Idempotency-Key and its answer are kept; a retry after that edits again.")
    var keyLifetime: Double = 86400

    @Option(name: .customLong("files-path"), help: "The path result URLs are served under.")
    var filesPath = "/v1/files"

    @Option(name: .customLong("public-url"), help: "The URL clients reach the gateway at, for result links behind a proxy.")
    var publicURL: String?

    @Option(name: .customLong("max-cost-per-day"), help: "Spending limit per UTC day across all clients, USD.")
    var maxCostPerDay: String?

    @Option(name: .customLong("log-format"), help: "text or json: one line per request on standard error.")
    var logFormat = "text"

    @OptionGroup var price: PriceOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let chosen = state ?? environment["QIE_GATEWAY_STATE"].flatMap { $0.isEmpty ? nil : $0 }
        let shared = chosen.map { PostgresURL.isPostgres($0) } ?? false
        // With a shared state the folder only spools uploads while they are read.
        var configuration = GatewayConfiguration(stateDirectory: shared ? Self.defaultState(environment) : chosen ?? Self.defaultState(environment))
        if shared { configuration.stateURL = chosen }
        configuration.stateLease = lease
        configuration.host = host
        configuration.port = port
        configuration.models = providers
        var keys = GatewayKey.keys(list: environment["QIE_GATEWAY_KEYS"] ?? "")
        if let keysFile {
            do {
                keys += try GatewayKey.keys(contentsOf: keysFile)
            } catch {
                throw ValidationError("--keys-file: \(error)")
            }
        }
        configuration.keys = keys
        configuration.maxBodyBytes = maxBody << 20
        if let maxOutputMegapixels { configuration.maxOutputMegapixels = maxOutputMegapixels }
        configuration.concurrency = concurrency
        configuration.queueLimit = queue
        configuration.fileLifetime = fileLifetime
        configuration.keyLifetime = keyLifetime
        configuration.publicURL = publicURL
        configuration.filesPath = filesPath
        if let maxCostPerDay {
            configuration.maxCostPerDay = try Flags.validating { try Decimal(usd: maxCostPerDay, for: .maxCost, positive: true) }
        }
        configuration.options.timeouts.overall = timeout
        configuration.options.price = try price.override()
        configuration.options.rounding = try price.megapixelRounding()
        guard let format = GatewayLogHandler.Format(rawValue: logFormat) else {
            throw ValidationError("--log-format must be text or json, got \(logFormat)")
        }
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("\(error)")
        }

        let logger = Logger(label: "qie-serve") { _ in GatewayLogHandler(format: format) }
        let keyIDs = keys.map(\.id)
        let servesLinks = configuration.servesResultLinks
        let host = self.host
        if let url = configuration.stateURL, let address = try? PostgresURL(url, environment: environment) {
            for warning in address.warnings { TextStream.standardError.write("warning: \(warning)\n") }
        }
        let stateShown = configuration.stateURL.map { PostgresURL.redacting($0) } ?? configuration.stateDirectory
        try await Gateway(configuration, environment: environment, logger: logger).run { address in
            var lines = ["qie serve listening on \(address) (Ctrl-C to stop)"]
            lines.append(
                keyIDs.isEmpty
                    ? "no gateway keys: loopback clients only (set QIE_GATEWAY_KEYS to require keys)"
                    : "gateway keys: \(keyIDs.joined(separator: ", "))")
            lines.append("state: \(stateShown)")
            if !servesLinks {
                lines.append("result links: off (no --public-url while listening on \(host)); response_format=url is answered 400")
            }
            TextStream.standardOutput.write(lines.joined(separator: "\n") + "\n")
        }
    }

    /// `$XDG_STATE_HOME/qie/serve`, else `~/.local/state/qie/serve`.
    static func defaultState(_ environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty { return state + "/qie/serve" }
        return (environment["HOME"] ?? NSTemporaryDirectory()) + "/.local/state/qie/serve"
    }
}
