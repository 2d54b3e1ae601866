import CBLAS

/// Matrix products through OpenBLAS `cblas_sgemm`, row-major: the reference the project's own
/// kernels (`Gemm`, `Linear`) are compared with, and the explicit `blas` backend of the
/// text tower. Model layers use `Gemm`, whose kernels are chosen by CPU feature bits, not by
/// OpenBLAS's CPU table. One BLAS thread: independent work runs in parallel instead.
public enum BLAS {
    /// Sets the number of threads OpenBLAS uses inside one product.
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// The number of threads OpenBLAS uses inside one product.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The core OpenBLAS chose from its own CPU table (e.g. `Zen`, `SkylakeX`, or `Prescott` on a
    /// CPU its table does not know).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// `C = alpha * op(A) * op(B) + beta * C` with row-major storage.
    ///
    /// - Parameters:
    ///   - m, n, k: `op(A)` is `m x k`, `op(B)` is `k x n`, `C` is `m x n`.
    ///   - lda, ldb, ldc: row strides of the stored matrices.
    @inlinable
    public static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha,
            a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y[r] = x[r] * W^T + bias` for `rows` rows: a PyTorch `nn.Linear` whose weight is stored
    /// `[out, in]`. `x` has row stride `ldx`, `y` row stride `ldy` (default: dense).
    @inlinable
    public static func linear(
        _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, ldx: Int? = nil,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outFeatures: Int,
        into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false
    ) {
        let ldy = ldy ?? outFeatures
        var beta: Float = accumulate ? 1 : 0
        if let bias {
            for r in 0..<rows {
                let row = y + r * ldy
                if accumulate {
                    for o in 0..<outFeatures { row[o] += bias[o] }
                } else {
                    row.update(from: bias, count: outFeatures)
                }
            }
            beta = 1
        }
        gemm(transposeB: true, m: rows, n: outFeatures, k: inFeatures,
             a: x, lda: ldx ?? inFeatures, b: weight, ldb: inFeatures,
             beta: beta, c: y, ldc: ldy)
    }
}
