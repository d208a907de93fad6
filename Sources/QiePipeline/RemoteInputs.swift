import Crypto
import Foundation
import QieClient
import QieFiles
import QieImaging

/// Inputs given as addresses (`https://example.com/photo.jpg`) rather than
/// paths: a folder run fetches each once into `remoteInputFolder` and edits
/// the file it fetched, so its ledger, outputs and resume work as for any
/// file. Addresses are fetched as results are (`EditClient.fetchImage`):
/// only `http`/`https`, every address the name resolves to (and every
/// redirect) checked before connecting, loopback, private and link-local
/// addresses refused unless `EditOptions.allowPrivateInputs`, at most
/// `maxResultBytes`, within the download deadline; then checked to be an
/// image within `limits`. An address that cannot be fetched is an input
/// problem named by the address, and the run goes on without it.
extension EditRunConfiguration {
    /// Whether `input` is an address (`https://` or `http://`) rather than a path.
    public static func isRemote(_ input: String) -> Bool {
        let lowered = input.lowercased()
        return lowered.hasPrefix("https://") || lowered.hasPrefix("http://")
    }

    /// Where inputs given as addresses are kept once fetched: `.qie-inputs`
    /// in the output folder (a run picking the folder up edits the same
    /// bytes, fetched once), or a folder in the temporary directory when
    /// there is no output folder (planning).
    public var remoteInputFolder: String {
        guard !output.isEmpty else {
            return (NSTemporaryDirectory() as NSString).appendingPathComponent("qie-inputs-\(getuid())")
        }
        return (resolve(output) as NSString).appendingPathComponent(".qie-inputs")
    }

    /// Where the input at `address` is (or will be) kept: a folder named by
    /// the address's hash, holding the file under the address's own name.
    public func remoteInputPath(_ address: String) -> String {
        let digest = SHA256.hash(data: Data(address.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        return (remoteInputFolder as NSString).appendingPathComponent(digest + "/" + Self.fileName(of: address))
    }

    /// How the input at `path` is named to the user: the address it was
    /// fetched from when it is the file an input given as an address was
    /// fetched to (without a user name or password), else the path itself.
    public func shownInput(_ path: String) -> String {
        for input in inputs where Self.isRemote(input) && remoteInputPath(input) == path {
            return ResultChecks.shown(input)
        }
        return path
    }

    /// Why the input at `address` could not be fetched, as the last attempt found.
    func remoteInputFailure(_ address: String) -> InputProblem? {
        let path = (remoteInputPath(address) as NSString).deletingLastPathComponent + ".failed"
        guard let data = FileManager.default.contents(atPath: path),
            let failure = try? JSONDecoder().decode(RemoteInputFailure.self, from: data)
        else { return nil }
        return failure.problem(address)
    }

    /// The name a fetched input is kept (and its outputs named) under: the
    /// address's last path component (decoded), any character but ASCII
    /// letters, digits, `.` and `-` written as `_`.
    static func fileName(of address: String) -> String {
        let last = URL(string: address)?.lastPathComponent ?? ""
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
        let kept = String(String.UnicodeScalarView(last.unicodeScalars.map { allowed.contains($0) ? $0 : "_" }))
        let trimmed = kept.trimmingCharacters(in: CharacterSet(charactersIn: "."))
        return trimmed.isEmpty ? "image" : String(trimmed.prefix(120))
    }
}

extension EditRun {
    /// Fetches every input given as an address that is not fetched yet (see
    /// `EditRunConfiguration.remoteInputFolder`), at most four at once, with
    /// `client` (or a client of its own). Returns the addresses that could
    /// not be fetched, each with why; `run()` calls this itself, and
    /// `estimate()` plans only what was fetched.
    public func fetchRemoteInputs(client: EditClient? = nil) async -> [InputProblem] {
        let config = configuration
        let addresses = Array(Set(config.inputs.filter(EditRunConfiguration.isRemote))).sorted()
            .filter { !FileManager.default.fileExists(atPath: config.remoteInputPath($0)) }
        guard !addresses.isEmpty else { return [] }
        let options = config.options
        let owned = client == nil ? Editor.makeClient(options) : nil
        let http = client ?? owned!
        let checks = ResultChecks(
            maxBytes: options.maxResultBytes, deadline: options.timeouts.download, allowPrivateAddresses: options.allowPrivateInputs)
        var problems: [InputProblem] = []
        await withTaskGroup(of: InputProblem?.self) { group in
            var next = addresses.makeIterator()
            func add() {
                guard let address = next.next() else { return }
                group.addTask { await Self.fetch(address, into: config.remoteInputPath(address), client: http, checks: checks, limits: options.limits) }
            }
            for _ in 0..<4 { add() }
            while let problem = await group.next() {
                if let problem { problems.append(problem) }
                add()
            }
        }
        if let owned { try? await owned.shutdown() }
        return problems.sorted { $0.path < $1.path }
    }

    /// Fetches one address into `path` (written whole, then renamed into
    /// place), or records why it could not be beside it.
    private static func fetch(
        _ address: String, into path: String, client: EditClient, checks: ResultChecks, limits: ImageLimits
    ) async -> InputProblem? {
        let folder = (path as NSString).deletingLastPathComponent
        let failure = folder + ".failed"
        do {
            let data = try await client.fetchImage(address, label: "input", checks: checks)
            do {
                let info = try ImageProbe.probe(data: data)
                try limits.check(info)
            } catch {
                throw ClientError(kind: .badResponse, message: "input: \(error.reason)")
            }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let partial = path + ".part"
            try data.write(to: URL(fileURLWithPath: partial))
            try FileManager.default.moveItem(atPath: partial, toPath: path)
            try? FileManager.default.removeItem(atPath: failure)
            return nil
        } catch {
            // Named by its address already: the message goes on from there.
            var reason = (error as? ClientError)?.message ?? "\(error)"
            if reason.hasPrefix("input: ") { reason.removeFirst("input: ".count) }
            let refused = (error as? ClientError)?.hint?.parts.contains(.setting(.allowPrivateInputs)) == true
            let recorded = RemoteInputFailure(reason: reason, privateAddress: refused)
            try? FileManager.default.createDirectory(
                atPath: (failure as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? JSONEncoder().encode(recorded).write(to: URL(fileURLWithPath: failure))
            return recorded.problem(address)
        }
    }
}

/// Why an address could not be fetched, kept beside the fetched inputs so
/// a later plan of the same run says it too.
struct RemoteInputFailure: Codable {
    var reason: String
    /// Refused for its private address: the setting that allows it is named.
    var privateAddress: Bool

    func problem(_ address: String) -> InputProblem {
        InputProblem(
            path: address, reason: reason,
            hint: privateAddress ? (Setting.allowPrivateInputs.name, "fetches it anyway, if you trust the address") : nil)
    }
}
