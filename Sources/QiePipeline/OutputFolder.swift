import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a file could not be written.
public struct OutputError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(DisplayPath.escape(path)): \(reason)" }
}

/// The folder outputs go to. Every write stays inside it: paths are walked
/// component by component with `openat`, refusing symbolic links and `..`,
/// and each file is written to a temporary name and renamed into place, so a
/// reader (or a crash) never sees half a file.
public final class OutputFolder: Sendable {
    public let path: String
    private let descriptor: Int32

    /// Opens (creating it if needed) the output folder.
    public init(path: String) throws(OutputError) {
        self.path = path
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw OutputError(path: path, reason: "cannot create the output folder: \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw OutputError(path: path, reason: "cannot open the output folder: \(String(cString: strerror(errno)))")
        }
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }

    /// Writes `data` at `relativePath` (slash-separated) atomically.
    ///
    /// - Parameter protecting: a file that must not be replaced (the input):
    ///   if the destination is that file, nothing is written.
    /// - Returns: the full path written.
    @discardableResult
    public func write(_ data: Data, to relativePath: String, protecting input: String? = nil) throws(OutputError)
        -> String
    {
        try write(to: relativePath, protecting: input) { file in try file.append(data) }
    }

    /// Writes a file produced piece by piece (never whole in memory), with the
    /// same guarantees as `write(_:to:protecting:)`.
    @discardableResult
    public func write(
        to relativePath: String, protecting input: String? = nil, _ produce: (inout StreamedFile) throws -> Void
    ) throws(OutputError) -> String {
        let full = path.hasSuffix("/") ? path + relativePath : path + "/" + relativePath
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let fileName = components.last,
            !components.contains(where: { $0 == "." || $0 == ".." })
        else {
            throw OutputError(path: full, reason: "output name is empty or leaves the output folder")
        }
        var directory = dup(descriptor)
        guard directory >= 0 else { throw OutputError(path: full, reason: posixReason("cannot open the output folder")) }
        defer { close(directory) }

        for component in components.dropLast() {
            if mkdirat(directory, component, 0o755) != 0 && errno != EEXIST {
                throw OutputError(path: full, reason: posixReason("cannot create folder \"\(component)\""))
            }
            let next = openat(directory, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else {
                let reason =
                    errno == ELOOP || errno == ENOTDIR
                    ? "\"\(component)\" in the output folder is a link or a file, not a folder; nothing is written through links"
                    : posixReason("cannot open folder \"\(component)\"")
                throw OutputError(path: full, reason: reason)
            }
            close(directory)
            directory = next
        }

        if let input {
            var inputStatus = stat()
            var targetStatus = stat()
            if stat(input, &inputStatus) == 0, fstatat(directory, fileName, &targetStatus, 0) == 0,
                FileIdentity(inputStatus) == FileIdentity(targetStatus)
            {
                throw OutputError(path: full, reason: "the output would replace its own input; choose another --out")
            }
        }

        let temporary = ".\(fileName).qie-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputError(path: full, reason: posixReason("cannot create a temporary file")) }
        var failure: String? = nil
        var file = StreamedFile(descriptor: fd)
        do {
            try produce(&file)
            try file.flush()
        } catch let error as OutputError {
            failure = error.reason
        } catch {
            failure = "\(error)"
        }
        if close(fd) != 0 && failure == nil { failure = posixReason("writing failed") }
        if failure == nil && renameat(directory, temporary, directory, fileName) != 0 {
            failure = posixReason("cannot move the finished file into place")
        }
        if let failure {
            unlinkat(directory, temporary, 0)
            throw OutputError(path: full, reason: failure)
        }
        return full
    }

    private func posixReason(_ what: String) -> String {
        let code = errno
        let hint = code == ENOSPC ? " (disk full)" : code == EACCES ? " (check the folder's permissions)" : ""
        return "\(what): \(String(cString: strerror(code)))\(hint)"
    }
}

/// A file being written by `OutputFolder.write(to:protecting:_:)`, buffered
/// in 64 KB pieces.
public struct StreamedFile {
    let descriptor: Int32
    private var buffer: [UInt8] = []

    init(descriptor: Int32) {
        self.descriptor = descriptor
        buffer.reserveCapacity(64 * 1024)
    }

    public mutating func append(_ text: String) throws {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 64 * 1024 { try flush() }
    }

    public mutating func append(_ data: Data) throws {
        if data.count >= 64 * 1024 {
            try flush()
            try data.withUnsafeBytes { try writeAll($0) }
        } else {
            buffer.append(contentsOf: data)
            if buffer.count >= 64 * 1024 { try flush() }
        }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) throws {
        var written = 0
        while written < raw.count {
            let n = Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                throw OutputError(path: "", reason: "writing failed: \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }
}
