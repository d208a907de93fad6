/// The hosts and endpoints qie knows. A new host is one file in `Hosts/`
/// and one entry in `hosts`.
public enum ProviderCatalog {
    /// Every host, in listing order.
    public static let hosts: [any EndpointHost] = [RunPod(), Runflow(), Oxen(), Lumenfall(), Fal(), DashScope(), Replicate()]

    /// Every endpoint profile, in listing order: each host's in turn.
    public static let all: [ProviderProfile] = hosts.flatMap(\.profiles)

    /// The endpoint used when none is named: the first listed.
    public static var defaultProfile: ProviderProfile { all[0] }

    /// The endpoints, each as its id with its shortest alias, for help texts
    /// (`runpod-qwen-image-edit-2511 (runpod), ...`).
    public static var endpointList: String {
        all.map { profile in
            let alias = profile.aliases.min { $0.count < $1.count }
            return alias.map { "\(profile.id) (\($0))" } ?? profile.id
        }.joined(separator: ", ")
    }

    /// Two endpoints of the default endpoint's release, by their shortest
    /// aliases, as a route is written in help texts (`runpod,runflow`).
    public static var routeExample: String {
        all.filter { $0.version == defaultProfile.version }.prefix(2)
            .map { profile in profile.aliases.min { $0.count < $1.count } ?? profile.id }.joined(separator: ",")
    }

    /// The endpoints that take `option`, with the field each calls it, for
    /// help texts (`runflow sync_mode, lumenfall sync_mode`).
    public static func fieldNames(of option: EditOption) -> String {
        let named = all.compactMap { profile in
            profile.field(for: option).map { "\(profile.aliases.min { $0.count < $1.count } ?? profile.id) \($0.name)" }
        }
        return named.isEmpty ? "no endpoint" : named.joined(separator: ", ")
    }

    /// Finds a profile by id or alias, ignoring case.
    public static func profile(named name: String) throws(ProvidersError) -> ProviderProfile {
        let key = name.lowercased()
        if let profile = all.first(where: { $0.id == key || $0.aliases.contains(key) }) { return profile }
        let choices = all.map { ([$0.id] + $0.aliases).joined(separator: " | ") }.joined(separator: ", ")
        throw ProvidersError(
            .unknownProvider,
            SettingError(.endpoint, value: SettingError.quoted(name), .explained("is not an endpoint qie knows; choose one of: \(choices)")))
    }
}

/// The one error type of the providers module.
public struct ProvidersError: SettingNamingError, Sendable, Equatable {
    /// What kind of problem it is.
    public enum Kind: String, Sendable, Codable {
        /// No endpoint has that id or alias.
        case unknownProvider
        /// The endpoint does not take the size, aspect ratio or tier asked for.
        case unsupportedSize
        /// The endpoint has no field for an option.
        case unsupportedOption
        /// An option's value is malformed or out of range.
        case invalidOption
        /// An answer could not be read.
        case invalidResponse
    }

    /// What kind of problem it is.
    public var kind: Kind
    /// The message in plain words (settings named in words).
    public var message: String
    /// The setting concerned and its value, for option errors: front ends
    /// word the message with their own spelling of the setting.
    public var setting: SettingError?

    /// An error of `kind` with a message in plain words.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// An error about a setting.
    public init(_ kind: Kind, _ setting: SettingError) {
        self.kind = kind
        self.message = setting.description
        self.setting = setting
    }

    /// The message with settings spelled by `naming`.
    public func message(naming: (Setting) -> String) -> String {
        setting?.message(naming: naming) ?? message
    }
}
