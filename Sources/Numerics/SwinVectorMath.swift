/// Row kernels of Swin-style transformers (HTSAT): exact-form GELU, layer norm, softmax with an
/// additive bias, written so that the compiler vectorises them without target-specific flags.
///
/// - GELU follows PyTorch's vectorised CPU kernel: `x/2 * (1 + erf(x/sqrt 2))` with erf from
///   Abramowitz-Stegun 7.1.26 (`1 - (a1 t + ... + a5 t^5) exp(-x^2)`, `t = 1/(1 + p|x|)`, error
///   below 1.5e-7) and a Cephes exp, so results agree with `torch.nn.functional.gelu` to about 1e-7
///   (libm's `erff` costs about 14 ns an element here; this runs at about 1.5 ns).
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

    /// GELU with PyTorch's vectorised erf (|x/sqrt 2| clamped at 4, where erf is 1 in float).
    @inline(__always)
    public static func gelu(_ x: Float) -> Float {
        let v = x * 0.70710678118654752440
        let sign = v.bitPattern & 0x8000_0000
        var a = Float(bitPattern: v.bitPattern ^ sign)
        a = a < 4 ? a : 4
        let t = 1 / (a * 0.3275911 + 1)
        var r = t * 1.061405429 + -1.453152027
        r = r * t + 1.421413741
        r = r * t + -0.284496736
        r = r * t + 0.254829592
        let y = 1 - r * t * expNegative(a * a)
        let erf = Float(bitPattern: y.bitPattern | sign)
        return x * 0.5 * (1 + erf)
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
            var m0 = -Float.infinity, m1 = -Float.infinity, m2 = -Float.infinity, m3 = -Float.infinity
            var j = 0
            while j + 4 <= columns {
                m0 = max(m0, row[j]); m1 = max(m1, row[j + 1]); m2 = max(m2, row[j + 2]); m3 = max(m3, row[j + 3])
                j += 4
            }
            while j < columns { m0 = max(m0, row[j]); j += 1 }
            let mx = max(max(m0, m1), max(m2, m3))
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
