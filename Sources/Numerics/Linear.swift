import CKernels

/// The one linear layer of every tower and of the classifier: `y = epilogue(x W^T + b)` with
/// the weight (`[out, in]`, PyTorch layout) copied once at load, its bias, and the activation
/// applied to the outputs (GELU and ReLU while a tile is in registers, tanh after).
///
/// A turn multiplies only 16 rows (batch x steps) by each weight; general BLAS repacks the
/// weight on every call, which at that size costs as much as the product. So by default
/// (`Backend.packed`) the weight is repacked at load into panels of 16 output columns and each
/// product streams every weight exactly once with a register-tiled AVX-512 or AVX2/FMA loop
/// (chosen by the CPU's feature bits), which also serves an encoder's hundreds of rows; with 48
/// rows or more whose row stride is a multiple of 4 KiB (which would put a 12-row tile in one L1
/// set) the AVX-512 level runs cache-blocked on copied blocks of the input instead
/// (`Sources/CKernels/gemm_blocked.c`). `Backend.blas` keeps a plain copy for OpenBLAS `sgemm`
/// (the reference the text tower can be run on). The weight is copied, slices of a larger tensor
/// included, so the caller can release the original at once.
public struct Linear: @unchecked Sendable {
    /// An activation applied to every output of a product.
    public enum Epilogue: Sendable {
        case none
        /// Exact-form GELU, `x/2 (1 + erf(x / sqrt 2))`, erf within 4.3e-7 (`Activation.gelu`).
        case gelu
        /// `max(x, 0)` (NaN stays NaN).
        case relu
        /// `tanh(x)` (poolers), applied after the product.
        case tanh

        /// The kernels' code for it (tanh: none, applied after).
        var kernelCode: Int32 {
            switch self {
            case .none, .tanh: return Int32(CK_EPILOGUE_NONE)
            case .gelu: return Int32(CK_EPILOGUE_GELU)
            case .relu: return Int32(CK_EPILOGUE_RELU)
            }
        }
    }

    /// How the product is computed (chosen at load).
    public enum Backend: String, Sendable { case packed, blas }

    public let outFeatures: Int
    public let inFeatures: Int
    public let backend: Backend
    /// Packed panels (`packed`) or the row-major weight (`blas`).
    private let storage: FloatStorage
    /// The layer's bias, used when `apply` is given none.
    public let bias: FloatStorage?

    /// A whole `[out, in]` parameter and its bias.
    public init(_ weight: Parameter, bias: Parameter? = nil, backend: Backend = .packed) {
        precondition(weight.shape.count == 2, "Linear needs a 2-D weight")
        self.init(weight: weight.pointer, outFeatures: weight.shape[0], inFeatures: weight.shape[1],
                  bias: bias?.pointer, backend: backend)
    }

    /// The rows of several `[out_i, in]` weights stacked on top of each other (e.g. two gate
    /// projections that read the same input, computed in one call), without a bias.
    public init(stacking weights: [Parameter]) {
        let k = weights.first?.shape.last ?? 0
        precondition(weights.allSatisfy { $0.shape.count == 2 && $0.shape[1] == k }, "stacked weights need equal inputs")
        let n = weights.reduce(0) { $0 + $1.shape[0] }
        let joined = FloatStorage(count: n * k)
        var offset = 0
        for w in weights {
            (joined.pointer + offset).update(from: w.pointer, count: w.count)
            offset += w.count
        }
        self.init(weight: UnsafePointer(joined.pointer), outFeatures: n, inFeatures: k)
    }

    /// An `outFeatures x inFeatures` row-major weight whose rows are `ldw` floats apart (default
    /// `inFeatures`: a row or column slice of a wider matrix can be passed as is), and its bias
    /// (`outFeatures` values) if any. Copies both.
    public init(weight pointer: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int, ldw: Int? = nil,
                bias: UnsafePointer<Float>? = nil, backend: Backend = .packed) {
        let ldw = ldw ?? inFeatures
        precondition(ldw >= inFeatures, "row stride shorter than a row")
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.backend = backend
        switch backend {
        case .packed:
            storage = FloatStorage(count: ck_packed_size(Int32(outFeatures), Int32(inFeatures)))
            ck_pack_strided(pointer, Int32(outFeatures), Int32(inFeatures), Int32(ldw), storage.pointer)
        case .blas:
            storage = FloatStorage(count: outFeatures * inFeatures)
            for r in 0..<outFeatures { (storage.pointer + r * inFeatures).update(from: pointer + r * ldw, count: inFeatures) }
        }
        if let bias {
            let b = FloatStorage(count: outFeatures)
            b.pointer.update(from: bias, count: outFeatures)
            self.bias = b
        } else {
            self.bias = nil
        }
    }

    /// `y[r] = epilogue(x[r] * W^T + b (+ y[r] if accumulate))` for `rows` rows; `b` is `bias`
    /// when given, else the layer's own (if any).
    @inlinable
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil, bias: UnsafePointer<Float>? = nil,
                      into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false,
                      epilogue: Epilogue = .none) {
        multiply(x, rows: rows, ldx: ldx ?? inFeatures, bias: bias, into: y, ldy: ldy ?? outFeatures,
                 accumulate: accumulate, epilogue: epilogue)
    }

    /// The product with a block of the weight (packed backend): output columns `outputs` (its
    /// lower bound a multiple of 16, a panel boundary) and input features `inputs` (any range),
    /// i.e. `y[r] = x[r] * W[outputs, inputs]^T (+ bias[0..<outputs.count]) (+ y[r] if accumulate)`;
    /// `x` holds `inputs.count` values per row, `y` `outputs.count`; then `epilogue`. No
    /// repacking: the packed weight is read in place. The layer's own bias is not used.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, outputs: Range<Int>, inputs: Range<Int>,
                      bias: UnsafePointer<Float>? = nil, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      accumulate: Bool = false, epilogue: Epilogue = .none) {
        precondition(backend == .packed, "a block of the weight needs the packed backend")
        precondition(outputs.lowerBound % 16 == 0 && outputs.upperBound <= outFeatures, "outputs must start on a panel")
        precondition(inputs.lowerBound >= 0 && inputs.upperBound <= inFeatures, "inputs out of range")
        guard rows > 0, !outputs.isEmpty else { return }
        let start = storage.pointer + outputs.lowerBound * inFeatures + inputs.lowerBound * 16
        ck_gemm_packed_panels(Int32(rows), Int32(outputs.count), Int32(inputs.count), x, Int32(ldx), start,
                              16 * inFeatures, bias, y, Int32(ldy), accumulate ? 1 : 0, epilogue.kernelCode)
        if epilogue == .tanh { for r in 0..<rows { Activation.tanh(y + r * ldy, count: outputs.count) } }
    }

    @usableFromInline
    func multiply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, bias given: UnsafePointer<Float>?,
                  into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, epilogue: Epilogue) {
        guard rows > 0 else { return }
        let b = given ?? bias.map { UnsafePointer($0.pointer) }
        switch backend {
        case .packed:
            ck_gemm_packed_panels(Int32(rows), Int32(outFeatures), Int32(inFeatures), x, Int32(ldx), storage.pointer,
                                  16 * inFeatures, b, y, Int32(ldy), accumulate ? 1 : 0, epilogue.kernelCode)
        case .blas:
            BLAS.linear(x, rows: rows, inFeatures: inFeatures, ldx: ldx, weight: storage.pointer, bias: b,
                        outFeatures: outFeatures, into: y, ldy: ldy, accumulate: accumulate)
            if epilogue != .tanh { for r in 0..<rows { Self.activate(y + r * ldy, count: outFeatures, epilogue) } }
        }
        if epilogue == .tanh { for r in 0..<rows { Activation.tanh(y + r * ldy, count: outFeatures) } }
    }

    /// `x[i] = epilogue(x[i])`: the kernels' activation on its own (vectorised as they are).
    public static func activate(_ x: UnsafeMutablePointer<Float>, count: Int, _ epilogue: Epilogue) {
        switch epilogue {
        case .none: break
        case .gelu, .relu: ck_activate(x, Int32(count), epilogue.kernelCode)
        case .tanh: Activation.tanh(x, count: count)
        }
    }

    /// Bytes held by the weight and bias copies.
    public var byteCount: Int { (storage.count + (bias?.count ?? 0)) * MemoryLayout<Float>.size }
}
