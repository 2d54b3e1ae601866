import Foundation

/// The normalisations of every tower and of the classifier, one implementation each: layer norm
/// over rows (as `torch.nn.functional.layer_norm`; xLSTM's multi-head group norm is it per head
/// segment) and L2 normalisation of rows (`torch.nn.functional.normalize`).
///
/// Reductions run in float32 with eight partial sums, two passes (mean, then centred squares),
/// written element by element so that LLVM vectorises them in release builds and they stay fast
/// in debug builds.
public enum Normalization {
    /// `y = (x - mean) / sqrt(var + eps) * (weight + weightOffset) + bias` for each of `rows`
    /// rows of `width` values (biased variance, as PyTorch). `y` may alias `x`. `weightOffset`
    /// is added to every weight (xLSTM stores `weight - 1`, "residual weight").
    public static func layerNorm(
        _ x: UnsafePointer<Float>, ldx: Int, rows: Int, width: Int,
        weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, weightOffset: Float = 0, eps: Float,
        into y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        guard width > 0 else { return }
        let inverseWidth = 1 / Float(width)
        for r in 0..<rows {
            let src = x + r * ldx, dst = y + r * ldy
            let mean = sum(src, count: width) * inverseWidth
            let variance = centredSquares(src, count: width, mean: mean) * inverseWidth
            let inv = 1 / (variance + eps).squareRoot()
            switch (weight, bias) {
            case let (w?, b?):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv * (w[j] + weightOffset) + b[j] }
            case let (w?, nil):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv * (w[j] + weightOffset) }
            case let (nil, b?):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv + b[j] }
            case (nil, nil):
                for j in 0..<width { dst[j] = (src[j] - mean) * inv }
            }
        }
    }

    /// `layerNorm` in place over rows `stride` floats apart (default `width`).
    public static func layerNorm(
        _ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, stride: Int? = nil,
        weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
        weightOffset: Float = 0, eps: Float = 1e-5
    ) {
        let stride = stride ?? width
        layerNorm(x, ldx: stride, rows: rows, width: width, weight: weight, bias: bias, weightOffset: weightOffset,
                  eps: eps, into: x, ldy: stride)
    }

    /// Group norm with one group per head over rows of `heads * headDim` values (the mLSTM
    /// multi-head norm): each head's segment is normalised separately, then the per-channel
    /// weight (plus `weightOffset`) is applied across the whole row.
    public static func multiHeadNorm(
        _ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int,
        weight: UnsafePointer<Float>?, weightOffset: Float = 0, eps: Float = 1e-5
    ) {
        let width = heads * headDim
        for r in 0..<rows {
            let row = x + r * width
            for h in 0..<heads {
                let segment = row + h * headDim
                layerNorm(segment, ldx: headDim, rows: 1, width: headDim,
                          weight: weight.map { $0 + h * headDim }, bias: nil, weightOffset: weightOffset, eps: eps,
                          into: segment, ldy: headDim)
            }
        }
    }

    /// `x / max(||x||, 1e-12)` for each of `rows` rows (`torch.nn.functional.normalize`), the
    /// norm accumulated in float64.
    public static func l2Normalize(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for r in 0..<rows {
            let row = x + r * width
            var sq: Double = 0
            for i in 0..<width { sq += Double(row[i]) * Double(row[i]) }
            let inv = Float(1 / max(sq.squareRoot(), 1e-12))
            for i in 0..<width { row[i] *= inv }
        }
    }

    /// `l2Normalize` of one vector.
    public static func l2Normalized(_ x: [Float]) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer { l2Normalize($0.baseAddress!, rows: 1, width: $0.count) }
        return y
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
}
