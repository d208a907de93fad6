import Foundation
import QieClient
import QieEmulator
import QiePipeline
import QieProviders
import Synchronization
import Testing

/// A resolver that answers every name with `answer` and records the names asked.
private final class RecordingResolver: Sendable {
    let answer: [String]
    private let asked = Mutex<[String]>([])

    init(answer: [String]) { self.answer = answer }

    var questions: [String] { asked.withLock { $0 } }

    var resolver: HostResolver {
        HostResolver { host in
            self.asked.withLock { $0.append(host) }
            return self.answer
        }
    }
}

/// What a result address means must not depend on who reads it: an IPv4
/// address spelled other than as four decimal numbers is refused, and a
/// name is resolved once, every address it gave checked, and connected to
/// as checked (the namespace suite shows the connection itself).
@Suite("Result addresses: ambiguous IPv4 spellings refused, names resolved once and checked in full", .hangGuard)
struct ResultAddressTests {
    /// Spellings the system's resolver (inet_aton) reads as an IPv4 address
    /// that are not four decimal numbers, each with what it means there.
    static let ambiguous = [
        "012.0.0.1",  // 10.0.0.1 (octal), 12.0.0.1 to a reader
        "127.000.0.1", "127.0.0.01", "00.0.0.0", "0177.0.0.1",  // leading zeros: octal
        "0x7f.1", "0x7F.0.0.1", "0x7f000001", "0x",  // hex
        "2130706433", "017700000001", "1",  // one number for the whole address
        "127.1", "10.1", "10.0.1",  // fewer than four parts
        "127.0.0.1.", "10.0.0.1.",  // a trailing dot
        "1.2.3.4.5", "256.0.0.1", "example.123", "example.0x1",  // ends in a number, yet no address
    ]

    @Test("An address in a message hides a user name or password in any URL it holds, and nothing else")
    func shownAddresses() {
        let cases = [
            ("https://user:secret@cdn.example.com/r.png", "https://…@cdn.example.com/r.png"),
            ("https://cdn.example.com/a@b.png?x=1#y@z", "https://cdn.example.com/a@b.png?x=1#y@z"),
            ("https://a:b@x.example/p?next=http://c:d@y.example/q", "https://…@x.example/p?next=http://…@y.example/q"),
            ("https://token@x.example", "https://…@x.example"),
            ("not a url @ all", "not a url @ all"),
        ]
        for (address, shown) in cases { #expect(ResultChecks.shown(address) == shown, "\(address)") }
    }

    @Test("IPv4 addresses spelled other than as four decimal numbers are refused, naming the host; nothing is resolved")
    func ambiguousSpellings() throws {
        let played = RecordingResolver(answer: ["203.0.113.7"])
        for checks in [ResultChecks(endpoint: "https://203.0.113.10"), ResultChecks(endpoint: "http://127.0.0.1:8787"),
            ResultChecks(allowPrivateAddresses: true)]
        {
            for host in Self.ambiguous {
                let error = try #require(throws: ClientError.self, "\(host)") {
                    try checks.check("http://\(host):8080/a.png", endpoint: "runpod", resolver: played.resolver)
                }
                #expect(
                    error.message.contains("\(host) is an ambiguous IPv4 address; write it as four decimal numbers"),
                    "\(error.message)")
                #expect(error.hint == nil, "allowing private results does not make it any clearer")
            }
        }
        #expect(played.questions.isEmpty, "asked \(played.questions)")
    }

    @Test("Four decimal numbers are judged by their scope and connected to as written; names are resolved once and pinned")
    func canonicalAndNames() throws {
        let checks = ResultChecks(endpoint: "https://203.0.113.10")
        let played = RecordingResolver(answer: ["203.0.113.7", "198.51.100.4"])
        for (host, scope) in [
            ("10.0.0.1", "private"), ("127.0.0.1", "loopback"), ("169.254.169.254", "link-local"), ("0.0.0.0", "special"),
            ("255.255.255.255", "special"), ("100.64.0.1", "private"),
        ] {
            let error = try #require(throws: ClientError.self, "\(host)") {
                try checks.check("http://\(host)/a.png", endpoint: "runpod", resolver: played.resolver)
            }
            #expect(error.message.contains("\(host) is a \(scope) address"), "\(error.message)")
        }
        for host in ["203.0.113.9", "8.8.8.8", "198.51.100.255", "2001:db8::5", "::ffff:203.0.113.9"] {
            let written = host.contains(":") ? "[\(host)]" : host
            let target = try checks.check("http://\(written)/a.png", endpoint: "runpod", resolver: played.resolver)
            #expect(target.host == host && target.addresses.isEmpty, "an address is connected to as written")
        }
        #expect(played.questions.isEmpty)
        // Names, however number-like their first labels: resolved once each,
        // every address kept for the connection.
        for host in ["cafe.be", "0x7f.example", "1e100.net", "127.0.0.1.example.com"] {
            let target = try checks.check("https://\(host)/a.png", endpoint: "runpod", resolver: played.resolver)
            #expect(target.host == host && target.addresses == ["203.0.113.7", "198.51.100.4"])
        }
        #expect(played.questions == ["cafe.be", "0x7f.example", "1e100.net", "127.0.0.1.example.com"])
    }

    @Test("A name is refused when any of its addresses is not public, whichever comes first; its own endpoint's rules still apply")
    func everyAddressChecked() throws {
        let checks = ResultChecks(endpoint: "https://203.0.113.10")
        for answer in [["203.0.113.7", "10.0.0.1"], ["10.0.0.1", "203.0.113.7"], ["203.0.113.7", "fe80::1"], ["::ffff:127.0.0.1"]] {
            let error = try #require(throws: ClientError.self, "\(answer)") {
                try checks.check("https://results.example/a.png", endpoint: "runpod", resolver: RecordingResolver(answer: answer).resolver)
            }
            #expect(error.message.contains("results.example is a ") && error.message.contains("public addresses only"), "\(error.message)")
        }
        let none = try #require(throws: ClientError.self) {
            try checks.check("https://results.example/a.png", endpoint: "runpod", resolver: RecordingResolver(answer: []).resolver)
        }
        #expect(none.message.contains("results.example does not resolve"))
        // An endpoint on the user's own network may hand out private results:
        // still checked once and pinned to what was checked.
        let local = ResultChecks(endpoint: "http://10.1.2.3:8787")
        let target = try local.check(
            "http://results.example/a.png", endpoint: "runpod", resolver: RecordingResolver(answer: ["10.0.0.9"]).resolver)
        #expect(target.addresses == ["10.0.0.9"])
    }

    @Test("An endpoint whose result is this machine spelled otherwise (0177.0.0.1, 127.1, 0x7f000001) is refused, naming the host; nothing is fetched")
    func ambiguousResultFromEndpoint() async throws {
        // Every spelling below is 127.0.0.1 to the system's resolver: fetched,
        // it would reach the emulator, whose own (loopback) address lets
        // loopback results through.
        for spelling in ["0177.0.0.1", "127.1", "0x7f000001", "2130706433", "127.000.0.1", "0x7f.1"] {
            try await withEmulator { emulator, base in
                let port = try #require(URL(string: base)?.port)
                emulator.inject([.resultAddress("http://\(spelling):\(port)/files/a.png")])
                let error = await #expect(throws: EditError.self, "\(spelling)") {
                    try await Editor.with(runsync(base), environment: testEnvironment()) { editor in
                        try await editor.edit(EditInput(image: .data(try photo(160, 120))))
                    }
                }
                let reason = error.map { $0.reason(naming: \.name) } ?? ""
                #expect(
                    reason.contains("the result address http://\(spelling):\(port)/files/a.png is refused: \(spelling) is an ambiguous IPv4 address; write it as four decimal numbers"),
                    "\(reason)")
                #expect(emulator.resultRequests == 0, "\(spelling) was fetched")
                #expect(emulator.submissions(to: .runpodQwenImageEdit2511) == 1)
            }
        }
    }
}
