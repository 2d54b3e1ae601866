/// Multi-head self-attention inside one window of `tokens` tokens (Swin / HTSAT), with an additive
/// per-head bias (the relative position bias) and an optional additive mask (shifted windows).
///
/// The queries are expected pre-scaled by `1/sqrt(headDim)` (HTSAT folds the scale into the
/// query projection at load). Products go through BLAS, one `tokens x tokens` score matrix at a
/// time, so the scratch stays in L1/L2.
public enum WindowAttention {
    /// - Parameters:
    ///   - qkv: `tokens` rows of `[q | k | v]`, each `heads * headDim` wide, row stride `ldqkv`.
    ///   - bias: `heads x tokens x tokens`, added to the scores of each head.
    ///   - mask: `tokens x tokens` added to every head's scores, or nil.
    ///   - headRange: the heads to compute (all by default); lets callers split heads over threads.
    ///   - scores: scratch of at least `tokens * tokens` floats.
    ///   - output: `tokens` rows of `heads * headDim` (head h at column `h * headDim`), stride `ldo`.
    public static func attend(
        qkv: UnsafePointer<Float>, ldqkv: Int, tokens: Int, heads: Int, headDim: Int,
        bias: UnsafePointer<Float>, mask: UnsafePointer<Float>?, headRange: Range<Int>? = nil,
        scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>, ldo: Int
    ) {
        let width = heads * headDim
        let n = tokens
        for h in headRange ?? 0..<heads {
            let q = qkv + h * headDim
            let k = qkv + width + h * headDim
            let v = qkv + 2 * width + h * headDim
            // scores = q k^T
            BLAS.gemm(transposeB: true, m: n, n: n, k: headDim, a: q, lda: ldqkv, b: k, ldb: ldqkv,
                      c: scores, ldc: n)
            SwinVectorMath.softmaxRows(scores, rows: n, columns: n, adding: bias + h * n * n, mask: mask)
            // out_h = p v
            BLAS.gemm(m: n, n: headDim, k: n, a: scores, lda: n, b: v, ldb: ldqkv,
                      c: output + h * headDim, ldc: ldo)
        }
    }
}
