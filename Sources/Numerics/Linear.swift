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
///
/// `Precision.f16` and `.bf16` hold a packed weight in 16 bits (half the memory, half the weight
/// traffic of a product with few rows) and accumulate in float32. f16 keeps 11 significant bits
/// (lossless for a package stored in f16) and is widened in registers (`gemm_f16.c`); bf16 keeps
/// 8, and with AVX512-BF16 the rows of the input are rounded to bf16 too and multiplied by
/// VDPBF16PS at twice the FMA rate, otherwise widened (`gemm_bf16.c`). The `blas` backend is
/// always float32.
public struct Linear: @unchecked Sendable {
    /// How a packed weight is held.
    public enum Precision: String, Sendable, Codable, CaseIterable {
        /// float32: the products are those of the reference.
        case f32
        /// IEEE half weights (round to nearest even at load), float32 inputs and accumulation.
        case f16
        /// bfloat16 weights (round to nearest even at load), float32 accumulation.
        case bf16
    }

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
    /// How the weight is held (`f32` for the `blas` backend).
    public let precision: Precision
    /// The weight's copy, in its precision.
    private let weights: Weights
    /// The layer's bias, used when `apply` is given none.
    public let bias: FloatStorage?

    /// A whole `[out, in]` parameter and its bias.
    public init(_ weight: Parameter, bias: Parameter? = nil, backend: Backend = .packed, precision: Precision = .f32) {
        precondition(weight.shape.count == 2, "Linear needs a 2-D weight")
        self.init(weight: weight.pointer, outFeatures: weight.shape[0], inFeatures: weight.shape[1],
                  bias: bias?.pointer, backend: backend, precision: precision)
    }

    /// The rows of several `[out_i, in]` weights stacked on top of each other (e.g. two gate
    /// projections that read the same input, computed in one call), without a bias.
    public init(stacking weights: [Parameter], precision: Precision = .f32) {
        let k = weights.first?.shape.last ?? 0
        precondition(weights.allSatisfy { $0.shape.count == 2 && $0.shape[1] == k }, "stacked weights need equal inputs")
        let n = weights.reduce(0) { $0 + $1.shape[0] }
        let joined = FloatStorage(count: n * k)
        var offset = 0
        for w in weights {
            (joined.pointer + offset).update(from: w.pointer, count: w.count)
            offset += w.count
        }
        self.init(weight: UnsafePointer(joined.pointer), outFeatures: n, inFeatures: k, precision: precision)
    }

    /// An `outFeatures x inFeatures` row-major weight whose rows are `ldw` floats apart (default
    /// `inFeatures`: a row or column slice of a wider matrix can be passed as is), and its bias
    /// (`outFeatures` values) if any. Copies both.
    public init(weight pointer: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int, ldw: Int? = nil,
                bias: UnsafePointer<Float>? = nil, backend: Backend = .packed, precision: Precision = .f32) {
        let ldw = ldw ?? inFeatures
        precondition(ldw >= inFeatures, "row stride shorter than a row")
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.backend = backend
        self.precision = backend == .packed ? precision : .f32
        let (n, k, ld) = (Int32(outFeatures), Int32(inFeatures), Int32(ldw))
        switch (backend, self.precision) {
        case (.packed, .bf16):
            let h = HalfStorage(count: ck_packed_bf16_size(n, k))
            ck_pack_bf16_strided(pointer, n, k, ld, h.pointer)
            weights = .bf16(h)
        case (.packed, .f16):
            let h = HalfStorage(count: ck_packed_size(n, k))
            ck_pack_f16_strided(pointer, n, k, ld, h.pointer)
            weights = .f16(h)
        case (.packed, .f32):
            let w = FloatStorage(count: ck_packed_size(n, k))
            ck_pack_strided(pointer, n, k, ld, w.pointer)
            weights = .f32(w)
        case (.blas, _):
            let w = FloatStorage(count: outFeatures * inFeatures)
            for r in 0..<outFeatures { (w.pointer + r * inFeatures).update(from: pointer + r * ldw, count: inFeatures) }
            weights = .f32(w)
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
    /// repacking: the packed weight is read in place. The layer's own bias is not used. A bf16
    /// weight's block of inputs starts at an even input (its depth runs in pairs).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, outputs: Range<Int>, inputs: Range<Int>,
                      bias: UnsafePointer<Float>? = nil, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      accumulate: Bool = false, epilogue: Epilogue = .none) {
        precondition(backend == .packed, "a block of the weight needs the packed backend")
        precondition(outputs.lowerBound % 16 == 0 && outputs.upperBound <= outFeatures, "outputs must start on a panel")
        precondition(inputs.lowerBound >= 0 && inputs.upperBound <= inFeatures, "inputs out of range")
        guard rows > 0, !outputs.isEmpty else { return }
        packedProduct(x, rows: rows, ldx: ldx, outputs: outputs, inputs: inputs, bias: bias, into: y, ldy: ldy,
                      accumulate: accumulate, epilogue: epilogue)
    }

    @usableFromInline
    func multiply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, bias given: UnsafePointer<Float>?,
                  into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, epilogue: Epilogue) {
        guard rows > 0 else { return }
        let b = given ?? bias.map { UnsafePointer($0.pointer) }
        switch (backend, weights) {
        case (.blas, .f32(let w)):
            BLAS.linear(x, rows: rows, inFeatures: inFeatures, ldx: ldx, weight: w.pointer, bias: b,
                        outFeatures: outFeatures, into: y, ldy: ldy, accumulate: accumulate)
            for r in 0..<rows { Self.activate(y + r * ldy, count: outFeatures, epilogue) }
        default:
            packedProduct(x, rows: rows, ldx: ldx, outputs: 0..<outFeatures, inputs: 0..<inFeatures, bias: b, into: y,
                          ldy: ldy, accumulate: accumulate, epilogue: epilogue)
        }
    }

    /// The packed product with the block `outputs` x `inputs` of the weight, in its precision;
    /// then the epilogue (tanh after the kernels).
    private func packedProduct(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, outputs: Range<Int>, inputs: Range<Int>,
                               bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, ldy: Int,
                               accumulate: Bool, epilogue: Epilogue) {
        let (m, n, k, lx, ly) = (Int32(rows), Int32(outputs.count), Int32(inputs.count), Int32(ldx), Int32(ldy))
        let add: Int32 = accumulate ? 1 : 0, code = epilogue.kernelCode
        let panelStart = outputs.lowerBound * inFeatures  // values before the first panel used (16 per depth)
        switch weights {
        case .f32(let w):
            ck_gemm_packed_panels(m, n, k, x, lx, w.pointer + panelStart + inputs.lowerBound * 16, 16 * inFeatures,
                                  bias, y, ly, add, code)
        case .f16(let h):
            ck_gemm_f16_panels(m, n, k, x, lx, h.pointer + panelStart + inputs.lowerBound * 16, 16 * inFeatures,
                               bias, y, ly, add, code)
        case .bf16(let h):
            precondition(inputs.lowerBound % 2 == 0, "a bf16 weight's block of inputs starts at an even input")
            let stride = 32 * ((inFeatures + 1) / 2)
            ck_gemm_bf16_panels(m, n, k, x, lx, h.pointer + outputs.lowerBound / 16 * stride + inputs.lowerBound / 2 * 32,
                                stride, bias, y, ly, add, code)
        }
        if epilogue == .tanh { for r in 0..<rows { Activation.tanh(y + r * ldy, count: outputs.count) } }
    }

    /// `x[i] = epilogue(x[i])`: the kernels' activation on its own (vectorised as they are).
    public static func activate(_ x: UnsafeMutablePointer<Float>, count: Int, _ epilogue: Epilogue) {
        switch epilogue {
        case .none: break
        case .gelu, .relu: ck_activate(x, Int32(count), epilogue.kernelCode)
        case .tanh: Activation.tanh(x, count: count)
        }
    }

    /// The weight as the products see it (f16 / bf16 values widened), row-major `[out, in]`: for
    /// tests and accuracy reports.
    public func effectiveWeight() -> [Float] {
        var w = [Float](repeating: 0, count: outFeatures * inFeatures)
        w.withUnsafeMutableBufferPointer { out in
            guard let o = out.baseAddress else { return }
            switch (backend, weights) {
            case (_, .f16(let h)): ck_unpack_f16(h.pointer, Int32(outFeatures), Int32(inFeatures), o)
            case (_, .bf16(let h)): ck_unpack_bf16(h.pointer, Int32(outFeatures), Int32(inFeatures), o)
            case (.blas, .f32(let w)): o.update(from: w.pointer, count: outFeatures * inFeatures)
            case (.packed, .f32(let w)):
                for r in 0..<outFeatures {
                    for k in 0..<inFeatures { o[r * inFeatures + k] = w.pointer[(r / 16) * 16 * inFeatures + k * 16 + r % 16] }
                }
            }
        }
        return w
    }

    /// Bytes held by the weight and bias copies.
    public var byteCount: Int {
        let weightBytes: Int
        switch weights {
        case .f32(let w): weightBytes = w.count * MemoryLayout<Float>.size
        case .f16(let h), .bf16(let h): weightBytes = h.count * MemoryLayout<UInt16>.size
        }
        return weightBytes + (bias?.count ?? 0) * MemoryLayout<Float>.size
    }

    /// A weight's copy: float32 (packed panels, or the row-major weight of the `blas` backend),
    /// or 16-bit packed panels (f16 in ck_pack's layout, bf16 with the depth in pairs).
    private enum Weights {
        case f32(FloatStorage)
        case f16(HalfStorage)
        case bf16(HalfStorage)
    }
}

/// A block of bfloat16 values (a packed bf16 weight), 64-byte aligned.
final class HalfStorage: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt16>
    let count: Int

    init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 2, alignment: 64)
        pointer = raw.bindMemory(to: UInt16.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }
}
