import Numerics

/// A linear layer (`y = x W^T + b`) holding its own copy of the weight, laid out for products
/// with few rows.
///
/// A transcript of 20 tokens multiplies 20 rows by each weight. Two ways to compute that are
/// kept, chosen at load (`Backend`):
/// - `packed` (default): `PackedMatrix`, the weight repacked at load into 16-column panels and
///   streamed once per call by the AVX-512 / AVX2 kernels (no per-call repacking; cache-blocked
///   for many rows whose stride would alias in L1); GELU and ReLU applied by the kernel;
/// - `blas`: OpenBLAS `sgemm` on a plain copy (it repacks per call, but with
///   `OPENBLAS_CORETYPE=SkylakeX` on an AVX-512 CPU its kernels can be faster; see
///   Docs/CLAP_TEXT.md).
///
/// The weight is copied at construction (slices of a larger tensor included), so the caller can
/// release the original right away.
package struct PackedLinear: Sendable {
    package enum Backend: String, Sendable { case packed, blas }
    package enum Epilogue: Sendable { case none, gelu, relu, tanh }

    package let inFeatures: Int
    package let outFeatures: Int
    let backend: Backend
    private let packed: PackedMatrix?
    private let plain: FloatStorage?
    let bias: FloatStorage?

    /// `weight` is `outFeatures x inFeatures`, row-major with row stride `ldw` (default
    /// `inFeatures`): a row or column slice of a larger matrix can be passed as is.
    package init(weight: UnsafePointer<Float>, outFeatures n: Int, inFeatures k: Int, ldw: Int? = nil,
                 bias: UnsafePointer<Float>?, backend: Backend) {
        inFeatures = k
        outFeatures = n
        self.backend = backend
        let ldw = ldw ?? k
        func dense() -> FloatStorage {
            let copy = FloatStorage(count: n * k)
            for r in 0..<n { (copy.pointer + r * k).update(from: weight + r * ldw, count: k) }
            return copy
        }
        switch backend {
        case .packed:
            packed = PackedMatrix(weight: weight, outFeatures: n, inFeatures: k, ldw: ldw)  // packs strided slices directly
            plain = nil
        case .blas:
            packed = nil
            plain = dense()
        }
        if let bias {
            let b = FloatStorage(count: n)
            b.pointer.update(from: bias, count: n)
            self.bias = b
        } else {
            self.bias = nil
        }
    }

    /// A whole `[out, in]` parameter (and its bias).
    package init(_ weight: Parameter, bias: Parameter?, backend: Backend) {
        precondition(weight.shape.count == 2, "PackedLinear needs a 2-D weight")
        self.init(weight: weight.pointer, outFeatures: weight.shape[0], inFeatures: weight.shape[1],
                  bias: bias?.pointer, backend: backend)
    }

    /// `y[r] = epilogue(x[r] W^T + b (+ y[r] if accumulate))` for `rows` rows.
    package func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil,
                       into y: UnsafeMutablePointer<Float>, ldy: Int? = nil,
                       accumulate: Bool = false, epilogue: Epilogue = .none) {
        guard rows > 0 else { return }
        let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
        let b = bias.map { UnsafePointer($0.pointer) }
        let fused: PackedMatrix.Epilogue = switch epilogue {
        case .gelu: .gelu
        case .relu: .relu
        case .none, .tanh: .none
        }
        if let packed {
            packed.apply(x, rows: rows, ldx: ldx, bias: b, into: y, ldy: ldy, accumulate: accumulate, epilogue: fused)
        } else if let plain {
            BLAS.linear(x, rows: rows, inFeatures: inFeatures, ldx: ldx, weight: plain.pointer, bias: b,
                        outFeatures: outFeatures, into: y, ldy: ldy, accumulate: accumulate)
            for r in 0..<rows { PackedMatrix.activate(y + r * ldy, count: outFeatures, fused) }
        }
        if epilogue == .tanh { for r in 0..<rows { Activation.tanh(y + r * ldy, count: outFeatures) } }
    }

    /// Bytes held by the weight copy.
    var byteCount: Int { (packed?.byteCount ?? 0) + (plain.map { $0.count * 4 } ?? 0) }
}
