import Crypto
import Foundation
import QiePipeline
import QieStore

/// A client key the gateway accepts, and the id logs name it by.
public struct GatewayKey: Sendable, Equatable {
    /// The secret the client sends as `Authorization: Bearer ...`.
    public var secret: String
    /// A name for logs: `key-` and the first 8 hex digits of the secret's SHA-256.
    public var id: String

    /// A key; its id is derived from it.
    public init(_ secret: String) {
        self.secret = secret
        id = "key-" + SHA256.hash(data: Data(secret.utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    /// Keys from the environment's comma-separated list (`QIE_GATEWAY_KEYS`):
    /// each piece trimmed of spaces, empty pieces skipped.
    public static func keys(list text: String) -> [GatewayKey] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map(GatewayKey.init)
    }

    /// Keys from a keys file's text: one key per line, the whole line (a
    /// comma is part of the key, never a separator), trimmed of spaces;
    /// blank lines and lines starting with `#` are skipped. A file without
    /// any key is refused: it would otherwise start a gateway without keys.
    public static func keys(file text: String, path: String) throws(GatewayConfigurationError) -> [GatewayKey] {
        let keys = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .map(GatewayKey.init)
        if keys.isEmpty { throw .keysFile(path: path, reason: "holds no key (one key per line; blank lines and # comments are skipped)") }
        return keys
    }

    /// Keys from the keys file at `path` (see `keys(file:path:)`).
    public static func keys(contentsOf path: String) throws(GatewayConfigurationError) -> [GatewayKey] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .keysFile(path: path, reason: "cannot be read as UTF-8 text")
        }
        return try keys(file: text, path: path)
    }
}

/// Everything `qie serve` is started with. Endpoint keys are not in it: they
/// come from the environment the gateway is given, as for `qie edit`.
public struct GatewayConfiguration: Sendable {
    /// The address to listen on. Anything but loopback needs `keys`.
    public var host = "127.0.0.1"
    /// The port; 0 takes a free one (reported once listening).
    public var port = 8080
    /// The endpoints offered as models (ids or aliases); empty: all of them.
    /// The first is the default model.
    public var models: [String] = []
    /// How a model named by its release (`qwen-image-edit-2511`) picks
    /// among the offered endpoints that run it, per request (see `Routing`).
    public var route: Routing.Policy = .cheapest
    /// Client keys; empty: no key needed, loopback only.
    public var keys: [GatewayKey] = []
    /// What every edit starts from (timeouts, fit, background, prices, limits).
    /// Request fields override the model, count, format and quality. A
    /// result already in the format and size the client asked for is passed
    /// on as the endpoint made it once it decodes in full
    /// (`keepResultBytes`, on here); turn it off to have every result
    /// encoded again from its pixels, as folder runs do.
    /// Each edit's time limit, from submission to result, is 600 s here
    /// (folder runs wait longer: a client is waiting on this one).
    public var options: EditOptions = {
        var options = EditOptions(endpoint: ProviderCatalog.defaultProfile.id)
        options.keepResultBytes = true
        options.timeouts.overall = 600
        return options
    }()
    /// The largest request body taken, bytes.
    public var maxBodyBytes = 64 << 20
    /// The most pixels one request's answer may hold, in megapixels: `n`
    /// times the asked size (or the input's). Each is decoded, restored and
    /// encoded here; a request over it is refused with 400 before anything
    /// is sent. 64: four 16 MP photos, or ten 2048x2048 images and more.
    public var maxOutputMegapixels: Double = 64
    /// How slow a client may send its request before it is cut off.
    public var clientDeadlines = ClientDeadlines()
    /// Edits running at once; more wait in a queue.
    public var concurrency = 8
    /// Requests waiting beyond `concurrency`; more are answered 429.
    public var queueLimit = 64
    /// The path result files are served under (`/v1/files` gives
    /// `/v1/files/ID.png`).
    public var filesPath = "/v1/files"
    /// How long a result asked for as a URL stays downloadable, seconds.
    public var fileLifetime: TimeInterval = 3600
    /// How long an `Idempotency-Key` and its answer are kept, seconds (a
    /// day, as Stripe keeps them): a retry within it is answered from the
    /// first edit; after it the key is new again.
    public var keyLifetime: TimeInterval = 86400
    /// The URL clients reach the gateway at, for result links (behind a
    /// proxy); nil: the address it listens on.
    public var publicURL: String?
    /// Spending limit per UTC day across all clients, USD; nil: none.
    public var maxCostPerDay: Decimal?
    /// Spending limit per UTC day for each end user (the request's `user`),
    /// USD; nil: none. Reserved and settled as `maxCostPerDay` is, in the
    /// same transaction: an edit must fit both. While it is set, a request
    /// without `user` is refused (400): its money could be charged to no
    /// one's budget. Users are named by the clients, across every key: an
    /// application that must not share its users' budgets with another's
    /// gives them names of its own (`app1:alice`).
    public var maxCostPerUserPerDay: Decimal?
    /// How long each request's record (the page's list of requests, and
    /// the day's spending by key, model and user) is kept, seconds: 7 days.
    /// The thumbnails of its results last as long as result files
    /// (`fileLifetime`).
    public var recordLifetime: TimeInterval = 7 * 86400
    /// With `stream=true`, seconds between the comment lines that keep the
    /// connection alive while the endpoint works (proxies cut connections
    /// idle for a minute).
    public var streamKeepAlive: Double = 5
    /// Where the gateway keeps its state (idempotency keys, result files, the
    /// day's spending): a folder, created when missing. With `stateURL` the
    /// state is in PostgreSQL and the folder only holds uploads while they
    /// are read.
    public var stateDirectory: String
    /// A PostgreSQL URL (`postgres://USER@HOST/DATABASE`; the password from
    /// the URL or `PGPASSWORD`) where replicas behind a load balancer share
    /// idempotency keys, result files and the day's spending; nil: SQLite in
    /// `stateDirectory`, for one gateway.
    public var stateURL: String?
    /// How often expired files and keys are deleted: twice per the shorter
    /// lifetime, and at least once a minute.
    var sweepInterval: TimeInterval { max(0.5, min(60, fileLifetime / 2, keyLifetime / 2, recordLifetime / 2)) }
    /// With `stateURL`: seconds a replica may miss its heartbeat before the
    /// edits it was running count as stopped (their keys then answer that the
    /// endpoint may have charged, without sending again).
    public var stateLease: TimeInterval = 30

    /// A configuration keeping its state in `stateDirectory`.
    public init(stateDirectory: String) {
        self.stateDirectory = stateDirectory
    }

    /// The variable holding client keys, comma separated (see `GatewayKey.keys(list:)`).
    public static let keysVariable = "QIE_GATEWAY_KEYS"
    /// The variable naming where the state is kept when no `state` is given:
    /// a folder, or a PostgreSQL URL.
    public static let stateVariable = "QIE_GATEWAY_STATE"

    /// Every setting at its default, for front ends that show defaults
    /// (`qie serve --help`) and start from them. Its state folder is the
    /// default one of the process's environment.
    public static var defaults: GatewayConfiguration {
        GatewayConfiguration(stateDirectory: defaultStateDirectory(ProcessInfo.processInfo.environment))
    }

    /// The state folder used when none is named: `$XDG_STATE_HOME/qie/serve`,
    /// else `~/.local/state/qie/serve` (`$HOME`; the temporary folder when
    /// neither is set).
    public static func defaultStateDirectory(_ environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty { return state + "/qie/serve" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSTemporaryDirectory()
        return home + "/.local/state/qie/serve"
    }

    /// The configuration `environment` asks for, every other setting at its
    /// default: client keys from `QIE_GATEWAY_KEYS`, and the state from
    /// `state` (a folder, or a `postgres://` URL shared by replicas), else
    /// `QIE_GATEWAY_STATE`, else `defaultStateDirectory(_:)`. With a
    /// PostgreSQL state, `stateURL` is set and `stateDirectory` is the
    /// default folder, which then only holds uploads while they are read.
    /// Nothing is opened or checked here: `validate()` does that.
    public static func fromEnvironment(_ environment: [String: String], state: String? = nil) -> GatewayConfiguration {
        let chosen = (state ?? environment[stateVariable]).flatMap { $0.isEmpty ? nil : $0 }
        let folder = defaultStateDirectory(environment)
        var configuration: GatewayConfiguration
        if let chosen, PostgresURL.isPostgres(chosen) {
            configuration = GatewayConfiguration(stateDirectory: folder)
            configuration.stateURL = chosen
        } else {
            configuration = GatewayConfiguration(stateDirectory: chosen ?? folder)
        }
        configuration.keys = GatewayKey.keys(list: environment[keysVariable] ?? "")
        return configuration
    }

    /// Where the state is kept, as it may be shown: the folder, or the
    /// PostgreSQL URL without its password.
    public var stateLocation: String { stateURL.map(PostgresURL.redacting) ?? stateDirectory }

    /// Whether `host` only accepts connections from this machine.
    public var isLoopback: Bool {
        NetworkAddress.isLoopback(host: host)
    }

    /// Whether `response_format=url` is answered: links are built from
    /// `publicURL`, or from the loopback address the gateway listens on.
    /// Bound to any other address without `publicURL`, a link would name an
    /// address clients may not reach (`0.0.0.0`) or one taken from what a
    /// client sent, so such requests are refused with 400 instead.
    public var servesResultLinks: Bool { publicURL != nil || isLoopback }

    /// The endpoints offered, in order (the first is the default model).
    public func profiles() throws(GatewayConfigurationError) -> [ProviderProfile] {
        if models.isEmpty { return ProviderCatalog.all }
        var profiles: [ProviderProfile] = []
        for name in models {
            do {
                let profile = try ProviderCatalog.profile(named: name)
                if !profiles.contains(where: { $0.id == profile.id }) { profiles.append(profile) }
            } catch {
                throw .unknownModel(name, reason: error.message)
            }
        }
        return profiles
    }

    /// The model releases offered as models of their own: each stands for
    /// the offered endpoints that run it, in their order, and a request for
    /// it is routed among them by `route`.
    public func releases(among profiles: [ProviderProfile]) -> [(release: ModelVersion, endpoints: [ProviderProfile])] {
        ModelVersion.allCases.compactMap { release in
            let endpoints = profiles.filter { $0.version == release }
            return endpoints.isEmpty ? nil : (release, endpoints)
        }
    }

    /// Refuses what cannot be served safely or at all.
    public func validate() throws(GatewayConfigurationError) {
        if !isLoopback && keys.isEmpty { throw .keysNeeded(host: host) }
        if !(0...65535).contains(port) { throw .invalid("port", "a number from 0 to 65535") }
        if concurrency < 1 { throw .invalid("concurrency", "at least 1") }
        if queueLimit < 0 { throw .invalid("queue", "0 or more") }
        if maxBodyBytes < 1024 { throw .invalid("max body", "at least 1 KiB") }
        if !(maxOutputMegapixels >= 1) { throw .invalid("max output megapixels", "at least 1") }
        if !(clientDeadlines.headerSeconds > 0) || !(clientDeadlines.bodyGraceSeconds >= 0) || !(clientDeadlines.minimumBodyRate >= 0) {
            throw .invalid("client deadlines", "a header time over 0 s, a grace and a minimum body rate of 0 or more")
        }
        if fileLifetime <= 0 { throw .invalid("file lifetime", "more than 0 seconds") }
        if keyLifetime < 1 { throw .invalid("key lifetime", "at least 1 second") }
        if let limit = maxCostPerDay, limit <= 0 { throw .invalid("max cost per day", "more than 0") }
        if let limit = maxCostPerUserPerDay, limit <= 0 { throw .invalid("max cost per user per day", "more than 0") }
        if recordLifetime < 1 { throw .invalid("record lifetime", "at least 1 second") }
        if let url = stateURL {
            do {
                _ = try PostgresURL(url, environment: [:])
            } catch {
                throw .state("\(error)")
            }
        }
        if stateLease < 1 { throw .invalid("state lease", "at least 1 second") }
        let segments = filesPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard filesPath.hasPrefix("/"), !filesPath.hasSuffix("/"), !segments.isEmpty,
            segments.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(":") && $0 != "*" && $0 != "**" }),
            !["/v1/images/edits", "/v1/images/generations", "/v1/models", GatewayPage.path].contains(filesPath),
            !filesPath.hasPrefix(GatewayPage.path + "/")
        else { throw .invalid("files path", "a path such as /v1/files or /results, apart from the API's own routes and the page's") }
        if let url = publicURL {
            let parsed = URLComponents(string: url)
            let host = parsed?.host ?? ""
            guard let scheme = parsed?.scheme?.lowercased(), ["http", "https"].contains(scheme), !host.isEmpty,
                NetworkAddress.scope(of: host) != .special, parsed?.query == nil, parsed?.fragment == nil
            else { throw .invalid("public URL", "an http(s) URL that clients reach the gateway at, such as https://images.example.com") }
        }
        _ = try profiles()
    }
}

/// Why a gateway cannot start with its configuration.
public enum GatewayConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A non-loopback address without client keys.
    case keysNeeded(host: String)
    /// A model that names no endpoint.
    case unknownModel(String, reason: String)
    /// A value out of range: the setting and what it must be.
    case invalid(String, String)
    /// The state folder cannot be used.
    case state(String)
    /// A keys file that cannot be read or holds no key.
    case keysFile(path: String, reason: String)

    /// What is wrong and what to do.
    public var description: String {
        switch self {
        case .keysNeeded(let host):
            "refusing to listen on \(host) without client keys: anyone who can reach it could spend your endpoint credit; set \(GatewayConfiguration.keysVariable) (comma separated) or a keys file, or listen on 127.0.0.1"
        case .unknownModel(let name, let reason): "model \(name): \(reason)"
        case .invalid(let setting, let expected): "\(setting) must be \(expected)"
        case .state(let reason): "the gateway's state: \(reason)"
        case .keysFile(let path, let reason): "the keys file \(DisplayPath.escape(path)) \(reason)"
        }
    }
}
