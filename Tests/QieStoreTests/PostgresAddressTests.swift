import Foundation
@testable import QieStore
import QieTestSupport
import Testing

@Suite("PostgreSQL addresses: passwords from the password file, never shown; TLS to other machines")
struct PostgresAddressTests {
    @Test("A password in a 0600 password file (escapes, wildcards, first match) connects; a file others can read is ignored with libpq's warning")
    func passwordFile() async throws {
        let base = try #require(URLComponents(string: try PostgresServer.newDatabase()))
        let port = try #require(base.port)
        let database = String(base.path.dropFirst())
        let role = try #require(base.user)
        let password = try #require(base.password)
        func escaped(_ text: String) -> String { text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:") }

        let folder = NSTemporaryDirectory() + "qie-pgpass-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/pgpass"
        let lines = [
            "# a comment, then lines that do not match, then the one that does, then one that would also match",
            "127.0.0.1:\(port):other_db:\(role):wrong",
            "localhost:\(port):*:\(role):wrong",
            "127.0.0.1:*:\(database):someone_else:wrong",
            "127.0.0.1:\(port):*:\(role):\(escaped(password))",
            "10.1.2.3:5432:db\\:x:u\\\\v:p\\:a\\\\ss*",
            "*:*:*:*:wrong-too",
        ]
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        let text = "postgres://\(role)@127.0.0.1:\(port)/\(database)"
        let environment = ["PGPASSFILE": file, "HOME": folder]

        let url = try PostgresURL(text, environment: environment)
        #expect(url.passwordSource == .passwordFile(file) && url.warnings.isEmpty)
        let store = try await PostgresStore.open(url: url, scope: "/runs/pgpass")
        #expect(try await store.lastRun() == nil)
        await store.close()

        // Escaped colons and backslashes, in the fields matched and in the password.
        let odd = try PostgresURL("postgres://u%5Cv@10.1.2.3/db:x?sslmode=require", environment: environment)
        #expect(odd.passwordSource == .passwordFile(file) && odd.password == "p:a\\ss*", "\(String(describing: odd.password))")

        // PGPASSWORD comes first, as in libpq; an empty one is no password.
        #expect(try PostgresURL(text, environment: environment.merging(["PGPASSWORD": "x"]) { $1 }).passwordSource == .environment)
        #expect(try PostgresURL(text, environment: environment.merging(["PGPASSWORD": ""]) { $1 }).passwordSource == .passwordFile(file))

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        let open = try PostgresURL(text, environment: environment)
        #expect(open.passwordSource == nil)
        #expect(open.warnings == ["password file \"\(file)\" has group or world access; permissions should be u=rw (0600) or less; ignored"])
        do {
            _ = try await PostgresStore.open(url: open, scope: "/runs/pgpass")
            Issue.record("a password from a file others can read was used")
        } catch {
            #expect("\(error)".contains("the server asks for a password and none was given") && !"\(error)".contains(password), "\(error)")
        }
    }

    @Test("A server on another machine needs the URL to say sslmode; refused before anything is sent")
    func tlsToOtherMachines() throws {
        for text in [
            "postgres://qie@10.1.2.3/qie", "postgres://qie@db.internal:5432/qie", "postgres://qie@10.1.2.3/qie?sslmode=prefer",
            "postgresql://qie@[2001:db8::1]/qie?sslmode=allow",
        ] {
            let error = #expect(throws: StoreError.self) { try PostgresURL(text, environment: [:]) }
            #expect(error?.description.contains("sslmode=require") == true && error?.description.contains("TLS") == true, "\(text)")
        }
        for (text, mode) in [
            ("postgres://qie@10.1.2.3/qie?sslmode=require", "require"), ("postgres://qie@10.1.2.3/qie?sslmode=verify-full", "verify-full"),
            ("postgres://qie@10.1.2.3/qie?sslmode=disable", "disable"), ("postgres://qie@127.0.0.9/qie", "prefer"),
            ("postgres://qie@localhost/qie", "prefer"), ("postgres://qie@[::1]/qie", "prefer"),
            ("postgres://qie@/qie?host=/run/postgresql", "prefer"),
        ] {
            #expect(try PostgresURL(text, environment: [:]).sslMode == mode, "\(text)")
        }
    }

    @Test("A password is taken out of any text that carries a PostgreSQL URL, however the URL is spelled")
    func redaction() {
        let cases = [
            ("--ledger=postgres://qie:S3cret@db:5432/qie?sslmode=require", "--ledger=postgres://qie@db:5432/qie?sslmode=require"),
            ("postgres://qie:S3cret@127.0.0.1/qie", "postgres://qie@127.0.0.1/qie"),
            ("--state=postgresql://qie:S3/cr@et@db/qie", "--state=postgresql://qie@db/qie"),
            ("see https://x:y@example.com and postgres://u:S3cret@h/d", "see https://x:y@example.com and postgres://u@h/d"),
            ("postgres://u@h/d?sslmode=disable&password=S3cret", "postgres://u@h/d?sslmode=disable&password=***"),
            ("POSTGRES://u:S3cret@h/d", "POSTGRES://u@h/d"),
            ("--prompt=make it night", "--prompt=make it night"),
        ]
        for (text, redacted) in cases {
            #expect(PostgresURL.redacting(text) == redacted, "\(text)")
        }
    }
}
