import Foundation
import Numerics

/// The mLSTM matrix memory in its parallel stabilised form (`parallel_stabilized_simple` of the
/// `xlstm` package, row-wise stabilisation, eps 1e-6) over one sequence.
enum MLSTMCell {
    /// - Parameters:
    ///   - qkv: `steps` rows of `[q | k | v]`, each `innerWidth` wide (row stride `3 * innerWidth`).
    ///   - gates: `steps` rows of `[input gates (heads) | forget gates (heads)]` pre-activations.
    ///   - into: `steps x innerWidth` output, heads side by side.
    ///   - scratch: at least `steps * (2 * steps + 2)` floats.
    static func parallel(
        qkv: UnsafePointer<Float>, innerWidth: Int, heads: Int, steps s: Int,
        gates: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        let dh = innerWidth / heads
        let ld = 3 * innerWidth
        let cum = scratch                  // s + 1
        let rowMax = scratch + (s + 1)     // s
        let qk = rowMax + s                // s * s
        let scale = 1 / Float(dh).squareRoot()
        let gs = 2 * heads
        let igate = gates, fgate = gates + heads
        for h in 0..<heads {
            // Cumulative log forget gates: cum[0] = 0, cum[t+1] = cum[t] + logsigmoid(f_t).
            cum[0] = 0
            for t in 0..<s { cum[t + 1] = cum[t] + Activation.logSigmoid(fgate[t * gs + h]) }

            // q k^T / sqrt(dh) for this head (keys scaled as in the reference).
            Gemm.multiply(transposeB: true, m: s, n: s, k: dh, alpha: scale,
                      a: qkv + h * dh, lda: ld, b: qkv + innerWidth + h * dh, ldb: ld,
                      c: qk, ldc: s)

            for t in 0..<s {
                // log D[t, j] = cum[t+1] - cum[j+1] + i_j for j <= t; stabilise by the row max.
                var m = -Float.infinity
                for j in 0...t { m = max(m, cum[t + 1] - cum[j + 1] + igate[j * gs + h]) }
                rowMax[t] = m
                let row = qk + t * s
                var sum: Float = 0
                for j in 0...t {
                    let dv = expf(cum[t + 1] - cum[j + 1] + igate[j * gs + h] - m)
                    row[j] *= dv
                    sum += row[j]
                }
                let normalizer = max(abs(sum), expf(-m)) + 1e-6
                let inv = 1 / normalizer
                for j in 0...t { row[j] *= inv }
                if t + 1 < s { for j in (t + 1)..<s { row[j] = 0 } }
            }

            // h = C_normalised @ v.
            Gemm.multiply(m: s, n: dh, k: s, a: qk, lda: s, b: qkv + 2 * innerWidth + h * dh, ldb: ld,
                      c: out + h * dh, ldc: innerWidth)
        }
    }
}
