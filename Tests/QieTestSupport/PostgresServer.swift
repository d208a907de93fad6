import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL server for the tests of one process, started on
/// first use by `scripts/pg-server.sh` (a new cluster on 127.0.0.1 and a free
/// port, a role and database `qie` with a random password) and stopped when
/// the process exits.
public enum PostgresServer {
    /// The server's URL, with its password (`postgres://qie:PASSWORD@127.0.0.1:PORT/qie`).
    public static var url: String {
        get throws {
            switch shared {
            case .success(let server): return server.url
            case .failure(let error): throw error
            }
        }
    }

    /// The URL of a new, empty database on the server, for a test that must not share one.
    public static func newDatabase() throws -> String {
        let base = try url
        let name = "qie_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        try psql(base, "CREATE DATABASE \(name)")
        guard let slash = base.lastIndex(of: "/") else { throw Failure(description: "no database in \(base)") }
        return base[..<slash] + "/" + name
    }

    /// Runs `sql` with psql against `url`.
    public static func psql(_ url: String, _ sql: String) throws {
        let (status, output) = try run("/usr/bin/psql", [url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        guard status == 0 else { throw Failure(description: "psql failed: \(output)") }
    }

    /// What `sql` returns from `url`, as psql prints it unaligned (`-At`): one row a line.
    public static func query(_ url: String, _ sql: String) throws -> String {
        let (status, output) = try run("/usr/bin/psql", [url, "-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql])
        guard status == 0 else { throw Failure(description: "psql failed: \(output)") }
        return output
    }

    /// The repository's root, from this file's place in it.
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    private struct Server {
        var folder: String
        var url: String
    }

    /// A failure to start or use the server, with what the script said.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong.
        public var description: String
    }

    private static let shared: Result<Server, Failure> = {
        let folder = "/tmp/qie-test-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let (status, output) = try run(repository + "/scripts/pg-server.sh", ["start", folder])
            guard status == 0 else {
                return .failure(Failure(description: "scripts/pg-server.sh start failed: \(output)"))
            }
            let url = output.split(separator: "\n").last.map(String.init) ?? ""
            stopFolder = folder
            atexit { PostgresServer.stop() }
            return .success(Server(folder: folder, url: url))
        } catch {
            return .failure(Failure(description: "cannot run scripts/pg-server.sh: \(error)"))
        }
    }()

    nonisolated(unsafe) private static var stopFolder: String?

    private static func stop() {
        guard let folder = stopFolder else { return }
        _ = try? run(repository + "/scripts/pg-server.sh", ["stop", folder])
    }

    /// Runs a program to its end with posix_spawn and waitpid; its output
    /// goes through a file, not a pipe: the server it starts inherits the
    /// descriptors it was given, and would hold a pipe open while it runs.
    /// (Foundation's Process is not used: its wait can stall when it is first
    /// used from a static initialiser on a busy cooperative thread.)
    private static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let log = NSTemporaryDirectory() + "qie-pg-run-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of this process is inherited: the server it starts
        // lives as long as the tests, and would hold open whatever it got.
        // Foundation learns that a child it started has ended when the
        // child's end of a socket pair closes; a server holding that end
        // (taken while another test started its child) kept the child
        // unreaped, and the test waiting on it spinning, until the end.
        // (glibc 2.34's posix_spawn_file_actions_addclosefrom_np, which the
        // Swift Glibc module does not import: looked up by name.)
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
            throw Failure(description: "this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or later is needed)")
        }
        guard unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3) == 0 else {
            throw Failure(description: "cannot keep this process's descriptors from \(executable)")
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure(description: "cannot start \(executable): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exited, text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
