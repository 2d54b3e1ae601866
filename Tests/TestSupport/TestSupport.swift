/// Helpers the numerical test targets share: a seeded generator, so randomised tests need no
/// fixtures and repeat exactly, and the comparisons used against reference outputs.

/// SplitMix64: a small, fast, seeded pseudo-random generator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A float in [-1, 1) from the top 24 bits.
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
}

/// The largest absolute element-wise difference (0 for empty arrays); the lengths must match.
public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}

/// Cosine similarity in Float64 (0 when either vector is zero).
public func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var ab = 0.0, aa = 0.0, bb = 0.0
    for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
    return ab / max((aa * bb).squareRoot(), 1e-30)
}
