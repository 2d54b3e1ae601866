import Foundation

/// Layer normalisation over rows, as `torch.nn.functional.layer_norm` and `group_norm`.
public enum Normalization {
    /// Normalises each of `rows` rows of `width` values in place:
    /// `(x - mean) / sqrt(var + eps) * weight + bias` (biased variance, as PyTorch).
    /// `weightOffset` is added to every weight (xLSTM stores `weight - 1`, "residual weight").
    public static func layerNorm(
        _ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, stride: Int? = nil,
        weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
        weightOffset: Float = 0, eps: Float = 1e-5
    ) {
        let stride = stride ?? width
        for r in 0..<rows {
            let row = x + r * stride
            normalizeSegment(row, count: width, eps: eps)
            if let weight {
                for i in 0..<width { row[i] *= weight[i] + weightOffset }
            }
            if let bias {
                for i in 0..<width { row[i] += bias[i] }
            }
        }
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
            for h in 0..<heads { normalizeSegment(row + h * headDim, count: headDim, eps: eps) }
            if let weight {
                for i in 0..<width { row[i] *= weight[i] + weightOffset }
            }
        }
    }

    /// Zero mean, unit (biased) variance, accumulated in float64 like PyTorch's CPU kernels
    /// accumulate in higher precision.
    @inline(__always)
    static func normalizeSegment(_ p: UnsafeMutablePointer<Float>, count: Int, eps: Float) {
        var sum = 0.0
        for i in 0..<count { sum += Double(p[i]) }
        let mean = sum / Double(count)
        var sq = 0.0
        for i in 0..<count { let d = Double(p[i]) - mean; sq += d * d }
        let inv = Float(1 / (sq / Double(count) + Double(eps)).squareRoot())
        let m = Float(mean)
        for i in 0..<count { p[i] = (p[i] - m) * inv }
    }
}
