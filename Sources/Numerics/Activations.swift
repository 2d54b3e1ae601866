import CKernels
import Foundation

/// Element-wise activations and (log-)softmax, in place over raw buffers.
///
/// Written as plain loops the compiler vectorises; `exp`/`log`/`erf` come from libm so results
/// match PyTorch's float32 kernels to a few ulps.
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

    /// Exact GELU: `x/2 * (1 + erf(x/sqrt(2)))` (PyTorch's default, not the tanh approximation).
    @inlinable public static func gelu(_ x: Float) -> Float {
        0.5 * x * (1 + erff(x * 0.70710678118654752440))
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

    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = gelu(x[i]) }
    }

    public static func sigmoid(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ck_sigmoid(x, Int32(count))
    }

    /// Softmax over `count` values in place (max-subtracted), vectorised (CKernels) where the
    /// CPU allows.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ck_softmax(x, Int32(count))
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
