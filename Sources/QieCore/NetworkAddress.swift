/// What kind of address a URL's host names, from its text alone (names other
/// than `localhost` are not resolved here).
public enum NetworkAddress {
    /// Whether `host` is this machine: `localhost` (and its subdomains),
    /// 127.0.0.0/8, or `::1` (with or without brackets).
    public static func isLoopback(host: String) -> Bool {
        let host = unbracketed(host.lowercased())
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        if let v4 = ipv4(host) { return v4.0 == 127 }
        if let v6 = ipv6(host) { return v6 == [UInt16](repeating: 0, count: 7) + [1] }
        return false
    }

    /// Where an address leads, judged from its numbers.
    public enum Scope: String, Sendable, Equatable {
        /// This machine: 127.0.0.0/8, `::1`.
        case loopback
        /// A private network: 10/8, 172.16/12, 192.168/16, 100.64/10 (shared), `fc00::/7`.
        case privateNetwork = "private"
        /// The local link: 169.254/16 (where cloud metadata services answer), `fe80::/10`.
        case linkLocal = "link-local"
        /// No host, multicast, broadcast or reserved: 0/8, 224/4, 240/4, `::`, `ff00::/8`.
        case special
        /// The public internet.
        case publicInternet = "public"
    }

    /// The scope of a numeric address (IPv4 dotted quad or IPv6, bracketed or
    /// not; IPv4-mapped IPv6 judged as its IPv4 address), or nil for a name.
    public static func scope(of host: String) -> Scope? {
        let host = unbracketed(host.lowercased())
        if let v4 = ipv4(host) { return scope(v4) }
        guard let v6 = ipv6(host) else { return nil }
        if v6[0..<5].allSatisfy({ $0 == 0 }) && v6[5] == 0xFFFF {
            return scope((UInt8(v6[6] >> 8), UInt8(v6[6] & 0xFF), UInt8(v6[7] >> 8), UInt8(v6[7] & 0xFF)))
        }
        if v6 == [UInt16](repeating: 0, count: 7) + [1] { return .loopback }
        if v6.allSatisfy({ $0 == 0 }) { return .special }
        if v6[0] & 0xFE00 == 0xFC00 { return .privateNetwork }
        if v6[0] & 0xFFC0 == 0xFE80 { return .linkLocal }
        if v6[0] & 0xFF00 == 0xFF00 { return .special }
        return .publicInternet
    }

    private static func scope(_ v4: (UInt8, UInt8, UInt8, UInt8)) -> Scope {
        switch v4 {
        case (127, _, _, _): .loopback
        case (10, _, _, _), (172, 16...31, _, _), (192, 168, _, _), (100, 64...127, _, _): .privateNetwork
        case (169, 254, _, _): .linkLocal
        case (0, _, _, _), (224...255, _, _, _), (192, 0, 0, _), (198, 18...19, _, _): .special
        default: .publicInternet
        }
    }

    /// The four octets of an IPv4 address written as four decimal numbers
    /// without leading zeros (`10.0.0.1`, not `010.0.0.1`), or nil.
    public static func ipv4(_ text: String) -> (UInt8, UInt8, UInt8, UInt8)? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.utf8.count), part.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                part.utf8.count == 1 || part.utf8.first != 0x30, let value = UInt8(part)
            else { return nil }
            octets.append(value)
        }
        return (octets[0], octets[1], octets[2], octets[3])
    }

    /// Whether `host` is an IPv4 address in any spelling but four decimal
    /// numbers: its last label (a trailing dot aside) is a number, decimal
    /// or `0x` hex, so the URL standard and the system's resolver
    /// (`inet_aton`) read it as an address, yet it is not a plain dotted
    /// quad. `012.0.0.1` is 10.0.0.1 to the resolver (octal) and 12.0.0.1 to
    /// a reader; `127.1`, `0x7f000001`, `2130706433` and `127.0.0.1.` are all
    /// this machine. Such a host means different addresses to different
    /// readers, so no result is fetched from it.
    public static func isAmbiguousIPv4(_ host: String) -> Bool {
        // An IPv6 address (its last group may be a dotted quad) is no IPv4 spelling.
        if host.contains(":") { return false }
        var labels = host.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count > 1, labels.last?.isEmpty == true { labels.removeLast() }
        guard let last = labels.last, isNumber(last) else { return false }
        return ipv4(host) == nil
    }

    /// A label the resolver reads as a number: decimal or octal digits, or
    /// `0x` followed by hex digits (or nothing).
    private static func isNumber(_ label: Substring) -> Bool {
        let bytes = Array(label.utf8)
        if bytes.count >= 2, bytes[0] == 0x30, bytes[1] | 0x20 == 0x78 {
            return bytes.dropFirst(2).allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0 | 0x20) }
        }
        return !bytes.isEmpty && bytes.allSatisfy { (0x30...0x39).contains($0) }
    }

    /// The eight 16-bit groups of an IPv6 address (`::` and a trailing
    /// dotted quad allowed, no zone), or nil.
    public static func ipv6(_ text: String) -> [UInt16]? {
        let text = unbracketed(text)
        guard text.contains(":"), !text.contains("%") else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains("."), let v4 = ipv4(String(piece)) {
                    out += [UInt16(v4.0) << 8 | UInt16(v4.1), UInt16(v4.2) << 8 | UInt16(v4.3)]
                } else {
                    guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                    out.append(value)
                }
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 8 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
        return head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
    }

    private static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }
}
