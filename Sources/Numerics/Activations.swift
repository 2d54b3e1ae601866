import CKernels
import Foundation

/// The activations and softmax of every tower and of the classifier, one implementation each,
/// in place over raw buffers: GELU (exact form, rational erf), ReLU, tanh, sigmoid, SiLU,
/// softmax (with an additive bias and mask for attention rows), log-softmax. The buffer forms of
/// GELU, sigmoid, SiLU and softmax run on the CKernels' vectorised code (chosen by CPU feature
/// bits), the same code the product kernels apply as epilogues.
public enum Activation {
    @inlinable public static func sigmoid(_ x: Float) -> Float {
        x >= 0 ? 1 / (1 + expf(-x)) : { let e = expf(x); return e / (1 + e) }()
    }

    /// `log(sigmoid(x))`, stable for large |x|: `min(x, 0) - log1p(exp(-|x|))`.
    @inlinable public static func logSigmoid(_ x: Float) -> Float {
        min(x, 0) - log1pf(expf(-abs(x)))
    }

    /// SiLU (swish): `x * sigmoid(x)`.
    @inlinable public static func silu(_ x: Float) -> Float { x * sigmoid(x) }

    /// GELU, `x/2 * (1 + erf(x/sqrt 2))` (PyTorch's default, not the tanh approximation), with
    /// erf as a rational minimax approximation (odd degree-13 numerator, even degree-8
    /// denominator; Eigen's `generic_fast_erf_float`) on the argument clamped to [-4, 4], where
    /// erf is +-1 in float: absolute error of erf below 4.3e-7 (PyTorch's vectorised erf is within
    /// 1.5e-7 of exact; both round GELU to within about 1e-6 of the exact value). The same formula
    /// as the kernels' (`ck_activate`), so the scalar and vectorised paths agree.
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

    /// SiLU in place, vectorised (CKernels) where the CPU allows.
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ck_silu(x, Int32(count))
    }

    /// The mLSTM output: `h = (h + skip * c) * silu(z)` over one row.
    public static func skipGate(_ h: UnsafeMutablePointer<Float>, skip: UnsafePointer<Float>,
                                conv: UnsafePointer<Float>, z: UnsafePointer<Float>, count: Int) {
        ck_skip_gate(h, skip, conv, z, Int32(count))
    }

    /// GELU in place, vectorised (CKernels) where the CPU allows.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ck_activate(x, Int32(count), Int32(CK_EPILOGUE_GELU))
    }

    /// `max(x, 0)` in place (NaN stays NaN, as `torch.relu`).
    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count where x[i] < 0 { x[i] = 0 }
    }

    /// `tanh(x)` in place (libm; only poolers use it: one row per item).
    public static func tanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = tanhf(x[i]) }
    }

    public static func sigmoid(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ck_sigmoid(x, Int32(count))
    }

    /// Softmax over `count` values in place (max-subtracted), vectorised (CKernels) where the
    /// CPU allows.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ck_softmax(x, Int32(count))
    }

    /// Softmax of each of `rows` rows of `columns` scores (row stride `ld`, default `columns`) in
    /// place, after adding `bias` and `mask` (if any; same layout, row stride `columns`): attention
    /// probabilities with a relative-position bias and a window mask.
    public static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ld: Int? = nil,
                                   adding bias: UnsafePointer<Float>? = nil, mask: UnsafePointer<Float>? = nil) {
        let ld = ld ?? columns
        for r in 0..<rows {
            let row = s + r * ld
            if let bias {
                let b = bias + r * columns
                for j in 0..<columns { row[j] += b[j] }
            }
            if let mask {
                let m = mask + r * columns
                for j in 0..<columns { row[j] += m[j] }
            }
            ck_softmax(row, Int32(columns))
        }
    }

    /// Log-softmax over `count` values in place.
    public static func logSoftmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var m = -Float.infinity
        for i in 0..<count { m = max(m, x[i]) }
        var sum: Float = 0
        for i in 0..<count { sum += expf(x[i] - m) }
        let lse = m + logf(sum)
        for i in 0..<count { x[i] -= lse }
    }

    /// Array conveniences (tests, small vectors).
    public static func softmax(_ x: [Float]) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer { softmax($0.baseAddress!, count: $0.count) }
        return y
    }

    public static func logSoftmax(_ x: [Float]) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer { logSoftmax($0.baseAddress!, count: $0.count) }
        return y
    }

    /// Log-softmax in float64, for decoders that sum many log-probabilities.
    public static func logSoftmax(_ x: [Double]) -> [Double] {
        guard let m = x.max() else { return [] }
        let lse = m + log(x.reduce(0) { $0 + exp($1 - m) })
        return x.map { $0 - lse }
    }
}
