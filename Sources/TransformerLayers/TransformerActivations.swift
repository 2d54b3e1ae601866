import Foundation

/// Activations of the transformer towers, written as branch-free loops the compiler vectorises.
///
/// The exact (erf) GELU runs on every value of every feed-forward layer (61 440 values per layer
/// for 20 tokens of RoBERTa-base); libm's `erff` costs about 16 ns a call here, which alone
/// would be 12 ms per transcript. PyTorch's CPU kernel does not call libm either: its
/// `Vectorized<float>::erf` is Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7) with a
/// vectorised `exp`, and the same formula is used here, so both sides of a parity test carry the
/// same approximation.
enum TransformerActivation {
    /// `x * 0.5 * (1 + erf(x / sqrt(2)))` in place.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            x[i] = v * 0.5 * (1 + erf(v * 0.70710678118654752440))
        }
    }

    /// `max(x, 0)` in place.
    static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = max(x[i], 0) }
    }

    /// `tanh(x)` in place (only the pooler uses it: one row per transcript).
    static func tanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = tanhf(x[i]) }
    }

    /// erf(x), Abramowitz & Stegun 7.1.26: `sign(x) * (1 - t * P(t) * exp(-x^2))`,
    /// `t = 1 / (1 + p |x|)`, as PyTorch's vectorised CPU kernel.
    @inline(__always)
    static func erf(_ x: Float) -> Float {
        let sign = x.bitPattern & 0x8000_0000
        let a = Float(bitPattern: x.bitPattern & 0x7FFF_FFFF)
        let t = 1 / (0.3275911 * a + 1)
        var r: Float = 1.061405429
        r = r * t - 1.453152027
        r = r * t + 1.421413741
        r = r * t - 0.284496736
        r = r * t + 0.254829592
        let e = exp(-(a * a))
        let y = 1 - r * t * e
        return Float(bitPattern: y.bitPattern ^ sign)
    }

    /// exp(x) for x <= 0 (inputs below -87 give about 1e-38 instead of underflowing; every use
    /// here multiplies the result by a factor <= 1 next to a 1). Cody-Waite reduction by ln 2,
    /// degree-6 polynomial (relative error about 1e-7), scaling by 2^n through the exponent
    /// bits. The rounding to an integer uses the 1.5 * 2^23 trick, which needs no SSE4.1.
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let v = max(x, -87)
        let shifted = v * 1.44269504088896341 + 12_582_912
        let n = shifted - 12_582_912
        let bits = Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000
        var r = v - n * 0.693359375
        r = r + n * 2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * r * r + r + 1
        let scale = Float(bitPattern: UInt32(bitPattern: (bits &+ 127) &<< 23))
        return p * scale
    }
}
