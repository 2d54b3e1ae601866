import Foundation
import Testing
@testable import Numerics
import CKernels
import TestSupport

/// `Linear` with bf16 and f16 weights at every instruction level the CPU has, against float64 of the
/// rounded operands: levels 0-2 multiply float32 inputs by the bf16-rounded weight; level 3
/// (AVX512-BF16) rounds the inputs to bf16 too. Odd depths, partial panels, several row blocks,
/// bias, accumulation, epilogues and blocks of the weight.
@Suite(.serialized) struct BFloat16LinearTests {
    /// Round to nearest even, written here from the definition (the kernels' own rounding is
    /// checked against it).
    static func bf16(_ x: Float) -> Float {
        if x.isNaN { return x }
        let u = x.bitPattern
        let lower = u & 0xffff, upper = u >> 16
        let roundUp = lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1)
        return Float(bitPattern: (upper + (roundUp ? 1 : 0)) << 16)
    }

    @Test func roundingIsToNearestEven() {
        var g = SplitMix64(seed: 11)
        var samples: [Float] = [1, -1, 0, -0, 1 + 0x1p-8, 1 + 0x1p-8 + 0x1p-20, 1 + 3 * 0x1p-8, 0x1.fffffep127, 1e-40,
                                .infinity, -.infinity, 3.1415927]
        for _ in 0..<2000 { samples.append(g.uniform() * 1000) }
        for x in samples {
            let got = Float(bitPattern: UInt32(ck_bf16_round(x)) << 16)
            #expect(got.bitPattern == Self.bf16(x).bitPattern, "\(x): \(got) vs \(Self.bf16(x))")
        }
        #expect(Float(bitPattern: UInt32(ck_bf16_round(.nan)) << 16).isNaN)
        #expect(Self.bf16(1 + 0x1p-8) == 1)        // a tie goes to the even neighbour
        #expect(Self.bf16(1 + 3 * 0x1p-8) == 1 + 0x1p-6)
    }

    struct Case: CustomStringConvertible {
        let m, n, k: Int
        var description: String { "\(m)x\(n)x\(k)" }
    }

    static let cases = [Case(m: 1, n: 16, k: 2), Case(m: 5, n: 45, k: 37), Case(m: 16, n: 512, k: 512),
                        Case(m: 13, n: 33, k: 1), Case(m: 200, n: 70, k: 96), Case(m: 400, n: 96, k: 1024)]

    /// float64 of x W_bf16^T + b (+ preset), x rounded to bf16 when `roundInputs`.
    static func reference(_ x: [Float], _ w: [Float], _ b: [Float], _ preset: [Float]?, m: Int, n: Int, k: Int,
                          ldx: Int, ldy: Int, roundInputs: Bool) -> (value: [Float], scale: [Float]) {
        var out = preset ?? [Float](repeating: 0, count: m * ldy), scale = [Float](repeating: 0, count: m * ldy)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let a = Double(roundInputs ? bf16(x[i * ldx + p]) : x[i * ldx + p]), v = Double(bf16(w[j * k + p]))
                    s += a * v
                    magnitude += abs(a * v)
                }
                out[i * ldy + j] = Float(s + Double(b[j]) + Double(preset?[i * ldy + j] ?? 0))
                scale[i * ldy + j] = Float(magnitude + abs(Double(b[j]))) + abs(preset?[i * ldy + j] ?? 0)
            }
        }
        return (out, scale)
    }

    @Test(arguments: cases)
    func everyLevelMatchesTheRoundedReference(_ c: Case) {
        var g = SplitMix64(seed: UInt64(c.m * 31 + c.n * 7 + c.k))
        let ldx = c.k + 3, ldy = c.n + 2
        let x = (0..<(c.m * ldx)).map { _ in g.uniform() }, w = (0..<(c.n * c.k)).map { _ in g.uniform() }
        let b = (0..<c.n).map { _ in g.uniform() }
        let layer = Linear(weight: w, outFeatures: c.n, inFeatures: c.k, bias: b, precision: .bf16)
        #expect(layer.precision == .bf16)
        #expect(layer.effectiveWeight() == w.map(Self.bf16))
        for level in 0...KernelPath.level {
            for accumulate in [false, true] {
                let preset = (0..<(c.m * ldy)).map { _ in g.uniform() }
                var y = preset
                KernelPath.limitLevel(level)
                y.withUnsafeMutableBufferPointer {
                    layer.apply(x, rows: c.m, ldx: ldx, into: $0.baseAddress!, ldy: ldy, accumulate: accumulate)
                }
                KernelPath.limitLevel(nil)
                let want = Self.reference(x, w, b, accumulate ? preset : nil, m: c.m, n: c.n, k: c.k, ldx: ldx, ldy: ldy,
                                          roundInputs: level >= 3)
                var worst: Float = 0
                for i in 0..<c.m {
                    for j in 0..<c.n {
                        let e = abs(y[i * ldy + j] - want.value[i * ldy + j]) / max(want.scale[i * ldy + j], 1e-30)
                        worst = max(worst, e)
                    }
                    // The padding columns are not written.
                    #expect(y[i * ldy + c.n] == preset[i * ldy + c.n], "\(c) level \(level): padding")
                }
                // float32 sums of |terms| <= scale: a few ulp of the scale per term at most.
                #expect(worst <= 4e-7 * Float(c.k).squareRoot() + 2e-7, "\(c) level \(level) acc \(accumulate): \(worst)")
            }
        }
    }

    @Test func epiloguesAndBlocksOfTheWeightMatchFloat32OfTheRoundedWeight() {
        var g = SplitMix64(seed: 3)
        let n = 80, k = 90, m = 21
        let x = (0..<(m * k)).map { _ in g.uniform() }, w = (0..<(n * k)).map { _ in g.uniform() }
        let rounded = w.map(Self.bf16)
        let half = Linear(weight: w, outFeatures: n, inFeatures: k, precision: .bf16)
        let exact = Linear(weight: rounded, outFeatures: n, inFeatures: k)
        for level in 0...KernelPath.level {
            KernelPath.limitLevel(level)
            defer { KernelPath.limitLevel(nil) }
            // Level 3 rounds the inputs: compare it with the f32 layer on rounded inputs.
            let input = level >= 3 ? x.map(Self.bf16) : x
            for epilogue in [Linear.Epilogue.none, .gelu, .relu, .tanh] {
                var got = [Float](repeating: 0, count: m * n), want = got
                got.withUnsafeMutableBufferPointer { half.apply(x, rows: m, into: $0.baseAddress!, epilogue: epilogue) }
                want.withUnsafeMutableBufferPointer { exact.apply(input, rows: m, into: $0.baseAddress!, epilogue: epilogue) }
                let error = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                #expect(error <= 2e-5, "level \(level) \(epilogue): \(error)")
            }
            // A block: outputs 16..<80, inputs 24..<61 (even start, odd count).
            let outputs = 16..<80, inputs = 24..<61
            let xs = (0..<(m * inputs.count)).map { _ in g.uniform() }
            var got = [Float](repeating: 0, count: m * outputs.count), want = got
            got.withUnsafeMutableBufferPointer {
                half.apply(xs, rows: m, ldx: inputs.count, outputs: outputs, inputs: inputs, into: $0.baseAddress!,
                           ldy: outputs.count)
            }
            let xb = level >= 3 ? xs.map(Self.bf16) : xs
            want.withUnsafeMutableBufferPointer {
                exact.apply(xb, rows: m, ldx: inputs.count, outputs: outputs, inputs: inputs, into: $0.baseAddress!,
                            ldy: outputs.count)
            }
            let error = zip(got, want).map { abs($0 - $1) }.max() ?? 0
            #expect(error <= 2e-5, "level \(level) block: \(error)")
        }
    }

    /// f16 weights: every level computes the float32 product with the f16-rounded weight (Swift's
    /// `Float16`, round to nearest even, is the reference rounding).
    @Test(arguments: cases)
    func f16EveryLevelMatchesTheRoundedReference(_ c: Case) {
        var g = SplitMix64(seed: UInt64(c.m * 17 + c.n * 5 + c.k))
        let ldx = c.k + 1, ldy = c.n + 3
        let x = (0..<(c.m * ldx)).map { _ in g.uniform() }, w = (0..<(c.n * c.k)).map { _ in g.uniform() * 3 }
        let b = (0..<c.n).map { _ in g.uniform() }
        let layer = Linear(weight: w, outFeatures: c.n, inFeatures: c.k, bias: b, precision: .f16)
        let rounded = w.map { Float(Float16($0)) }
        #expect(layer.precision == .f16 && layer.effectiveWeight() == rounded)
        let exact = Linear(weight: rounded, outFeatures: c.n, inFeatures: c.k, bias: b)
        for level in 0...KernelPath.level {
            KernelPath.limitLevel(level)
            defer { KernelPath.limitLevel(nil) }
            for epilogue in [Linear.Epilogue.none, .gelu] {
                let preset = (0..<(c.m * ldy)).map { _ in g.uniform() }
                var got = preset, want = preset
                got.withUnsafeMutableBufferPointer {
                    layer.apply(x, rows: c.m, ldx: ldx, into: $0.baseAddress!, ldy: ldy, accumulate: true, epilogue: epilogue)
                }
                want.withUnsafeMutableBufferPointer {
                    exact.apply(x, rows: c.m, ldx: ldx, into: $0.baseAddress!, ldy: ldy, accumulate: true, epilogue: epilogue)
                }
                let error = zip(got, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                #expect(error <= 1e-5 * Float(max(1, c.k / 64)), "\(c) level \(level) \(epilogue): \(error)")
            }
        }
        // A block of the weight reads it in place (any input offset).
        if c.n >= 32 && c.k >= 3 {
            let outputs = 16..<c.n, inputs = 1..<c.k
            let xs = (0..<(c.m * inputs.count)).map { _ in g.uniform() }
            var got = [Float](repeating: 0, count: c.m * outputs.count), want = got
            got.withUnsafeMutableBufferPointer {
                layer.apply(xs, rows: c.m, ldx: inputs.count, outputs: outputs, inputs: inputs, into: $0.baseAddress!,
                            ldy: outputs.count)
            }
            want.withUnsafeMutableBufferPointer {
                exact.apply(xs, rows: c.m, ldx: inputs.count, outputs: outputs, inputs: inputs, into: $0.baseAddress!,
                            ldy: outputs.count)
            }
            #expect((zip(got, want).map { abs($0 - $1) }.max() ?? 0) <= 1e-4, "\(c) block")
        }
    }

    @Test func f16RoundingAndWideningMatchFloat16() {
        var g = SplitMix64(seed: 21)
        var samples: [Float] = [0, -0, 1, 65504, 65520, 70000, 6e-5, 6e-8, 3e-8, 1e-9, .infinity, -.infinity, 1 + 0x1p-11]
        for _ in 0..<5000 { samples.append(g.uniform() * 1e5) }
        for _ in 0..<5000 { samples.append(g.uniform() * 1e-4) }
        for x in samples {
            #expect(ck_f16_round(x) == Float16(x).bitPattern, "\(x)")
            #expect(ck_f16_widen(Float16(x).bitPattern).bitPattern == Float(Float16(x)).bitPattern, "\(x)")
        }
        #expect(ck_f16_widen(ck_f16_round(.nan)).isNaN)
    }

    @Test func halfTheBytesOfFloat32() {
        let w = [Float](repeating: 0.5, count: 512 * 512)
        let f32 = Linear(weight: w, outFeatures: 512, inFeatures: 512)
        let bf16 = Linear(weight: w, outFeatures: 512, inFeatures: 512, precision: .bf16)
        #expect(bf16.byteCount * 2 == f32.byteCount)
        #expect(Linear(weight: w, outFeatures: 512, inFeatures: 512, precision: .f16).byteCount * 2 == f32.byteCount)
        // The blas backend is the float32 reference whatever is asked.
        #expect(Linear(weight: w, outFeatures: 512, inFeatures: 512, backend: .blas, precision: .bf16).precision == .f32)
    }
}
