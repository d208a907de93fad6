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

    /// The library's defaults, which the options below start from.
    private static let defaults = GatewayConfiguration.defaults

    @Option(help: "Address to listen on. Anything but loopback needs gateway keys.")
    var host = defaults.host

    @Option(help: "Port (0 picks a free one; the address is printed once listening).")
    var port = defaults.port

    @Option(name: .customLong("provider"), help: "An endpoint to offer as a model (repeat for more; the first is the default). Default: all.")
    var providers: [String] = defaults.models

    @Option(name: .customLong("keys-file"), help: "A file of gateway keys, one per line (added to \(GatewayConfiguration.keysVariable)).")
    var keysFile: String?

    @Option(
        help: ArgumentHelp(
            "Where the gateway keeps idempotency keys, result files and the day's spending: a folder (SQLite), or postgres://USER@HOST/DATABASE shared by replicas behind a load balancer.",
            discussion: "Default: \(GatewayConfiguration.stateVariable), else $XDG_STATE_HOME/qie/serve (~/.local/state/qie/serve). A password comes from the URL, PGPASSWORD or ~/.pgpass (PGPASSFILE); a server on another machine needs ?sslmode=require, verify-full or disable."))
    var state: String?

    @Option(help: "With a PostgreSQL state: seconds a replica may miss its heartbeat before its running edits count as stopped.")
    var lease = defaults.stateLease

    @Option(name: .customLong("max-body"), help: "Largest request body, MiB.")
    var maxBody = defaults.maxBodyBytes >> 20

    @Option(
        name: .customLong("max-output-megapixels"),
        help: "Most megapixels one request's answer may hold (n times the size asked); more is refused with 400.")
    var maxOutputMegapixels = defaults.maxOutputMegapixels

    @Option(help: "Edits running at once; more wait in the queue.")
    var concurrency = defaults.concurrency

    @Option(help: "Requests waiting beyond --concurrency; more are answered 429.")
    var queue = defaults.queueLimit

    @Option(help: "Per-edit time limit in seconds, from submission to result.")
    var timeout = defaults.options.timeouts.overall

    @Flag(
        name: .customLong("allow-private-inputs"),
        help: "Fetch image_url addresses on loopback, private and link-local addresses too (off: only public ones).")
    var allowPrivateInputs = defaults.options.allowPrivateInputs

    @Option(name: .customLong("file-lifetime"), help: "Seconds a result asked for as a URL stays downloadable.")
    var fileLifetime = defaults.fileLifetime

    @Option(name: .customLong("key-lifetime"), help: "Seconds an Idempotency-Key and its answer are kept; a retry after that edits again.")
    var keyLifetime = defaults.keyLifetime

    @Option(name: .customLong("files-path"), help: "The path result URLs are served under.")
    var filesPath = defaults.filesPath

    @Option(name: .customLong("public-url"), help: "The URL clients reach the gateway at, for result links behind a proxy.")
    var publicURL: String?

    @Option(name: .customLong("max-cost-per-day"), help: "Spending limit per UTC day across all clients, USD.")
    var maxCostPerDay: String?

    @Option(
        name: .customLong("max-cost-per-user-per-day"),
        help: "Spending limit per UTC day for each end user (the request's user field), USD; requests without user are then refused.")
    var maxCostPerUserPerDay: String?

    @Option(name: .customLong("record-lifetime"), help: "Seconds each request's record is kept for the page (/gateway).")
    var recordLifetime = defaults.recordLifetime

    @Option(name: .customLong("log-format"), help: "text or json: one line per request on standard error.")
    var logFormat = GatewayLogHandler.Format.text

    @Option(
        help: ArgumentHelp(
            "How a model named by its release (qwen-image-edit-2511) picks among the offered endpoints that run it: \(Routing.Policy.allCases.map(\.rawValue).joined(separator: ", ")).",
            valueName: "policy"))
    var route = defaults.route.rawValue

    @OptionGroup var price: PriceOptions

    @Flag(
        name: .customLong("litellm-config"),
        help: "Print a LiteLLM proxy model_list (YAML) for the gateway these options start, and exit: one model per model it offers, at its address (--public-url, else --host and --port).")
    var liteLLMConfig = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration = GatewayConfiguration.fromEnvironment(environment, state: state)
        if let keysFile {
            do {
                configuration.keys += try GatewayKey.keys(contentsOf: keysFile)
            } catch {
                throw ValidationError("--keys-file: \(error)")
            }
        }
        configuration.stateLease = lease
        configuration.host = host
        configuration.port = port
        configuration.models = providers
        guard let policy = Routing.Policy(rawValue: route) else {
            throw ValidationError("--route must be \(Routing.Policy.allCases.map(\.rawValue).joined(separator: ", ")); got \"\(route)\"")
        }
        configuration.route = policy
        configuration.maxBodyBytes = maxBody << 20
        configuration.maxOutputMegapixels = maxOutputMegapixels
        configuration.concurrency = concurrency
        configuration.queueLimit = queue
        configuration.fileLifetime = fileLifetime
        configuration.keyLifetime = keyLifetime
        configuration.publicURL = publicURL
        configuration.filesPath = filesPath
        if let maxCostPerDay {
            configuration.maxCostPerDay = try Flags.validating { try Decimal(usd: maxCostPerDay, for: .maxCost, positive: true) }
        }
        if let maxCostPerUserPerDay {
            do {
                configuration.maxCostPerUserPerDay = try Decimal(usd: maxCostPerUserPerDay, for: .maxCost, positive: true)
            } catch {
                throw ValidationError(error.message { _ in "--max-cost-per-user-per-day" })
            }
        }
        configuration.recordLifetime = recordLifetime
        configuration.options.timeouts.overall = timeout
        configuration.options.allowPrivateInputs = allowPrivateInputs
        configuration.options.price = try price.override()
        configuration.options.rounding = try price.megapixelRounding()
        do {
            try configuration.validate()
            if liteLLMConfig {
                TextStream.standardOutput.write(try LiteLLMConfig(configuration).yaml)
                return
            }
        } catch {
            throw ValidationError("\(error)")
        }

        let format = logFormat
        let logger = Logger(label: "qie-serve") { _ in GatewayLogHandler(format: format) }
        let keyIDs = configuration.keys.map(\.id)
        let servesLinks = configuration.servesResultLinks
        let host = self.host
        if let url = configuration.stateURL, let address = try? PostgresURL(url, environment: environment) {
            for warning in address.warnings { TextStream.standardError.write("warning: \(warning)\n") }
        }
        let stateShown = configuration.stateLocation
        try await Gateway(configuration, environment: environment, logger: logger).run { address in
            var lines = ["qie serve listening on \(address) (Ctrl-C to stop)"]
            lines.append(
                keyIDs.isEmpty
                    ? "no gateway keys: loopback clients only (set \(GatewayConfiguration.keysVariable) to require keys)"
                    : "gateway keys: \(keyIDs.joined(separator: ", "))")
            lines.append("state: \(stateShown)")
            if !servesLinks {
                lines.append("result links: off (no --public-url while listening on \(host)); response_format=url is answered 400")
            }
            TextStream.standardOutput.write(lines.joined(separator: "\n") + "\n")
        }
    }
}

extension GatewayLogHandler.Format: ExpressibleByArgument {}
