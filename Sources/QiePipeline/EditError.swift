import Foundation
import QieClient
import QieFiles
import QieImaging
import QieProviders

/// Why an edit (or an edit run) did not complete, as data. Each case keeps
/// the error of the layer it came from; messages name settings through
/// `message(naming:)`, so the command line can say `--max-cost` and an
/// HTTP front end a request field.
public enum EditError: SettingNamingError, Sendable {
    /// A setting cannot be used.
    case setting(SettingError)
    /// No prompt for an input; `textFile` names the `NAME.txt` that would give one.
    case noPrompt(textFile: String?)
    /// The endpoint's key variable is unset or empty.
    case missingKey(endpoint: String, variable: String)
    /// The input or a reference cannot be read, is not an image, or is damaged.
    case input(ImagingError)
    /// The mask cannot be used: not an image, no alpha, another shape than
    /// the input. Found before anything is sent.
    case mask(ImagingError)
    /// The endpoint's result could not be converted or restored.
    case result(ImagingError)
    /// The request could not be built for the endpoint.
    case request(ProvidersError)
    /// The request's body stays over the endpoint's payload limit for this
    /// flow even with its images encoded smaller; nothing was sent.
    case requestTooLarge(endpoint: String, flow: ProviderProfile.Flow, bytes: Int, limit: Int)
    /// The endpoint refused the request, the job failed, timed out, or the
    /// network failed after every retry.
    case endpoint(ClientError)
    /// An output could not be written.
    case output(OutputError)
    /// Sending would pass the budget; nothing was sent.
    case overBudget(BudgetRefusal)
    /// A budget is set but the endpoint publishes no price and none was set.
    case unpriced(endpoint: String)
    /// The job failed in an earlier run and failed jobs are not retried.
    case failedEarlier(reason: String)
    /// An earlier run sent it and got no usable answer: it may have been billed.
    case uncertainEarlier(reason: String)
    /// The endpoint accepted or answered the request, so it is billed
    /// (`cost`, USD, when priced), and its results could not be had: the
    /// endpoint failed the job, or they could not be fetched, decoded or
    /// written (`reason`). With `sendAgain` nil their links are kept and
    /// fetched again on resume; otherwise only that setting sends it again,
    /// paying again.
    case resultsLost(cost: Decimal?, reason: String, sendAgain: Setting?)
    /// The callback listener or event stream could not start.
    case listener(endpoint: String, flow: ProviderProfile.Flow, reason: String)
    /// The run's ledger could not be read or written.
    case ledger(String)
    /// The edit was stopped (cancelled) before it finished.
    case stopped
    /// Another worker sharing the run's store holds the job (this worker's
    /// lease on it ran out): it was not sent here.
    case yielded
    /// No prompt anywhere for a run: no default prompt, no manifest, no `NAME.txt`.
    case noPrompts
    /// The prompt manifest cannot be used.
    case manifest(ManifestError)
    /// The folder has no ledger: it is not the output of an edit run.
    case noLedger(folder: String)
    /// The folder's ledger records no run.
    case noRun(folder: String)
    /// The ledger was written before runs stored their configuration: it
    /// holds only the command line (`arguments`, run from `directory`).
    case legacyRun(folder: String, arguments: [String], directory: String)
    /// The ledger's run was stored by a newer qie, in configuration format `version`.
    case newerRun(folder: String, version: Int)
    /// The ledger's run names an address for `setting` (a base URL, a
    /// callback URL) that is neither the endpoint's `documented` one nor
    /// given again now: the key is not sent there unseen.
    case unconfirmedAddress(folder: String, setting: Setting, address: String, documented: String?, variable: String?)
    /// The ledger's run reads `path`, outside the folders a resumed run may read.
    case untrustedInput(folder: String, path: String, folders: [String])

    /// The message without the input's file name (for lines that name it already).
    public func reason(naming: (Setting) -> String) -> String {
        switch self {
        case .setting(let error): error.message(naming: naming)
        case .noPrompt(let textFile):
            textFile.map { "no prompt: give \(naming(.prompt)), a \(naming(.manifest)) row or a text file \($0) next to it" }
                ?? "no prompt: give \(naming(.prompt))"
        case .missingKey(let endpoint, let variable):
            "\(endpoint) needs an API key in \(variable) (read from the environment only)"
        case .input(let error): error.kind == .notAnImage && error.reason.isEmpty ? "not an image" : error.reason(naming: naming)
        case .mask(let error): "the mask cannot be used: \(error.reason(naming: naming))"
        case .result(let error): "the result could not be finished: \(error.reason(naming: naming))"
        case .request(let error): error.message(naming: naming)
        case .requestTooLarge(let endpoint, let flow, let bytes, let limit):
            "not sent: the request is \(bytes) bytes even with its images encoded as small as qie goes, over \(endpoint)'s limit of \(limit) bytes for the \(flow.rawValue) flow; send fewer or smaller \(naming(.references)), ask a smaller \(naming(.size)), or choose a \(naming(.flow)) with a larger limit"
        case .endpoint(let error): error.message(naming: naming)
        case .output(let error): "cannot write \(DisplayPath.escape(error.path)): \(error.reason)"
        case .overBudget(let refusal):
            "not sent: it would pass \(naming(.maxCost)) $\(refusal.limit) ($\(refusal.spent) spent, $\(refusal.inFlight) in flight, this edit ~$\(refusal.estimate))"
        case .unpriced(let endpoint):
            "\(naming(.maxCost)) needs a price: \(endpoint) publishes none (set \(naming(.pricePerImage)) or \(naming(.pricePerMegapixel)))"
        case .failedEarlier(let reason):
            "failed in an earlier run: \(reason) (\(naming(.retryFailed)) tries again)"
        case .uncertainEarlier(let reason):
            "uncertain: an earlier run sent it and got no usable answer (\(reason)); the endpoint may have made and billed it, so it is not sent again unless you give \(naming(.retryUncertain)) (which may pay twice)"
        case .resultsLost(let cost, let reason, let sendAgain):
            "paid for\(cost.map { " (~$\($0))" } ?? ""), and its results were lost: \(reason); "
                + (sendAgain.map { "only \(naming($0)) sends it again, paying again" }
                    ?? "resuming the run fetches them again while their links last, without paying again")
        case .listener(let endpoint, let flow, let reason): "\(endpoint): cannot start the \(flow.rawValue) listener: \(reason)"
        case .ledger(let reason): "the run ledger: \(reason)"
        case .stopped: "stopped"
        case .yielded: "another worker holds it now (this worker's lease on it ran out); it was not sent here"
        case .noPrompts:
            "no prompt: give \(naming(.prompt)), a \(naming(.manifest)), or a text file NAME.txt next to each image"
        case .manifest(let error): "manifest \(error.message(naming: naming))"
        case .noLedger(let folder):
            "\(DisplayPath.escape(folder)) has no qie ledger: it is not the output folder of an edit run (for a run whose jobs are in a shared PostgreSQL store, name the store: \(RunStoreSettings.urlVariable))"
        case .noRun(let folder): "the ledger in \(DisplayPath.escape(folder)) records no edit run"
        case .legacyRun(let folder, _, _):
            "the ledger in \(DisplayPath.escape(folder)) was written by an earlier qie and records only the command line; run that command again (finished jobs are still skipped)"
        case .unconfirmedAddress(let folder, let setting, let address, let documented, let variable):
            "the ledger in \(DisplayPath.escape(folder)) names \(naming(setting)) \(Sanitized.text(address, limit: 200))\(documented.map { ", not the endpoint's documented address \($0)" } ?? ""); the API key is not sent to an address read from a file. If you meant it, give it again: \(naming(setting)) \(Sanitized.text(address, limit: 200))\(variable.map { " (or set \($0))" } ?? "")"
        case .untrustedInput(let folder, let path, let folders):
            "the ledger in \(DisplayPath.escape(folder)) names \(DisplayPath.escape(path)), outside the folders a resumed run reads (\(folders.map(DisplayPath.escape).joined(separator: ", "))); resume from a folder that holds it, or start the edit again with those inputs (finished jobs are skipped)"
        case .newerRun(let folder, let version):
            "the ledger in \(DisplayPath.escape(folder)) stores a run in format \(version), newer than this qie reads (\(EditRunConfiguration.currentVersion)); use a newer qie"
        }
    }

    /// The message, with the input's file name where the error knows it.
    public func message(naming: (Setting) -> String) -> String {
        if case .input(let error) = self, let file = error.file { return "\(DisplayPath.escape(file)): \(reason(naming: naming))" }
        return reason(naming: naming)
    }

    /// The same failure seen from an edit: errors of the layers below are
    /// wrapped in their case (an imaging error is the input's).
    static func wrapping(_ error: any Error) -> EditError {
        switch error {
        case let error as EditError: error
        case let error as SettingError: .setting(error)
        case let error as ImagingError: .input(error)
        case let error as ProvidersError: error.setting.map(EditError.setting) ?? .request(error)
        case let error as ClientError: .endpoint(error)
        case let error as OutputError: .output(error)
        case is CancellationError: .stopped
        default: .ledger("\(error)")
        }
    }
}
