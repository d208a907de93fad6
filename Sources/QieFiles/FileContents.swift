import Foundation

/// Whole files read safely: through one descriptor, opened without waiting
/// on a named pipe, checked from `fstat` (a regular file, at most the limit)
/// before a byte is read. A FIFO, a device such as `/dev/zero`, a socket or a
/// file over the limit is refused without being read, and what is returned
/// is exactly the bytes that were checked.
public enum FileContents {
    /// Why a file was not read.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// Nothing is there (or a link points nowhere).
        case missing
        /// It is a folder.
        case folder
        /// A device, pipe or socket.
        case notRegular
        /// Larger than the limit, in bytes.
        case tooLarge(size: Int64, limit: Int)
        /// The system refused to open or read it.
        case unreadable(String)
        /// A symbolic link, where links are not followed.
        case link

        /// In words, for messages that name the file.
        public var description: String {
            switch self {
            case .missing: "no such file"
            case .folder: "is a folder, not a file"
            case .notRegular: "is not a regular file (device, pipe or socket); copy its content to a file"
            case .tooLarge(let size, let limit): "is \(size) bytes, over the \(limit)-byte limit; refused before reading"
            case .unreadable(let reason): "cannot be read: \(reason)"
            case .link: "is a symbolic link, not followed here"
            }
        }
    }

    /// Whether `path` names a folder (following links).
    public static func isFolder(_ path: String) -> Bool { Platform.status(path)?.kind == .directory }

    /// Checks what `path` names from `stat` alone (following links): a
    /// regular file of at most `maxBytes`. Returns its size.
    @discardableResult
    public static func check(_ path: String, maxBytes: Int) throws(Refusal) -> Int64 {
        guard let status = Platform.status(path) else { throw .missing }
        return try checked(status, maxBytes: maxBytes)
    }

    /// Reads all of `path`, refusing it from `fstat` on the open descriptor
    /// first (see `check`). A file that shrinks while read returns what was
    /// there. With `followingLinks` false, a symbolic link at `path` itself
    /// is refused (`.link`) instead of followed.
    public static func read(_ path: String, maxBytes: Int, followingLinks: Bool = true) throws(Refusal) -> Data {
        let descriptor: Int32
        do {
            descriptor = try Platform.openForReading(path, followingLinks: followingLinks)
        } catch {
            throw error.isMissing ? .missing : !followingLinks && error.isLink ? .link : .unreadable(error.text)
        }
        defer { _ = Platform.close(descriptor) }
        return try read(descriptor: descriptor, maxBytes: maxBytes)
    }

    /// Reads all of an open file, checked from `fstat` first.
    package static func read(descriptor: Int32, maxBytes: Int) throws(Refusal) -> Data {
        let size: Int
        do { size = Int(try checked(try Platform.status(of: descriptor), maxBytes: maxBytes)) } catch let error as Refusal {
            throw error
        } catch {
            throw .unreadable("\(error)")
        }
        var data = Data(count: size)
        var filled = 0
        var failure: PlatformError? = nil
        data.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            while filled < size {
                do throws(PlatformError) {
                    let n = try Platform.read(descriptor, into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...]))
                    if n == 0 { break }
                    filled += n
                } catch {
                    failure = error
                    break
                }
            }
        }
        if let failure { throw .unreadable(failure.text) }
        if filled < size { data.removeSubrange(filled...) }
        return data
    }

    private static func checked(_ status: Platform.Status, maxBytes: Int) throws(Refusal) -> Int64 {
        switch status.kind {
        case .directory: throw .folder
        case .other: throw .notRegular
        case .regular: break
        }
        if status.size > Int64(maxBytes) { throw .tooLarge(size: status.size, limit: maxBytes) }
        return status.size
    }
}
