import Foundation

/// qie's own records that another library opens by name (SQLite opens its
/// database, and the journals beside it, by path, with no way to ask it not
/// to follow a link): each is made safe before that library opens it, and
/// checked again after.
///
/// A record holds prompts, job ids and result URLs, so it is readable by the
/// user only (0600), whatever the folder's umask or the mode an earlier
/// version left. A symbolic link where a record belongs (`.qie-ledger.sqlite
/// -> ~/.bashrc`, planted by someone who can write into the folder) is
/// refused with an error naming it, never followed.
package enum PrivateFile {
    /// The suffixes of the files SQLite keeps beside a database.
    package static let sqliteCompanions = ["-wal", "-shm", "-journal"]

    /// Creates `path` when missing (0600, never through a link), else checks
    /// it is a regular file that is not a link and sets it to 0600; refuses
    /// a link at any of its `companions` (`path` + suffix) and sets those
    /// present to 0600. Returns the file's identity, for `confirm`.
    package static func prepare(_ path: String, companions: [String] = sqliteCompanions) throws(OutputError) -> FileIdentity {
        let identity = try secure(path)
        for suffix in companions where Platform.linkStatus(path + suffix) != nil { _ = try secure(path + suffix) }
        return identity
    }

    /// After the library opened `path`: it is still the file `prepare`
    /// made safe (not swapped for a link meanwhile), and its companions,
    /// which the library may have created since, are private and no links.
    package static func confirm(_ path: String, is identity: FileIdentity, companions: [String] = sqliteCompanions) throws(OutputError) {
        guard let found = Platform.linkStatus(path), !found.isLink, FileIdentity(found.status) == identity else {
            throw OutputError(path: path, reason: "was replaced while it was being opened; " + linkAdvice)
        }
        for suffix in companions where Platform.linkStatus(path + suffix) != nil { _ = try secure(path + suffix) }
    }

    /// Opens `path` (creating it) without following a link, makes it 0600 and closes it.
    private static func secure(_ path: String) throws(OutputError) -> FileIdentity {
        let descriptor: Int32
        do {
            descriptor = try Platform.openOwnFile(path, mode: 0o600)
        } catch {
            if error.isLink { throw OutputError(path: path, reason: "is a symbolic link; " + linkAdvice) }
            if error.isNotRegular { throw OutputError(path: path, reason: "is not a regular file; remove it, or choose another folder") }
            throw OutputError(path: path, reason: "cannot be opened: \(error.text)")
        }
        defer { Platform.close(descriptor) }
        do {
            return FileIdentity(try Platform.status(of: descriptor))
        } catch {
            throw OutputError(path: path, reason: "cannot be read: \(error.text)")
        }
    }

    /// A new file at `path` for writing, readable by the user only: created
    /// with `O_CREAT|O_EXCL` and never through a link, so a name someone
    /// else made first (a file or a link) is refused rather than used.
    package static func createNew(_ path: String) throws(OutputError) -> FileHandle {
        do {
            return FileHandle(fileDescriptor: try Platform.createPrivate(path), closeOnDealloc: true)
        } catch {
            throw OutputError(path: path, reason: "cannot create a new private file: \(error.text)")
        }
    }

    /// What to do about a link where qie keeps one of its own files.
    package static let linkAdvice =
        "qie never opens its own files through a link (one may have been planted to make it write elsewhere); remove it, or choose another folder"
}
