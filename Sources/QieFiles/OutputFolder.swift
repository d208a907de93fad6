import Foundation

/// Why a file could not be written.
public struct OutputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file or folder that could not be written.
    public var path: String
    /// Why, and what to do.
    public var reason: String

    /// A failure to write `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// The path (escaped for one line) and the reason.
    public var description: String { "\(DisplayPath.escape(path)): \(reason)" }
}

/// The folder outputs go to. Every write stays inside it: paths are walked
/// component by component with `openat`, refusing symbolic links and `..`,
/// and each file is written to a new temporary name (`O_CREAT|O_EXCL`, never
/// a link) and renamed into place, so a reader (or a crash) never sees half
/// a file. A symbolic link found where a file goes is refused with an
/// `OutputError` naming it, neither written through nor replaced. A folder
/// it creates is readable by the user only (0700): it holds prompts, job ids
/// and results.
public final class OutputFolder: Sendable {
    /// The folder's path, as given.
    public let path: String
    private let descriptor: Int32

    /// Opens (creating it if needed) the output folder.
    public init(path: String) throws(OutputError) {
        self.path = path
        do {
            try Platform.makeFolder(path, mode: 0o700)
        } catch {
            let hint = error.isMissing ? " (the folder it goes in, \((path as NSString).deletingLastPathComponent), does not exist: create it first)" : ""
            throw OutputError(path: path, reason: "cannot create the output folder: \(error.text)\(hint)")
        }
        do {
            descriptor = try Platform.openFolder(path)
        } catch {
            throw OutputError(path: path, reason: "cannot open the output folder: \(error.text)")
        }
    }

    deinit {
        Platform.close(descriptor)
    }

    /// Writes `data` at `relativePath` (slash-separated) atomically.
    ///
    /// - Parameters:
    ///   - data: the file's bytes.
    ///   - relativePath: where it goes, relative to the folder.
    ///   - input: a file that must not be replaced (the input):
    ///     if the destination is that file, nothing is written.
    ///   - isPrivate: created readable and writable by the user only (0600),
    ///     for records (sidecars, reports) rather than images.
    /// - Returns: the full path written.
    @discardableResult
    public func write(_ data: Data, to relativePath: String, protecting input: String? = nil, isPrivate: Bool = false)
        throws(OutputError) -> String
    {
        try write(to: relativePath, protecting: input, isPrivate: isPrivate) { file in try file.append(data) }
    }

    /// Writes a file produced piece by piece (never whole in memory), with the
    /// same guarantees as `write(_:to:protecting:isPrivate:)`.
    @discardableResult
    public func write(
        to relativePath: String, protecting input: String? = nil, isPrivate: Bool = false,
        _ produce: (inout StreamedFile) throws -> Void
    ) throws(OutputError) -> String {
        var pending = try begin(relativePath, protecting: input, isPrivate: isPrivate)
        var failure: String? = nil
        do {
            try produce(&pending.file)
        } catch let error as OutputError {
            failure = error.reason
        } catch {
            failure = "\(error)"
        }
        return try finish(pending, failure: failure)
    }

    /// Writes a file produced piece by piece by an asynchronous producer (from
    /// a database read a page at a time, say), with the same guarantees.
    @discardableResult
    public func write(
        to relativePath: String, protecting input: String? = nil, isPrivate: Bool = false,
        _ produce: (inout StreamedFile) async throws -> Void
    ) async throws(OutputError) -> String {
        var pending = try begin(relativePath, protecting: input, isPrivate: isPrivate)
        var failure: String? = nil
        do {
            try await produce(&pending.file)
        } catch let error as OutputError {
            failure = error.reason
        } catch {
            failure = "\(error)"
        }
        return try finish(pending, failure: failure)
    }

    /// A temporary file being written beside its final name.
    private struct Pending {
        var full: String
        var fileName: String
        var directory: Int32
        var temporary: String
        var descriptor: Int32
        var file: StreamedFile
    }

    /// Creates (readable by the user only) the folder at `relativePath`, each
    /// of its components inside this folder and none a link; returns its path.
    @discardableResult
    public func folder(_ relativePath: String) throws(OutputError) -> String {
        let (full, components) = try Self.split(relativePath, in: path)
        Platform.close(try open(components[...], full: full, creating: true))
        return full
    }

    /// The full path of `relativePath` when something is there already (a
    /// file, a folder, or a link, which is not followed), else nil.
    public func existing(_ relativePath: String) -> String? {
        guard let (full, _) = try? Self.split(relativePath, in: path) else { return nil }
        return (try? FileManager.default.attributesOfItem(atPath: full)) == nil ? nil : full
    }

    /// Reads the regular file at `relativePath` (at most `maxBytes`), reached
    /// through no link, as it is written.
    public func read(_ relativePath: String, maxBytes: Int = 256 << 20) throws(OutputError) -> Data {
        let (full, components) = try Self.split(relativePath, in: path)
        let directory = try open(components.dropLast(), full: full, creating: false)
        defer { Platform.close(directory) }
        let file: Int32
        do {
            file = try Platform.openForReading(in: directory, components[components.count - 1])
        } catch {
            throw OutputError(
                path: full, reason: error.isLink ? "is a symbolic link; " + PrivateFile.linkAdvice : Self.reason("cannot be read", error))
        }
        defer { Platform.close(file) }
        do {
            return try FileContents.read(descriptor: file, maxBytes: maxBytes)
        } catch {
            throw OutputError(path: full, reason: "\(error)")
        }
    }

    /// The full path of `relativePath` and its components, refusing an empty
    /// name and `.` or `..`.
    private static func split(_ relativePath: String, in path: String) throws(OutputError) -> (String, [String]) {
        let full = path.hasSuffix("/") ? path + relativePath : path + "/" + relativePath
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !components.isEmpty, !components.contains(where: { $0 == "." || $0 == ".." }) else {
            throw OutputError(path: full, reason: "output name is empty or leaves the output folder")
        }
        return (full, components)
    }

    /// Opens the folders `components` down from this one (creating them when
    /// asked), never through a link; the caller closes the descriptor.
    private func open(_ components: ArraySlice<String>, full: String, creating: Bool) throws(OutputError) -> Int32 {
        var directory: Int32
        do {
            directory = try Platform.duplicate(descriptor)
        } catch {
            throw OutputError(path: full, reason: Self.reason("cannot open the output folder", error))
        }
        for component in components {
            if creating {
                do {
                    try Platform.makeFolder(in: directory, component, mode: 0o700)
                } catch {
                    Platform.close(directory)
                    throw OutputError(path: full, reason: Self.reason("cannot create folder \"\(component)\"", error))
                }
            }
            let next: Int32
            do {
                next = try Platform.openFolder(in: directory, component)
            } catch {
                let reason =
                    error.isLinkOrNotFolder
                    ? "\"\(component)\" in the output folder is a link or a file, not a folder; nothing is written through links"
                    : Self.reason("cannot open folder \"\(component)\"", error)
                Platform.close(directory)
                throw OutputError(path: full, reason: reason)
            }
            Platform.close(directory)
            directory = next
        }
        return directory
    }

    /// Opens the folders down to the file (never through links), checks the
    /// output is not its own input, and creates the temporary file.
    private func begin(_ relativePath: String, protecting input: String?, isPrivate: Bool) throws(OutputError) -> Pending {
        let (full, components) = try Self.split(relativePath, in: path)
        let fileName = components[components.count - 1]
        let directory = try open(components.dropLast(), full: full, creating: true)

        // A link where the file goes is refused, not replaced: someone put
        // it there, and the file it names is not this output.
        if Platform.isLink(in: directory, fileName) {
            Platform.close(directory)
            throw OutputError(path: full, reason: "is a symbolic link; " + PrivateFile.linkAdvice)
        }
        if let input, let inputStatus = Platform.status(input), let targetStatus = Platform.status(in: directory, fileName),
            FileIdentity(inputStatus) == FileIdentity(targetStatus)
        {
            Platform.close(directory)
            throw OutputError(path: full, reason: "the output would replace its own input; choose another output folder")
        }

        let temporary = ".\(fileName).qie-\(Platform.processID)-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd: Int32
        do {
            fd = try Platform.createNew(in: directory, temporary, mode: isPrivate ? 0o600 : 0o644)
        } catch {
            Platform.close(directory)
            throw OutputError(path: full, reason: Self.reason("cannot create a temporary file", error))
        }
        return Pending(
            full: full, fileName: fileName, directory: directory, temporary: temporary, descriptor: fd,
            file: StreamedFile(descriptor: fd))
    }

    /// Flushes and closes the temporary file and moves it into place, or
    /// removes it when writing failed.
    private func finish(_ pending: Pending, failure: String?) throws(OutputError) -> String {
        var pending = pending
        var failure = failure
        defer { Platform.close(pending.directory) }
        if failure == nil {
            do {
                try pending.file.flush()
            } catch let error as OutputError {
                failure = error.reason
            } catch {
                failure = "\(error)"
            }
        }
        if !Platform.close(pending.descriptor) && failure == nil { failure = Self.reason("writing failed", .last) }
        if failure == nil {
            do {
                try Platform.rename(in: pending.directory, pending.temporary, to: pending.fileName)
            } catch {
                failure = Self.reason("cannot move the finished file into place", error)
            }
        }
        if let failure {
            Platform.remove(in: pending.directory, pending.temporary)
            throw OutputError(path: pending.full, reason: failure)
        }
        return pending.full
    }

    private static func reason(_ what: String, _ error: PlatformError) -> String {
        let hint = error.isDiskFull ? " (disk full)" : error.isDenied ? " (check the folder's permissions)" : ""
        return "\(what): \(error.text)\(hint)"
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

    /// Appends `text` as UTF-8.
    public mutating func append(_ text: String) throws {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 64 * 1024 { try flush() }
    }

    /// Appends `data`.
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
        do {
            try Platform.write(descriptor, raw)
        } catch {
            throw OutputError(path: "", reason: "writing failed: \(error.text)")
        }
    }
}
