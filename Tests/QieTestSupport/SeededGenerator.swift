/// A random number generator that replays from its seed (SplitMix64), for
/// tests that choose at random: they print the seed, so a failure can be
/// run again exactly.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    /// A generator that starts from `seed`.
    public init(seed: UInt64) { state = seed }

    /// A new seed, printed with `label` so the run can be replayed.
    public static func seed(printedAs label: String) -> UInt64 {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("\(label) seed: \(seed)")
        return seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
