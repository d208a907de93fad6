import Foundation
import ArgumentParser
import QieCore
import QieFiles
import QiePipeline

/// The command line's spelling of each setting: library errors name settings
/// as data, and the command line words them with its flags.
enum Flags {
    /// A setting named by its library name, as the command line spells it.
    static func name(setting name: String) -> String { Setting(rawValue: name).map(Self.name) ?? name }

    static func name(_ setting: Setting) -> String {
        switch setting {
        case .inputs: "the inputs"
        case .output: "--out"
        case .endpoint: "--provider"
        case .references: "--image"
        case .inferenceSteps: "--steps"
        case .keepICC: "--keep-icc"
        case .callbackURL: "--callback-url"
        case .baseURL: "--base-url"
        case .allowInsecureHTTP: "--allow-insecure-http"
        case .apiKey: "the API key"
        case .outputName: "--name"
        default: "--" + setting.rawValue.replacing(/[A-Z]/) { "-" + $0.output.lowercased() }
        }
    }

    /// An error as the command line says it: settings as flags.
    static func message(_ error: any Error) -> String {
        if let error = error as? any SettingNamingError { return error.message(naming: name) }
        return "\(error)"
    }

    /// A library error about a setting, as argument-parser's validation error
    /// (exit status 64, with the usage line).
    static func validation(_ error: any Error) -> ValidationError { ValidationError(message(error)) }

    /// Runs `body`, turning setting errors into validation errors.
    static func validating<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ValidationError {
            throw error
        } catch {
            throw validation(error)
        }
    }
}

/// Writes text to standard output or standard error, unbuffered.
struct TextStream: Sendable {
    let descriptor: Int32
    static let standardOutput = TextStream(descriptor: 1)
    static let standardError = TextStream(descriptor: 2)

    var isTerminal: Bool { Terminal.isTerminal(descriptor) }

    func write(_ text: String) { Terminal.write(descriptor, text) }
}

/// JSON as the command line prints it.
enum JSONText {
    /// `value` as one pretty-printed document (keys sorted, slashes as they are), and a newline.
    static func document(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    /// `value` as one compact line (keys sorted, slashes as they are), without the newline.
    static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
