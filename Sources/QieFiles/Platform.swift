// The one file in qie that calls the C library directly: the few system
// calls Foundation does not offer with the guarantees qie needs (writing
// through no symbolic link, refusing named pipes without blocking, locks that
// die with their process, directory entries whose names are not UTF-8).
// Everything else uses Foundation. Tested on Debian and Ubuntu (glibc); the
// calls are POSIX, so other Unix systems are expected to build.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: its error number and the system's words for it.
package struct PlatformError: Error, Sendable, Equatable {
    /// The `errno` value.
    package var code: Int32

    /// The system's description of `code`.
    package var text: String { String(cString: strerror(code)) }
    /// No such file or folder.
    package var isMissing: Bool { code == ENOENT }
    /// Permission denied.
    package var isDenied: Bool { code == EACCES || code == EPERM }
    /// The disk is full.
    package var isDiskFull: Bool { code == ENOSPC }
    /// A path component is a symbolic link or a file where a folder was expected.
    package var isLinkOrNotFolder: Bool { code == ELOOP || code == ENOTDIR }
    /// The last component is a symbolic link, refused (`O_NOFOLLOW`).
    package var isLink: Bool { code == ELOOP }
    /// Not a regular file (a folder, pipe or device) where one was expected.
    package var isNotRegular: Bool { code == EINVAL || code == EISDIR }
    /// Something already exists there.
    package var alreadyExists: Bool { code == EEXIST }

    /// The error of the last failed call on this thread.
    static var last: PlatformError { PlatformError(code: errno) }
}

/// Thin wrappers over the system calls qie makes itself.
package enum Platform {
    /// What a path names.
    package enum Kind: Sendable { case regular, directory, other }

    /// A file's identity (device and inode), kind and size.
    package struct Status: Sendable, Hashable {
        package var device: UInt64
        package var inode: UInt64
        package var kind: Kind
        package var size: Int64
        /// The permission bits (`0o600`).
        package var mode: UInt32

        init(_ status: stat) {
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
            size = Int64(status.st_size)
            mode = UInt32(status.st_mode) & 0o7777
            switch status.st_mode & S_IFMT {
            case S_IFDIR: kind = .directory
            case S_IFREG: kind = .regular
            default: kind = .other
            }
        }
    }

    /// The status of what `path` names, following links; nil when nothing is there.
    package static func status(_ path: String) -> Status? {
        var result = stat()
        return stat(path, &result) == 0 ? Status(result) : nil
    }

    /// The status of what `path` names itself, a symbolic link as a link
    /// (`isLink`), not followed; nil when nothing is there.
    package static func linkStatus(_ path: String) -> (status: Status, isLink: Bool)? {
        var result = stat()
        guard lstat(path, &result) == 0 else { return nil }
        return (Status(result), result.st_mode & S_IFMT == S_IFLNK)
    }

    /// Whether `name` inside the open folder `directory` is a symbolic link.
    package static func isLink(in directory: Int32, _ name: String) -> Bool {
        var result = stat()
        return fstatat(directory, name, &result, AT_SYMLINK_NOFOLLOW) == 0 && result.st_mode & S_IFMT == S_IFLNK
    }

    /// The absolute path `path` leads to, every link and `..` resolved
    /// (`realpath`); nil when it leads nowhere.
    package static func resolved(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// Opens (creating it with `mode` when missing, less the umask) a file
    /// for reading and writing, never through a symbolic link and never a
    /// named pipe or device: `ELOOP` for a link, `EINVAL` for anything but a
    /// regular file. Its mode is set to `mode` exactly, whatever it was
    /// (left as it is when the file may only be read, or is another user's:
    /// the other checks still hold).
    package static func openOwnFile(_ path: String, mode: UInt32) throws(PlatformError) -> Int32 {
        var fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode)
        var writable = true
        if fd < 0, errno == EACCES || errno == EROFS {
            fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            writable = false
        }
        guard fd >= 0 else { throw .last }
        var result = stat()
        guard fstat(fd, &result) == 0 else {
            let error = PlatformError.last
            _ = close(fd)
            throw error
        }
        guard result.st_mode & S_IFMT == S_IFREG else {
            _ = close(fd)
            throw PlatformError(code: EINVAL)
        }
        // Another user's file keeps its mode (only its owner may change it).
        if writable, result.st_mode & 0o777 != mode_t(mode) { _ = fchmod(fd, mode_t(mode)) }
        return fd
    }

    /// Creates a new file at `path` for writing (`O_CREAT|O_EXCL`, never a
    /// link), readable by the user only.
    package static func createPrivate(_ path: String) throws(PlatformError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .last }
        return fd
    }

    /// The status of `name` inside the open folder `directory`, following links.
    package static func status(in directory: Int32, _ name: String) -> Status? {
        var result = stat()
        return fstatat(directory, name, &result, 0) == 0 ? Status(result) : nil
    }

    /// The status of an open file.
    package static func status(of descriptor: Int32) throws(PlatformError) -> Status {
        var result = stat()
        guard fstat(descriptor, &result) == 0 else { throw .last }
        return Status(result)
    }

    /// The names in a folder as raw bytes (they need not be UTF-8), without
    /// `.` and `..`, in no particular order.
    package static func entries(of folder: String) throws(PlatformError) -> [[UInt8]] {
        guard let directory = opendir(folder) else { throw .last }
        defer { closedir(directory) }
        var names: [[UInt8]] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        return names
    }

    /// Creates a folder (with `mode`, less the umask); an existing one is fine and left as it is.
    package static func makeFolder(_ path: String, mode: UInt32 = 0o755) throws(PlatformError) {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw .last }
    }

    /// Creates folder `name` inside `directory` (with `mode`, less the umask); an existing one is fine.
    package static func makeFolder(in directory: Int32, _ name: String, mode: UInt32 = 0o755) throws(PlatformError) {
        if mkdirat(directory, name, mode) != 0 && errno != EEXIST { throw .last }
    }

    /// Opens a folder for `*at` calls.
    package static func openFolder(_ path: String) throws(PlatformError) -> Int32 {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .last }
        return fd
    }

    /// Opens folder `name` inside `directory`, refusing a symbolic link.
    package static func openFolder(in directory: Int32, _ name: String) throws(PlatformError) -> Int32 {
        let fd = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .last }
        return fd
    }

    /// Creates `name` inside `directory` for writing; it must not exist and is
    /// never a link.
    package static func createNew(in directory: Int32, _ name: String, mode: UInt32 = 0o644) throws(PlatformError) -> Int32 {
        let fd = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .last }
        return fd
    }

    /// Renames within one folder, replacing the target atomically.
    package static func rename(in directory: Int32, _ from: String, to: String) throws(PlatformError) {
        guard renameat(directory, from, directory, to) == 0 else { throw .last }
    }

    /// Removes `name` from `directory`, ignoring failure.
    package static func remove(in directory: Int32, _ name: String) { unlinkat(directory, name, 0) }

    /// A second descriptor for the same open file.
    package static func duplicate(_ descriptor: Int32) throws(PlatformError) -> Int32 {
        let fd = dup(descriptor)
        guard fd >= 0 else { throw .last }
        return fd
    }

    /// Closes a descriptor; false when the close reported an error (for
    /// writes, a late write error).
    @discardableResult
    package static func close(_ descriptor: Int32) -> Bool {
        #if canImport(Darwin)
        Darwin.close(descriptor) == 0
        #elseif canImport(Musl)
        Musl.close(descriptor) == 0
        #else
        Glibc.close(descriptor) == 0
        #endif
    }

    /// Writes all of `bytes`, retrying interrupted and short writes.
    package static func write(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws(PlatformError) {
        guard let base = bytes.baseAddress else { return }
        var written = 0
        while written < bytes.count {
            #if canImport(Darwin)
            let n = Darwin.write(descriptor, base + written, bytes.count - written)
            #elseif canImport(Musl)
            let n = Musl.write(descriptor, base + written, bytes.count - written)
            #else
            let n = Glibc.write(descriptor, base + written, bytes.count - written)
            #endif
            if n < 0 {
                if errno == EINTR { continue }
                throw .last
            }
            written += n
        }
    }

    /// Opens a file for reading without waiting on a named pipe (opening one
    /// would block until a writer comes); the caller checks the kind. With
    /// `followingLinks` false a symbolic link (as the last component) is
    /// refused (`ELOOP`).
    package static func openForReading(_ path: String, followingLinks: Bool = true) throws(PlatformError) -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followingLinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else { throw .last }
        return fd
    }

    /// Opens `name` inside `directory` for reading, refusing a symbolic link
    /// (`ELOOP`) and never waiting on a named pipe; the caller checks the kind.
    package static func openForReading(in directory: Int32, _ name: String) throws(PlatformError) -> Int32 {
        let fd = openat(directory, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)
        guard fd >= 0 else { throw .last }
        return fd
    }

    /// Reads up to `buffer.count` bytes; 0 at the end of the file.
    package static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(PlatformError) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        while true {
            #if canImport(Darwin)
            let n = Darwin.read(descriptor, base, buffer.count)
            #elseif canImport(Musl)
            let n = Musl.read(descriptor, base, buffer.count)
            #else
            let n = Glibc.read(descriptor, base, buffer.count)
            #endif
            if n >= 0 { return n }
            if errno != EINTR { throw .last }
        }
    }

    /// Takes an exclusive lock without waiting; false when another process
    /// holds it. The system drops the lock when the process ends, however it ends.
    package static func tryLock(_ descriptor: Int32) -> Bool { flock(descriptor, LOCK_EX | LOCK_NB) == 0 }

    /// The first bytes of an open file, from offset 0.
    package static func readStart(_ descriptor: Int32, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, 0) }
        return Array(bytes.prefix(max(0, n)))
    }

    /// Replaces an open file's content with `text`.
    package static func replaceContent(_ descriptor: Int32, with text: String) {
        _ = ftruncate(descriptor, 0)
        _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }

    /// This process's id.
    package static var processID: Int32 { getpid() }

    /// Whether a descriptor is a terminal.
    package static func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) == 1 }

    /// The interrupt signal's number (Ctrl-C).
    package static var interruptSignal: Int32 { SIGINT }

    /// Ends the process with `status`.
    package static func exitNow(_ status: Int32) -> Never { exit(status) }

    /// Leaves Ctrl-C to a dispatch source instead of ending the process.
    package static func ignoreInterruptSignal() { _ = signal(SIGINT, SIG_IGN) }

    /// Every numeric address `host` resolves to (IPv4 and IPv6, as text),
    /// through the system resolver; nil when it does not resolve. Blocking.
    package static func addresses(of host: String) -> [String]? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(first) }
        var found: [String] = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(
                current.pointee.ai_addr, current.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0
            {
                let address = String(cString: text)
                if !found.contains(address) { found.append(address) }
            }
            entry = current.pointee.ai_next
        }
        return found
    }
}
