/// The endpoints qie knows. A new endpoint is one file in `Profiles/` and one
/// entry here.
public enum ProviderCatalog {
    /// Every endpoint profile, in listing order.
    public static let all: [ProviderProfile] = [
        .runpodQwenImageEdit2511,
        .runpodQwenImageEdit,
        .runflowQwenImageEdit2511,
        .oxenQwenImageEdit2511,
        .lumenfallQwenImageEdit2511,
    ]

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
