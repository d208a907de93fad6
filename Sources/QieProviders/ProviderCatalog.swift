/// The endpoints qie knows. A new endpoint is one file in `Profiles/` and one
/// entry here.
public enum ProviderCatalog {
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
        throw ProvidersError(
            .unknownProvider,
            "unknown provider \"\(name)\"; choose one of: "
                + all.map { ([$0.id] + $0.aliases).joined(separator: " | ") }.joined(separator: ", "))
    }
}

/// The one error type of the providers module.
public struct ProvidersError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        case unknownProvider, unsupportedSize, unsupportedOption, invalidOption, invalidResponse
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
