/// Multi-head self-attention inside one window of `tokens` tokens (Swin / HTSAT), with an additive
/// per-head bias (the relative position bias) and an optional additive mask (shifted windows).
///
/// The queries are expected pre-scaled by `1/sqrt(headDim)` (HTSAT folds the scale into the
/// query projection at load). Products go through BLAS, one `tokens x tokens` score matrix at a
/// time, so the scratch stays in L1/L2.
public enum WindowAttention {
    /// Attention of the heads `heads` of one window.
    ///
    /// - Parameters:
    ///   - qkv: `tokens` rows (stride `ld`) holding the queries, keys and values of the heads in
    ///     `heads`: head `heads.lowerBound + i` has its query at column `i * headStride`, its key
    ///     at `i * headStride + keyOffset`, its value at `i * headStride + valueOffset`
    ///     (`[q|k|v]` per head: stride `3 * headDim`, offsets `headDim`, `2 * headDim`).
    ///   - bias: `allHeads x tokens x tokens`, indexed by the absolute head.
    ///   - mask: `tokens x tokens` added to every head's scores, or nil.
    ///   - scores: scratch of at least `tokens * tokens` floats.
    ///   - output: `tokens` rows (stride `ldo`); head `h` writes columns `h * headDim ..< (h + 1) * headDim`.
    public static func attend(
        qkv: UnsafePointer<Float>, ld: Int, tokens: Int, headDim: Int, heads: Range<Int>,
        headStride: Int, keyOffset: Int, valueOffset: Int,
        bias: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
        scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>, ldo: Int
    ) {
        let n = tokens
        for (i, h) in heads.enumerated() {
            let q = qkv + i * headStride
            // scores = q k^T
            Gemm.multiply(transposeB: true, m: n, n: n, k: headDim, a: q, lda: ld, b: q + keyOffset, ldb: ld,
                      c: scores, ldc: n)
            Activation.softmaxRows(scores, rows: n, columns: n, adding: bias + h * n * n, mask: mask)
            // out_h = p v
            Gemm.multiply(m: n, n: headDim, k: n, a: scores, lda: n, b: q + valueOffset, ldb: ld,
                      c: output + h * headDim, ldc: ldo)
        }
    }
}
