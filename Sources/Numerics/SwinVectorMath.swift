/// Row kernels of Swin-style transformers (HTSAT): exact-form GELU, layer norm, softmax with an
/// additive bias, written so that the compiler vectorises them without target-specific flags.
///
/// - GELU is the exact (erf) form with a rational erf: within about 1e-6 of exact GELU, as
///   PyTorch's vectorised kernel is (libm's `erff` costs about 14 ns an element here; this runs
///   at about 0.9 ns in a release build).
/// - Layer norm accumulates in float32 partial sums (two passes: mean, then centred squares).
public enum SwinVectorMath {
    // The loops are written element by element over raw pointers, branch-free, with no libm calls
    // and with several partial sums for reductions: LLVM vectorises them in release builds (about
    // as fast as explicit SIMD types here), and unlike SIMD types they stay fast in debug builds.

    /// `exp(-a)` for `0 <= a <= 87` (Cephes range reduction and degree-6 polynomial, about 1 ulp).
    @inline(__always)
    public static func expNegative(_ a: Float) -> Float {
        let x = -a
        let magic: Float = 12_582_912  // 1.5 * 2^23: adding it rounds to an integer
        let t = x * 1.44269504088896341 + magic
        let n = t - magic
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + (r + 1)
        // 2^n from the integer sitting in the low mantissa bits of t.
        let e = (Int32(bitPattern: t.bitPattern) &- Int32(bitPattern: magic.bitPattern)) &+ 127
        return p * Float(bitPattern: UInt32(bitPattern: e &<< 23))
    }

    /// GELU, `x/2 * (1 + erf(x/sqrt 2))`, with erf as a rational minimax approximation
    /// (odd degree-13 numerator, even degree-8 denominator; Eigen's `generic_fast_erf_float`)
    /// on the argument clamped to [-4, 4], where erf is +-1 in float. Absolute error of erf
    /// below 4.3e-7 (PyTorch's own vectorised erf is within 1.5e-7 of exact; both round GELU to
    /// within about 1e-6 of the exact value); no exp, one division.
    @inline(__always)
    public static func gelu(_ x: Float) -> Float {
        var v = x * 0.70710678118654752440
        v = v < 4 ? v : 4
        v = v > -4 ? v : -4
        let v2 = v * v
        var p: Float = -2.72614225801306e-10
        p = p * v2 + 2.77068142495902e-08
        p = p * v2 + -2.10102402082508e-06
        p = p * v2 + -5.69250639462346e-05
        p = p * v2 + -7.34990630326855e-04
        p = p * v2 + -2.95459980854025e-03
        p = p * v2 + -1.60960333262415e-02
        var q: Float = -1.45660718464996e-05
        q = q * v2 + -2.13374055278905e-04
        q = q * v2 + -1.68282697438203e-03
        q = q * v2 + -7.37332916720468e-03
        q = q * v2 + -1.42647390514189e-02
        return x * 0.5 * (1 + v * p / q)
    }

    /// GELU in place over `count` values.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = gelu(x[i]) }
    }

    /// `max(x, 0)` in place (NaN stays NaN, as `torch.relu`).
    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count where x[i] < 0 { x[i] = 0 }
    }

    /// Sum of `count` values with eight partial sums.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
        var i = 0
        while i + 8 <= count {
            s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]
            s4 += p[i + 4]; s5 += p[i + 5]; s6 += p[i + 6]; s7 += p[i + 7]
            i += 8
        }
        while i < count { s0 += p[i]; i += 1 }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    }

    /// Largest of `count > 0` values (eight partial maxima, select form so it vectorises).
    @inline(__always)
    static func maximum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var m0 = p[0], m1 = p[0], m2 = p[0], m3 = p[0], m4 = p[0], m5 = p[0], m6 = p[0], m7 = p[0]
        var i = 0
        while i + 8 <= count {
            m0 = p[i] > m0 ? p[i] : m0; m1 = p[i + 1] > m1 ? p[i + 1] : m1
            m2 = p[i + 2] > m2 ? p[i + 2] : m2; m3 = p[i + 3] > m3 ? p[i + 3] : m3
            m4 = p[i + 4] > m4 ? p[i + 4] : m4; m5 = p[i + 5] > m5 ? p[i + 5] : m5
            m6 = p[i + 6] > m6 ? p[i + 6] : m6; m7 = p[i + 7] > m7 ? p[i + 7] : m7
            i += 8
        }
        while i < count { m0 = p[i] > m0 ? p[i] : m0; i += 1 }
        m0 = m1 > m0 ? m1 : m0; m2 = m3 > m2 ? m3 : m2; m4 = m5 > m4 ? m5 : m4; m6 = m7 > m6 ? m7 : m6
        m0 = m2 > m0 ? m2 : m0; m4 = m6 > m4 ? m6 : m4
        return m4 > m0 ? m4 : m0
    }

    /// Sum of `(p[i] - mean)^2` with eight partial sums.
    @inline(__always)
    static func centredSquares(_ p: UnsafePointer<Float>, count: Int, mean: Float) -> Float {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
        var i = 0
        while i + 8 <= count {
            let d0 = p[i] - mean, d1 = p[i + 1] - mean, d2 = p[i + 2] - mean, d3 = p[i + 3] - mean
            let d4 = p[i + 4] - mean, d5 = p[i + 5] - mean, d6 = p[i + 6] - mean, d7 = p[i + 7] - mean
            s0 += d0 * d0; s1 += d1 * d1; s2 += d2 * d2; s3 += d3 * d3
            s4 += d4 * d4; s5 += d5 * d5; s6 += d6 * d6; s7 += d7 * d7
            i += 8
        }
        while i < count { let d = p[i] - mean; s0 += d * d; i += 1 }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    }

    /// Layer norm of `rows` rows of `width` values: `y = (x - mean) / sqrt(var + eps) * weight + bias`
    /// (biased variance, as PyTorch; float32 partial sums, two passes). `y` may alias `x`.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, ldx: Int, rows: Int, width: Int,
        weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float,
        into y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        let inverseWidth = 1 / Float(width)
        for r in 0..<rows {
            let src = x + r * ldx, dst = y + r * ldy
            let mean = sum(src, count: width) * inverseWidth
            let variance = centredSquares(src, count: width, mean: mean) * inverseWidth
            let inv = 1 / (variance + eps).squareRoot()
            switch (weight, bias) {
            case let (w?, b?):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv * w[j] + b[j] }
            case let (w?, nil):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv * w[j] }
            case let (nil, b?):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv + b[j] }
            case (nil, nil):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv }
            }
        }
    }

    /// Softmax of each of `rows` rows of `columns` scores (row stride `columns`) in place, after
    /// adding `bias` (same layout) and optionally `mask` (same layout): the attention
    /// probabilities of one window and head.
    public static func softmaxRows(
        _ s: UnsafeMutablePointer<Float>, rows: Int, columns: Int,
        adding bias: UnsafePointer<Float>, mask: UnsafePointer<Float>?
    ) {
        for r in 0..<rows {
            let row = s + r * columns, b = bias + r * columns
            if let mask {
                let mk = mask + r * columns
                for j in 0..<columns { row[j] = row[j] + b[j] + mk[j] }
            } else {
                for j in 0..<columns { row[j] += b[j] }
            }
            let mx = maximum(row, count: columns)
            // exp(s - max) = exp(-(max - s)), with max - s >= 0 clamped at 87 (exp(-87) ~ 1.6e-38).
            for k in 0..<columns {
                let a = mx - row[k]
                row[k] = expNegative(a < 87 ? a : 87)
            }
            let inv = 1 / sum(row, count: columns)
            for k in 0..<columns { row[k] *= inv }
        }
    }

    /// `x / max(||x||, 1e-12)` for each of `rows` rows (`torch.nn.functional.normalize`).
    public static func l2Normalize(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for r in 0..<rows {
            let row = x + r * width
            var sq: Double = 0
            for i in 0..<width { sq += Double(row[i]) * Double(row[i]) }
            let inv = Float(1 / max(sq.squareRoot(), 1e-12))
            for i in 0..<width { row[i] *= inv }
        }
    }
}
