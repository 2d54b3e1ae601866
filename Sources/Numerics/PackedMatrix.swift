import CKernels

/// A linear layer's weight (`[out, in]`, PyTorch layout) repacked once at load into panels of 16
/// output columns.
///
/// A turn multiplies only 16 rows (batch x steps) by each weight; general BLAS repacks the
/// weight on every call, which at that size costs as much as the product. Packing at load lets
/// the kernel stream every weight exactly once per call with a register-tiled AVX-512 or
/// AVX2/FMA loop, which also serves an encoder's hundreds of rows; with 48 rows or more whose row
/// stride is a multiple of 4 KiB (which would put a 12-row tile in one L1 set) the AVX-512 level
/// runs cache-blocked on copied blocks of the input instead (`Sources/CKernels/gemm_blocked.c`).
/// The kernel chooses by shape.
public struct PackedMatrix: @unchecked Sendable {
    /// An activation applied to every output of a product, while its tile is in registers.
    public enum Epilogue: Int32, Sendable {
        case none = 0
        /// Exact-form GELU, `x/2 (1 + erf(x / sqrt 2))`, erf within 4.3e-7 (as `Activation.gelu`).
        case gelu = 1
        /// `max(x, 0)` (NaN stays NaN).
        case relu = 2
    }

    public let outFeatures: Int
    public let inFeatures: Int
    private let storage: FloatStorage

    /// Packs `weight` (shape `[out, in]`).
    public init(_ weight: Parameter) {
        precondition(weight.shape.count == 2, "PackedMatrix needs a 2-D weight")
        self.init(weight: weight.pointer, outFeatures: weight.shape[0], inFeatures: weight.shape[1])
    }

    /// Packs the rows of several `[out_i, in]` weights stacked on top of each other (e.g. two
    /// gate projections that read the same input, computed in one call).
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

    /// Packs an `outFeatures x inFeatures` row-major weight whose rows are `ldw` floats apart
    /// (default `inFeatures`; a column slice of a wider matrix can be passed as is). Copies.
    public init(weight pointer: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int, ldw: Int? = nil) {
        precondition((ldw ?? inFeatures) >= inFeatures, "row stride shorter than a row")
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        storage = FloatStorage(count: ck_packed_size(Int32(outFeatures), Int32(inFeatures)))
        ck_pack_strided(pointer, Int32(outFeatures), Int32(inFeatures), Int32(ldw ?? inFeatures), storage.pointer)
    }

    /// `y[r] = epilogue(x[r] * W^T (+ bias) (+ y[r] if accumulate))` for `rows` rows.
    @inlinable
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil, bias: UnsafePointer<Float>? = nil,
                      into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false,
                      epilogue: Epilogue = .none) {
        multiply(x, rows: rows, ldx: ldx ?? inFeatures, bias: bias, into: y, ldy: ldy ?? outFeatures,
                 accumulate: accumulate, epilogue: epilogue)
    }

    /// The product with a block of the weight: output columns `outputs` (its lower bound a multiple
    /// of 16, a panel boundary) and input features `inputs` (any range), i.e.
    /// `y[r] = x[r] * W[outputs, inputs]^T (+ bias[0..<outputs.count]) (+ y[r] if accumulate)`;
    /// `x` holds `inputs.count` values per row, `y` `outputs.count`; then `epilogue`. No
    /// repacking: the packed weight is read in place.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, outputs: Range<Int>, inputs: Range<Int>,
                      bias: UnsafePointer<Float>? = nil, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      accumulate: Bool = false, epilogue: Epilogue = .none) {
        precondition(outputs.lowerBound % 16 == 0 && outputs.upperBound <= outFeatures, "outputs must start on a panel")
        precondition(inputs.lowerBound >= 0 && inputs.upperBound <= inFeatures, "inputs out of range")
        guard rows > 0, !outputs.isEmpty else { return }
        let start = storage.pointer + outputs.lowerBound * inFeatures + inputs.lowerBound * 16
        ck_gemm_packed_panels(Int32(rows), Int32(outputs.count), Int32(inputs.count), x, Int32(ldx), start,
                              16 * inFeatures, bias, y, Int32(ldy), accumulate ? 1 : 0, epilogue.rawValue)
    }

    @usableFromInline
    func multiply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, bias: UnsafePointer<Float>?,
                  into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, epilogue: Epilogue) {
        guard rows > 0 else { return }
        ck_gemm_packed_panels(Int32(rows), Int32(outFeatures), Int32(inFeatures), x, Int32(ldx), storage.pointer,
                              16 * inFeatures, bias, y, Int32(ldy), accumulate ? 1 : 0, epilogue.rawValue)
    }

    /// `x[i] = epilogue(x[i])`: the kernels' activation on its own (vectorised as they are).
    public static func activate(_ x: UnsafeMutablePointer<Float>, count: Int, _ epilogue: Epilogue) {
        if epilogue != .none { ck_activate(x, Int32(count), epilogue.rawValue) }
    }

    /// Bytes held by the packed copy.
    public var byteCount: Int { storage.count * MemoryLayout<Float>.size }

    /// True when the CPU runs a vectorised kernel (AVX2 + FMA or AVX-512).
    public static var isVectorized: Bool { ck_vectorized() != 0 }

    /// The kernel in use: 0 scalar, 1 AVX2 + FMA, 2 AVX-512.
    public static var instructionLevel: Int { Int(ck_level()) }

    /// Caps the kernel's instruction set on the calling thread (nil: the best the CPU has); for
    /// tests and comparisons. Products on other threads are not affected.
    @discardableResult
    public static func limitInstructionLevel(_ level: Int?) -> Int { Int(ck_force_level(Int32(level ?? -1))) }
}
