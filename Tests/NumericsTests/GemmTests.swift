import Foundation
import Testing
@testable import Numerics
import TestSupport

/// `Gemm` (products whose right operand is packed per call) at every instruction level the CPU
/// has, against a float64 reference: both layouts of B, alpha, accumulation, bias, row strides,
/// an empty depth; and the kernel path the process reports.
@Suite(.serialized) struct GemmTests {
    struct Case: CustomStringConvertible {
        let m, n, k: Int
        let transposeB: Bool, alpha: Float, accumulate: Bool
        var description: String { "\(m)x\(n)x\(k) B\(transposeB ? "^T" : "") alpha \(alpha) acc \(accumulate)" }
    }

    static let cases: [Case] = [
        Case(m: 64, n: 64, k: 32, transposeB: true, alpha: 0.17677, accumulate: false),   // Swin q k^T
        Case(m: 64, n: 32, k: 64, transposeB: false, alpha: 1, accumulate: false),        // Swin P v
        Case(m: 16, n: 16, k: 257, transposeB: true, alpha: 0.0625, accumulate: true),    // mLSTM q k^T
        Case(m: 16, n: 100, k: 16, transposeB: false, alpha: 1, accumulate: true),
        Case(m: 1, n: 1, k: 1, transposeB: true, alpha: 2, accumulate: false),
        Case(m: 7, n: 33, k: 0, transposeB: false, alpha: 1, accumulate: true),           // empty depth: C unchanged
        Case(m: 200, n: 96, k: 1024, transposeB: true, alpha: 1, accumulate: false),      // blocked at AVX-512
        Case(m: 53, n: 17, k: 5, transposeB: false, alpha: -0.5, accumulate: false),
    ]

    /// A (row stride k + 2), B (row stride + 3), C preset (row stride n + 1): C = alpha A op(B) (+ C).
    func run(_ c: Case, level: Int) -> (got: [Float], want: [Float]) {
        var g = SplitMix64(seed: UInt64(c.m * 7919 + c.n * 104_729 + c.k * 31 + (c.transposeB ? 1 : 0)))
        let lda = c.k + 2, ldc = c.n + 1
        let bRows = c.transposeB ? c.n : c.k, bColumns = c.transposeB ? c.k : c.n, ldb = bColumns + 3
        let a = (0..<(c.m * lda)).map { _ in g.uniform() }
        let b = (0..<(max(bRows, 1) * ldb)).map { _ in g.uniform() }
        let preset = (0..<(c.m * ldc)).map { _ in g.uniform() }
        var want = preset
        for i in 0..<c.m {
            for j in 0..<c.n {
                var s = 0.0
                for p in 0..<c.k {
                    s += Double(a[i * lda + p]) * Double(c.transposeB ? b[j * ldb + p] : b[p * ldb + j])
                }
                want[i * ldc + j] = Float(Double(c.alpha) * s) + (c.accumulate ? preset[i * ldc + j] : 0)
            }
        }
        var got = preset
        KernelPath.limitLevel(level)
        defer { KernelPath.limitLevel(nil) }
        got.withUnsafeMutableBufferPointer { out in
            Gemm.multiply(transposeB: c.transposeB, m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: a, lda: lda, b: b, ldb: ldb,
                          accumulate: c.accumulate, c: out.baseAddress!, ldc: ldc)
        }
        // Untouched: the padding columns of C.
        for i in 0..<c.m where ldc > c.n { #expect(got[i * ldc + c.n] == preset[i * ldc + c.n], "\(c): padding") }
        return (got, want)
    }

    @Test(arguments: cases)
    func everyLevelMatchesTheReference(_ c: Case) {
        for level in 0...KernelPath.level {
            let (got, want) = run(c, level: level)
            let error = zip(got, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            #expect(error <= 1e-5 * Float(max(1, c.k / 64)), "\(c) level \(level): \(error)")
        }
    }

    @Test func linearAddsTheBiasOnceAndKeepsStrides() {
        var g = SplitMix64(seed: 5)
        let rows = 37, inputs = 75, outputs = 29, ldx = 80, ldy = 31
        let x = (0..<(rows * ldx)).map { _ in g.uniform() }, w = (0..<(outputs * inputs)).map { _ in g.uniform() }
        let bias = (0..<outputs).map { _ in g.uniform() }
        for level in 0...KernelPath.level {
            for accumulate in [false, true] {
                let preset = (0..<(rows * ldy)).map { _ in g.uniform() }
                var y = preset
                KernelPath.limitLevel(level)
                y.withUnsafeMutableBufferPointer {
                    Gemm.linear(x, rows: rows, inFeatures: inputs, ldx: ldx, weight: w, bias: bias, outFeatures: outputs,
                                into: $0.baseAddress!, ldy: ldy, accumulate: accumulate)
                }
                KernelPath.limitLevel(nil)
                var worst: Float = 0
                for r in 0..<rows {
                    for o in 0..<outputs {
                        var s = Double(bias[o]) + (accumulate ? Double(preset[r * ldy + o]) : 0)
                        for i in 0..<inputs { s += Double(x[r * ldx + i]) * Double(w[o * inputs + i]) }
                        worst = max(worst, abs(y[r * ldy + o] - Float(s)))
                    }
                    for o in outputs..<ldy { #expect(y[r * ldy + o] == preset[r * ldy + o]) }
                }
                #expect(worst <= 1e-4, "level \(level) accumulate \(accumulate): \(worst)")
            }
        }
    }

    @Test func thePathIsChosenByFeatureBits() {
        let path = KernelPath.current
        let level = KernelPath.level
        #expect(path.kernels == ["scalar", "avx2", "avx512", "avx512_bf16"][level])
        if path.kernels == "avx512" { #expect(path.features.contains("avx512f")) }
        if path.kernels == "avx512_bf16" { #expect(path.features.contains("avx512f") && path.features.contains("avx512_bf16")) }
        if path.kernels == "avx2" { #expect(path.features.contains("avx2") && path.features.contains("fma")) }
        #expect(!path.openBLASCore.isEmpty && path.description.contains(path.kernels))
    }
}

/// The one linear layer: its stored bias, both backends and every epilogue against float64.
@Suite struct LinearTests {
    @Test(arguments: [Linear.Backend.packed, .blas])
    func storedBiasAndEveryEpilogueMatchTheReference(_ backend: Linear.Backend) {
        var g = SplitMix64(seed: 11)
        let rows = 9, k = 40, n = 23
        let x = (0..<(rows * k)).map { _ in g.uniform() }, w = (0..<(n * k)).map { _ in g.uniform() }
        let bias = (0..<n).map { _ in g.uniform() }
        let layer = Linear(weight: w, outFeatures: n, inFeatures: k, bias: bias, backend: backend)
        for epilogue in [Linear.Epilogue.none, .gelu, .relu, .tanh] {
            var y = [Float](repeating: 0, count: rows * n)
            y.withUnsafeMutableBufferPointer { layer.apply(x, rows: rows, into: $0.baseAddress!, epilogue: epilogue) }
            for r in 0..<rows {
                for o in 0..<n {
                    var s = Double(bias[o])
                    for i in 0..<k { s += Double(x[r * k + i]) * Double(w[o * k + i]) }
                    let want: Double = switch epilogue {
                    case .none: s
                    case .gelu: 0.5 * s * (1 + erf(s / 2.0.squareRoot()))
                    case .relu: max(s, 0)
                    case .tanh: tanh(s)
                    }
                    #expect(abs(Double(y[r * n + o]) - want) <= 1e-5, "\(backend) \(epilogue) [\(r), \(o)]")
                }
            }
        }
        #expect(layer.byteCount >= (n * k + n) * 4)
    }
}
