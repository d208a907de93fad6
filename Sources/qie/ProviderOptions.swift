import ArgumentParser
import Foundation
import QieGateway
import QieImaging
import QiePipeline
import QieProviders

/// Choosing an endpoint (or several to route among) and the size asked of it.
struct ProviderOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Endpoint: \(ProviderCatalog.endpointList). See `qie providers`. Several of one model release, comma-separated (\(ProviderCatalog.routeExample)), route each image to one of them (--route).",
            valueName: "endpoint[,endpoint...]"))
    var provider: String

    @Option(
        help: ArgumentHelp(
            "With several endpoints: how each image picks one: \(Routing.Policy.allCases.map(\.rawValue).joined(separator: ", ")) (default \(Routing(endpoints: []).policy.rawValue)). It goes to the next only when the one picked refused it before taking it (nothing billed there).",
            valueName: "policy"))
    var route: String?

    /// The endpoints named, in order.
    var endpoints: [String] {
        provider.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The routing asked for: several endpoints, or none.
    func routing() throws -> Routing? {
        let names = endpoints
        let policy = try route.map { text in
            guard let policy = Routing.Policy(rawValue: text) else {
                throw ValidationError(
                    "--route must be \(Routing.Policy.allCases.map(\.rawValue).joined(separator: ", ")); got \"\(text)\"")
            }
            return policy
        }
        guard names.count > 1 else {
            if route != nil { throw ValidationError("--route needs several endpoints in --provider, such as \(ProviderCatalog.routeExample)") }
            return nil
        }
        var routing = Routing(endpoints: names)
        if let policy { routing.policy = policy }
        return routing
    }

    /// Edit options for the endpoint (or the route), every other setting at its default.
    func editOptions() throws -> EditOptions {
        var options = EditOptions(endpoint: endpoints.first ?? provider)
        options.routing = try routing()
        if let routing = options.routing { _ = try Flags.validating { try routing.profiles() } }
        return options
    }

    @Option(name: .customLong("aspect-ratio"), help: "Ask for this aspect ratio (W:H) instead of the closest one.")
    var aspectRatio: String?

    @Option(help: "Ask for this resolution tier (for example 1K) where the endpoint has tiers.")
    var resolution: String?

    /// The endpoint, or the first of the route.
    func profile() throws -> ProviderProfile { try ProviderOptions.profile(named: endpoints.first ?? provider) }

    static func profile(named name: String) throws -> ProviderProfile {
        try Flags.validating { try ProviderCatalog.profile(named: name) }
    }

    func sizeRequest(size: String?) throws -> SizeRequest {
        try ProviderOptions.sizeRequest(size: size, aspectRatio: aspectRatio, resolution: resolution)
    }

    static func sizeRequest(size: String?, aspectRatio: String?, resolution: String?) throws -> SizeRequest {
        try Flags.validating { try SizeRequest(size: size, aspectRatio: aspectRatio, resolution: resolution) }
    }
}

/// Prices set by the user, for endpoints that publish none or to override them.
struct PriceOptions: ParsableArguments {
    @Option(name: .customLong("price-per-image"), help: "Your price in USD per output image (overrides the endpoint's).")
    var pricePerImage: String?

    @Option(name: .customLong("price-per-megapixel"), help: "Your price in USD per output megapixel.")
    var pricePerMegapixel: String?

    @Option(name: .customLong("megapixel-rounding"), help: "How billed megapixels round: none, hundredth or whole.")
    var rounding = Edit.defaults.options.rounding.rawValue

    func validate() throws {
        _ = try override()
        _ = try megapixelRounding()
    }

    func override() throws -> PriceOverride {
        try Flags.validating {
            PriceOverride(
                perImage: try pricePerImage.map { try Decimal(usd: $0, for: .pricePerImage) },
                perMegapixel: try pricePerMegapixel.map { try Decimal(usd: $0, for: .pricePerMegapixel) })
        }
    }

    func megapixelRounding() throws -> MegapixelRounding {
        guard let value = MegapixelRounding(rawValue: rounding) else {
            throw Flags.validation(
                SettingError(.megapixelRounding, value: SettingError.quoted(rounding), .invalid(expected: "none, hundredth or whole")))
        }
        return value
    }
}

func reason(_ error: any Error) -> String {
    if let error = error as? EditError { return error.reason(naming: Flags.name) }
    if let error = error as? ImagingError { return error.reason(naming: Flags.name) }
    return Flags.message(error)
}

/// Each endpoint of a route as if every file went there, one line each:
/// its total, the files it cannot take, what routing saves against it, its rule.
func routeLines(_ endpoints: [CostReport.EndpointTotal], policy: Routing.Policy) -> [String] {
    ["routed (\(policy.rawValue)) among \(endpoints.map(\.endpoint).joined(separator: ", ")); each alone:"]
        + endpoints.map { one in
            var words = one.costUSD.map { "$" + $0 } ?? "unknown"
            if one.unpriced > 0 && one.costUSD != nil { words += " + \(one.unpriced) unknown" }
            if one.refused > 0 { words += ", cannot take \(one.refused) file\(one.refused == 1 ? "" : "s")" }
            if let saving = one.savingUSD { words += "; routing saves $\(saving)" }
            return "  \(one.endpoint): \(words) (\(ruleWords(one.rule)))"
        }
}

/// A price rule's words, with what to set where the endpoint publishes none.
func ruleWords(_ rule: String) -> String { rule == PricingRule.unpublished.summary ? priceSummary(.unpublished) : rule }

/// The price rule in words, with what to set where the endpoint publishes none.
func priceSummary(_ rule: PricingRule) -> String {
    rule == .unpublished ? "\(rule.summary) (set --price-per-image or --price-per-megapixel)" : rule.summary
}

struct Providers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the endpoints qie knows and what each accepts.",
        discussion: "--json prints the same as one JSON array, an object per endpoint (ProviderSummary in the library).")

    @Flag(help: "A JSON array: one object per endpoint.")
    var json = false

    @Flag(
        name: .customLong("litellm-config"),
        help: "Print a LiteLLM proxy model_list (YAML) for qie serve at its defaults (every endpoint, 127.0.0.1:8080); qie serve --litellm-config takes serve's options.")
    var liteLLMConfig = false

    func run() throws {
        if liteLLMConfig {
            let configuration = GatewayConfiguration.fromEnvironment(ProcessInfo.processInfo.environment)
            do {
                TextStream.standardOutput.write(try LiteLLMConfig(configuration).yaml)
            } catch {
                throw ValidationError("\(error)")
            }
            return
        }
        let summaries = ProviderSummary.all
        if json {
            TextStream.standardOutput.write(try JSONText.document(summaries))
            return
        }
        var out = LineBuffer()
        for profile in summaries {
            out.add("\(profile.id)  (\(([profile.provider + " " + profile.model] + profile.aliases.map { "alias " + $0 }).joined(separator: ", ")))")
            out.add("  endpoint: POST \(ProviderProfile.Routes.url(profile.routes.submit, base: profile.baseURL, pointedElsewhere: false))  (base URL from \(profile.baseURLVariable) if set)")
            if let enqueue = profile.routes.enqueue { out.add("  queue:    POST \(enqueue)") }
            if let poll = profile.routes.poll { out.add("  poll:     GET \(poll)") }
            if let result = profile.routes.result { out.add("  result:   GET \(result)") }
            if let events = profile.routes.events { out.add("  events:   GET \(events) (server-sent events)") }
            if let cancel = profile.routes.cancel { out.add("  cancel:   \(cancel)") }
            out.add("  release:  \(profile.version.rawValue) (route among endpoints of one release with --provider a,b)")
            out.add("  auth:     \(profile.auth.header): \(profile.auth.scheme) $\(profile.auth.keyVariable)")
            let images = profile.images
            out.add(
                "  images:   \(images.field) (\(images.isArray ? "array" : "one"), at most \(images.maxCount)), local files as \(images.inline); \(images.accepts.map(\.rawValue).joined(separator: "/"))"
            )
            out.add("  sizes:    \(profile.sizes)")
            let formats = profile.outputFormats.map { $0.format.rawValue == $0.spelling ? $0.spelling : "\($0.format.rawValue) as \"\($0.spelling)\"" }
            out.add(
                "  output:   \(profile.outputFormatField): \(formats.joined(separator: ", ")) (default \(profile.defaultOutputFormat.rawValue)); others converted locally"
            )
            let options = profile.fields.map { "\(Flags.name($0.setting)) (\($0.name)\($0.defaultValue.map { ", default " + $0 } ?? ""))" }
            out.add("  options:  \(options.isEmpty ? "none" : options.joined(separator: ", "))")
            out.add("  flow:     \(profile.flows.map(\.rawValue).joined(separator: ", ")); result at \(profile.result)")
            out.add("  price:    \(profile.pricePublished ? profile.price : "\(profile.price) (set --price-per-image or --price-per-megapixel)")")
            for note in profile.notes { out.add("  note:     \(note)") }
            out.add("")
        }
        out.flush()
    }
}
