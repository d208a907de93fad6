import Foundation
import QieProviders

/// How an emulator is run, as a value: its port, the key it accepts, how
/// long its edits take, what they do and what goes wrong. `qie emulate`
/// builds one from its options and the environment; a test or a tool builds
/// one the same way, and every default is here.
///
/// ```swift
/// var configuration = EmulatorConfiguration()
/// configuration.port = 0
/// configuration.latency = 2
/// try configuration.validate()
/// let emulator = EditEmulator(configuration: configuration)
/// ```
public struct EmulatorConfiguration: Sendable, Equatable {
    /// The port on 127.0.0.1; 0 picks a free one.
    public var port = 8787
    /// The key (bearer token or the host's own scheme) the emulator accepts.
    public var apiKey = "emulator-key"
    /// Seconds from submission to result.
    public var latency: Double = 0
    /// When set, each submission's latency is drawn between `latency` and this, in seconds.
    public var latencyMax: Double? = nil
    /// What the emulated edit does to the input.
    public var effect: EmulatedEffect = .none
    /// Seconds finished jobs and result files are kept before they are forgotten.
    public var retention: Double = 3600
    /// Faults played instead of normal answers, one per submission, in order.
    public var faults: [EmulatedFault] = []
    /// Faults played instead of status polls' answers, in order.
    public var pollFaults: [EmulatedFault] = []
    /// A folder every accepted submission's body is written to (with `index.jsonl`), for replay.
    public var recordBodies: String? = nil
    /// The secret callbacks are signed with; nil sends them unsigned.
    public var signingSecret: String? = nil
    /// The environment variable `signingSecret` was read from, for listings.
    public var signingVariable: String? = nil

    /// The defaults: port 8787, key `emulator-key`, no latency, no effect, an hour's retention, no faults.
    public init() {}

    /// The defaults, with the callback signing secret of the first host whose
    /// secret variable is set in `environment`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> EmulatorConfiguration {
        var configuration = EmulatorConfiguration()
        if let callback = ProviderCatalog.all.compactMap(\.callback).first(where: { environment[$0.secretVariable]?.isEmpty == false }) {
            configuration.signingSecret = environment[callback.secretVariable]
            configuration.signingVariable = callback.secretVariable
        }
        return configuration
    }

    /// A value the emulator cannot run with.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// The setting, as the configuration names it (`latencyMax`).
        public var setting: String
        /// What is wrong, in words, with the value given.
        public var message: String

        /// The problem in words, naming the setting as `naming` spells it.
        public func message(naming: (String) -> String) -> String { "\(naming(setting)) \(message)" }

        /// The problem in words.
        public var description: String { message(naming: { $0 }) }
    }

    /// Checks every value before anything listens.
    public func validate() throws(Problem) {
        guard (0...65535).contains(port) else { throw Problem(setting: "port", message: "must be 0 to 65535; got \(port)") }
        guard latency >= 0 else { throw Problem(setting: "latency", message: "must not be negative; got \(latency)") }
        if let latencyMax, latencyMax < latency {
            throw Problem(setting: "latencyMax", message: "must be at least the latency (\(latency)); got \(latencyMax)")
        }
        guard retention > 0 else { throw Problem(setting: "retention", message: "must be positive; got \(retention)") }
        guard !apiKey.isEmpty else { throw Problem(setting: "apiKey", message: "must not be empty") }
    }
}

extension EditEmulator {
    /// An emulator run as `configuration` says, its faults queued.
    public convenience init(configuration: EmulatorConfiguration, requestLog: (@Sendable (String) -> Void)? = nil) {
        self.init(
            apiKey: configuration.apiKey, latency: .milliseconds(Int(configuration.latency * 1000)),
            signingSecret: configuration.signingSecret, effect: configuration.effect, retention: configuration.retention,
            latencyMax: configuration.latencyMax.map { .milliseconds(Int($0 * 1000)) }, recordBodies: configuration.recordBodies,
            requestLog: requestLog)
        inject(configuration.faults)
        injectIntoPolls(configuration.pollFaults)
    }
}
