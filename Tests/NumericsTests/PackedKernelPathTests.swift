import Foundation
import Testing
@testable import Numerics
import TestSupport

/// Every instruction path of the packed product (scalar, AVX2 + FMA, AVX-512 with, from 48 rows
/// and 33 columns and a row stride of A that is a multiple of 1024 floats, its cache-blocked
/// kernel) against the scalar path and a float64 reference, and the vectorised softmax and GELU against the scalar ones, on
/// whatever CPU runs the suite: `limitInstructionLevel` caps the level, so every path the CPU has
/// is exercised. Odd shapes, row strides (copied blocks of A included), accumulation, bias,
/// epilogues, depth blocks (K > 512), row blocks (M > 192), and a block of a packed matrix.
@Suite(.serialized) struct PackedKernelPathTests {
    struct Case: CustomStringConvertible {
        let m, n, k: Int
        let accumulate: Bool, bias: Bool
        let epilogue: Linear.Epilogue
        var description: String { "\(m)x\(n)x\(k) acc \(accumulate) bias \(bias) \(epilogue)" }
    }

    static let cases: [Case] = {
        let shapes = [(1, 17, 3), (5, 33, 64), (12, 48, 100), (13, 16, 513), (31, 100, 1030), (47, 1, 7),
                      (48, 33, 64), (49, 17, 513), (150, 48, 300), (193, 100, 1030), (385, 32, 64), (600, 65, 129),
                      (100, 40, 1021), (250, 70, 2045)]  // the last two: ldx 1024, 2048 (AVX-512: blocked)
        let epilogues: [Linear.Epilogue] = [.none, .gelu, .relu, .tanh]
        return shapes.enumerated().map { i, s in
            Case(m: s.0, n: s.1, k: s.2, accumulate: i % 2 == 1, bias: i % 3 != 2, epilogue: epilogues[i % 4])
        }
    }()

    /// The inputs of one case: x with row stride k + 3, y preset (row stride n + 5).
    struct Inputs {
        let x: [Float], w: [Float], b: [Float], y: [Float]
        let ldx: Int, ldy: Int
    }

    func inputs(_ c: Case) -> Inputs {
        var g = SplitMix64(seed: UInt64(c.m * 1_000_003 + c.n * 1009 + c.k))
        let ldx = c.k + 3, ldy = c.n + 5
        return Inputs(x: (0..<(c.m * ldx)).map { _ in g.uniform() }, w: (0..<(c.n * c.k)).map { _ in g.uniform() },
                      b: (0..<c.n).map { _ in g.uniform() }, y: (0..<(c.m * ldy)).map { _ in g.uniform() },
                      ldx: ldx, ldy: ldy)
    }

    func product(_ c: Case, _ i: Inputs, _ packed: Linear) -> [Float] {
        var y = i.y
        i.b.withUnsafeBufferPointer { b in
            y.withUnsafeMutableBufferPointer {
                packed.apply(i.x, rows: c.m, ldx: i.ldx, bias: c.bias ? b.baseAddress : nil, into: $0.baseAddress!,
                             ldy: i.ldy, accumulate: c.accumulate, epilogue: c.epilogue)
            }
        }
        return y
    }

    func reference(_ c: Case, _ i: Inputs) -> [Float] {
        var y = i.y
        for r in 0..<c.m {
            for j in 0..<c.n {
                var s = 0.0
                for k in 0..<c.k { s += Double(i.x[r * i.ldx + k]) * Double(i.w[j * c.k + k]) }
                var v = Float(s) + (c.bias ? i.b[j] : 0) + (c.accumulate ? i.y[r * i.ldy + j] : 0)
                switch c.epilogue {
                case .none: break
                case .gelu: v = Activation.gelu(v)
                case .relu: v = max(v, 0)
                case .tanh: v = Float(Foundation.tanh(Double(v)))
                }
                y[r * i.ldy + j] = v
            }
        }
        return y
    }

    /// Sums of k products of values in [-1, 1]: rounding differences grow with k.
    func tolerance(_ c: Case) -> Float { 2e-6 * Float(c.k) + 1e-6 }

    @Test(arguments: cases) func everyPathMatchesScalar(_ c: Case) {
        let i = inputs(c)
        let packed = Linear(Parameter(name: "w", shape: [c.n, c.k], values: i.w))
        let best = KernelPath.level
        defer { KernelPath.limitLevel(nil) }
        KernelPath.limitLevel(0)
        let scalar = product(c, i, packed)
        #expect(maxAbsDiff(scalar, reference(c, i)) <= tolerance(c), "scalar vs float64, \(c)")
        for level in 0...best {
            #expect(KernelPath.limitLevel(level) == level)
            let y = product(c, i, packed)
            #expect(maxAbsDiff(y, scalar) <= tolerance(c), "level \(level), \(c)")
            // The row padding (columns n ..< ldy) is never written.
            for r in 0..<c.m {
                for j in c.n..<i.ldy where y[r * i.ldy + j] != i.y[r * i.ldy + j] {
                    Issue.record("level \(level), \(c): padding written at row \(r), column \(j)")
                }
            }
        }
    }

    /// A block of a packed weight (outputs from a panel boundary, a range of inputs), as the
    /// audio tower's products read it: every level equals the block packed on its own.
    @Test(arguments: [3, 40, 150, 400]) func blockOfLinearMatchesScalar(_ rows: Int) {
        let n = 70, k = 600, outputs = 16..<61, inputs = 37..<571
        var g = SplitMix64(seed: UInt64(rows))
        let w = (0..<(n * k)).map { _ in g.uniform() }
        let x = (0..<(rows * inputs.count)).map { _ in g.uniform() }
        let bias = (0..<outputs.count).map { _ in g.uniform() }
        let whole = Linear(Parameter(name: "w", shape: [n, k], values: w))
        let block = w.withUnsafeBufferPointer {
            Linear(weight: $0.baseAddress! + outputs.lowerBound * k + inputs.lowerBound,
                         outFeatures: outputs.count, inFeatures: inputs.count, ldw: k)
        }
        let best = KernelPath.level
        defer { KernelPath.limitLevel(nil) }
        KernelPath.limitLevel(0)
        var expected = [Float](repeating: 0, count: rows * outputs.count)
        expected.withUnsafeMutableBufferPointer {
            block.apply(x, rows: rows, bias: bias, into: $0.baseAddress!, epilogue: .gelu)
        }
        for level in 0...best {
            KernelPath.limitLevel(level)
            var y = [Float](repeating: .nan, count: rows * outputs.count)
            y.withUnsafeMutableBufferPointer {
                whole.apply(x, rows: rows, ldx: inputs.count, outputs: outputs, inputs: inputs, bias: bias,
                            into: $0.baseAddress!, ldy: outputs.count, epilogue: .gelu)
            }
            #expect(maxAbsDiff(y, expected) <= 2e-6 * Float(inputs.count), "level \(level), rows \(rows)")
        }
    }

    /// The vectorised softmax and GELU of every level against the scalar ones (lengths around
    /// the 8- and 16-lane widths, values far below the maximum included).
    @Test func activationsOfEveryLevelMatchScalar() {
        var g = SplitMix64(seed: 7)
        let best = KernelPath.level
        defer { KernelPath.limitLevel(nil) }
        for n in [1, 7, 8, 15, 16, 17, 33, 150, 501] {
            var x = (0..<n).map { _ in 8 * g.uniform() }
            if n > 2 { x[1] = -200; x[2] = -1e30 }
            func run(_ level: Int) -> (softmax: [Float], gelu: [Float]) {
                KernelPath.limitLevel(level)
                var p = x, q = x
                p.withUnsafeMutableBufferPointer { Activation.softmax($0.baseAddress!, count: n) }
                q.withUnsafeMutableBufferPointer { Linear.activate($0.baseAddress!, count: n, .gelu) }
                return (p, q)
            }
            let scalar = run(0)
            #expect(maxAbsDiff(scalar.gelu, x.map(Activation.gelu)) <= 1e-6, "n \(n)")
            for level in 1...max(1, best) where level <= best {
                let v = run(level)
                #expect(maxAbsDiff(v.softmax, scalar.softmax) <= 1e-6, "softmax, level \(level), n \(n)")
                #expect(maxAbsDiff(v.gelu, scalar.gelu) <= 1e-5, "gelu, level \(level), n \(n)")
                if n > 2 { #expect(v.softmax[2] == 0, "level \(level), n \(n)") }
            }
        }
    }
}
