import Foundation

/// Held by the one run writing into an output folder, so two runs never work
/// (and pay) on the same jobs at once. The system releases it when the
/// process ends, however it ends, so a killed run never leaves it behind.
public final class RunLock: Sendable {
    /// The lock file's name inside the output folder.
    public static let fileName = ".qie-lock"
    private let descriptor: Int32

    /// Takes the folder's lock, or says which process holds it.
    public init(folder: String) throws(OutputError) {
        let path = (folder as NSString).appendingPathComponent(Self.fileName)
        let fd: Int32
        do {
            fd = try Platform.openOwnFile(path, mode: 0o600)
        } catch {
            if error.isLink { throw OutputError(path: path, reason: "is a symbolic link; " + PrivateFile.linkAdvice) }
            if error.isNotRegular { throw OutputError(path: path, reason: "is not a regular file; remove it, or choose another folder") }
            throw OutputError(path: path, reason: "cannot open the run lock: \(error.text)")
        }
        guard Platform.tryLock(fd) else {
            let holder = Platform.readStart(fd, count: 32)
            Platform.close(fd)
            let pid = String(decoding: holder, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw OutputError(
                path: folder,
                reason: "another qie edit\(pid.isEmpty ? "" : " (process \(pid))") is writing into this folder; wait for it to end or stop it, then run again")
        }
        Platform.replaceContent(fd, with: "\(Platform.processID)\n")
        descriptor = fd
    }

    deinit { Platform.close(descriptor) }
}
