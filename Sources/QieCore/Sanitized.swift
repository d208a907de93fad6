/// Text that came from outside (an endpoint's error message, a job id, a
/// URL), made safe to print on a terminal or write to a file: control
/// characters cannot move the cursor, clear the screen or forge a line, and
/// a hostile endpoint cannot flood a log.
public enum Sanitized {
    /// `text` with every control character (C0, DEL, C1) and bidirectional
    /// override replaced by a space (runs collapsed), trimmed, and cut to
    /// `limit` characters with `…` when longer.
    public static func text(_ text: String, limit: Int = 500) -> String {
        var out = ""
        out.reserveCapacity(min(text.utf8.count, limit + 1))
        var count = 0
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) || scalar == " " {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace {
                out.unicodeScalars.append(" ")
                count += 1
                pendingSpace = false
            }
            if count >= limit {
                out += "…"
                return out
            }
            out.unicodeScalars.append(scalar)
            count += 1
        }
        return out
    }

    /// Whether `text` has no control character or bidirectional override and
    /// at most `limit` characters (so it can be kept as it is, an id say).
    public static func isClean(_ text: String, limit: Int = 500) -> Bool {
        text.unicodeScalars.count <= limit && !text.unicodeScalars.contains(where: isUnsafe)
    }

    private static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true  // C0 (tab and newline included), DEL, C1
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidirectional marks and overrides
        default: false
        }
    }
}
