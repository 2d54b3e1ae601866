import CKernels
import Foundation

/// Scaled dot-product attention over one sequence (one head at a time), with optional additive
/// terms on the scores: a bias (e.g. Swin's relative position bias) and a mask (e.g. Swin's
/// shifted-window mask, or a padding mask).
///
/// `out[i] = sum_j softmax_j(scale * q_i . k_j + bias[i, j] + mask[i, j]) * v_j`
///
/// Heads are laid out side by side in the rows of q, k, v and out (head `h` at columns
/// `h * headDim ..< (h + 1) * headDim`), as a fused `[q | k | v]` projection writes them, so no
/// transpose is needed. From 48 queries (an encoder's hundreds of tokens) the head's keys (scaled)
/// and values are packed into 16-column panels and both products run through the packed kernels
/// (`Linear`'s, cache-blocked at that size); fewer queries go through `Gemm` (packed per call).
/// Queries are taken in blocks whose scores stay in L2. Callers run independent heads or
/// sequences in parallel.
public enum Attention {
    /// Queries from which keys and values are packed for the packed kernels.
    static let packedFromQueries = 48

    /// Floats of scratch one call of `head` needs.
    public static func scratchSize(queries: Int, keys: Int, headDim: Int) -> Int {
        guard queries >= packedFromQueries else { return queries * keys }
        return queries * keys + ck_packed_size(Int32(keys), Int32(headDim)) + ck_packed_size(Int32(headDim), Int32(keys))
    }

    /// One head.
    ///
    /// - Parameters:
    ///   - query: `queries` rows of `headDim` values, row stride `ldq`.
    ///   - key, value: `keys` rows of `headDim` values, row strides `ldk`, `ldv`.
    ///   - bias, mask: optional `queries x keys` additive terms (dense, row stride `keys`).
    ///   - out: `queries` rows of `headDim` values, row stride `ldo`.
    ///   - scratch: at least `scratchSize(queries:keys:headDim:)` floats.
    public static func head(
        query: UnsafePointer<Float>, ldq: Int,
        key: UnsafePointer<Float>, ldk: Int,
        value: UnsafePointer<Float>, ldv: Int,
        queries: Int, keys: Int, headDim: Int, scale: Float,
        bias: UnsafePointer<Float>? = nil, mask: UnsafePointer<Float>? = nil,
        into out: UnsafeMutablePointer<Float>, ldo: Int,
        scratch: UnsafeMutablePointer<Float>
    ) {
        guard queries > 0, keys > 0 else { return }
        let packed = queries >= packedFromQueries
        // scale * k as an [keys, headDim] weight, v^T as a [headDim, keys] one, after the scores.
        let packedKeys = scratch + queries * keys
        let packedValues = packedKeys + ck_packed_size(Int32(keys), Int32(headDim))
        if packed {
            ck_pack_strided(key, Int32(keys), Int32(headDim), Int32(ldk), packedKeys)
            let count = ck_packed_size(Int32(keys), Int32(headDim))
            for i in 0..<count { packedKeys[i] *= scale }
            ck_pack_columns(value, Int32(headDim), Int32(keys), Int32(ldv), packedValues)
        }
        // Queries in blocks whose scores stay in L2 (128 KiB) between the two products: 500
        // tokens' full score matrix (1 MB per head) would go out to L3 and back twice.
        let scores = scratch
        let blocks = (queries + max(8, 32_768 / keys) - 1) / max(8, 32_768 / keys)
        for b in 0..<blocks {
            let q0 = b * queries / blocks, n = (b + 1) * queries / blocks - q0
            // scores = scale * q k^T
            if packed {
                ck_gemm_packed_panels(Int32(n), Int32(keys), Int32(headDim), query + q0 * ldq, Int32(ldq), packedKeys,
                                      16 * headDim, nil, scores, Int32(keys), 0, 0)
            } else {
                Gemm.multiply(transposeB: true, m: n, n: keys, k: headDim, alpha: scale,
                              a: query + q0 * ldq, lda: ldq, b: key, ldb: ldk, c: scores, ldc: keys)
            }
            Activation.softmaxRows(scores, rows: n, columns: keys, adding: bias.map { $0 + q0 * keys },
                                   mask: mask.map { $0 + q0 * keys })
            // out = P v
            if packed {
                ck_gemm_packed_panels(Int32(n), Int32(headDim), Int32(keys), scores, Int32(keys), packedValues,
                                      16 * keys, nil, out + q0 * ldo, Int32(ldo), 0, 0)
            } else {
                Gemm.multiply(m: n, n: headDim, k: keys, a: scores, lda: keys, b: value, ldb: ldv,
                              c: out + q0 * ldo, ldc: ldo)
            }
        }
    }

    /// Every head of one sequence, in order, sharing `scratch`. `bias` (if any) holds
    /// `heads` consecutive `queries x keys` matrices when `biasPerHead`, else one shared matrix;
    /// `mask` (if any) is shared by all heads.
    public static func multiHead(
        query: UnsafePointer<Float>, ldq: Int,
        key: UnsafePointer<Float>, ldk: Int,
        value: UnsafePointer<Float>, ldv: Int,
        queries: Int, keys: Int, heads: Int, headDim: Int, scale: Float,
        bias: UnsafePointer<Float>? = nil, biasPerHead: Bool = true,
        mask: UnsafePointer<Float>? = nil,
        into out: UnsafeMutablePointer<Float>, ldo: Int,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let block = queries * keys
        for h in 0..<heads {
            let o = h * headDim
            head(query: query + o, ldq: ldq, key: key + o, ldk: ldk, value: value + o, ldv: ldv,
                 queries: queries, keys: keys, headDim: headDim, scale: scale,
                 bias: bias.map { biasPerHead ? $0 + h * block : $0 }, mask: mask,
                 into: out + o, ldo: ldo, scratch: scratch)
        }
    }
}
