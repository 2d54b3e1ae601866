import Foundation
import Testing
@testable import Numerics

/// The one GELU, softmax, layer norm and L2 normalisation every tower and the classifier use,
/// at every instruction level the CPU has, against float64 references computed here.
@Suite(.serialized) struct VectorMathTests {
    @Test func geluIsTheExactFormToWithinAMillionth() {
        let x: [Float] = (0..<2001).map { Float($0 - 1000) / 100 }
        for level in 0...KernelPath.level {
            KernelPath.limitLevel(level)
            defer { KernelPath.limitLevel(nil) }
            var y = x
            y.withUnsafeMutableBufferPointer { Activation.gelu($0.baseAddress!, count: $0.count) }
            for (i, v) in x.enumerated() {
                let exact = 0.5 * Double(v) * (1 + erf(Double(v) / 2.0.squareRoot()))
                #expect(abs(Double(y[i]) - exact) <= 2e-6, "level \(level) x \(v)")
                #expect(abs(Double(Activation.gelu(v)) - exact) <= 2e-6, "scalar x \(v)")
            }
        }
    }

    @Test func softmaxRowsAddBiasAndMaskThenNormalise() {
        let rows = 3, columns = 37, ld = 40
        let scores: [Float] = (0..<(rows * ld)).map { Float(($0 * 37) % 23) / 3 - 2 }
        let bias: [Float] = (0..<(rows * columns)).map { Float(($0 * 11) % 7) / 5 }
        var mask = [Float](repeating: 0, count: rows * columns)
        mask[5] = -100
        mask[columns + 2] = -.infinity
        for level in 0...KernelPath.level {
            KernelPath.limitLevel(level)
            defer { KernelPath.limitLevel(nil) }
            var s = scores
            s.withUnsafeMutableBufferPointer {
                Activation.softmaxRows($0.baseAddress!, rows: rows, columns: columns, ld: ld, adding: bias, mask: mask)
            }
            for r in 0..<rows {
                let z = (0..<columns).map { Double(scores[r * ld + $0]) + Double(bias[r * columns + $0]) + Double(mask[r * columns + $0]) }
                let m = z.max()!, total = z.reduce(0) { $0 + exp($1 - m) }
                for j in 0..<columns {
                    #expect(abs(Double(s[r * ld + j]) - exp(z[j] - m) / total) <= 1e-6, "level \(level) row \(r) col \(j)")
                }
                for j in columns..<ld { #expect(s[r * ld + j] == scores[r * ld + j], "padding untouched") }
            }
        }
    }

    @Test func layerNormAndL2NormalisationMatchFloat64() {
        let width = 37, rows = 3
        let x: [Float] = (0..<(rows * width)).map { Float(($0 * 13) % 17) - 8 + Float($0) / 1000 }
        let w: [Float] = (0..<width).map { 1 + Float($0) / 50 }, b: [Float] = (0..<width).map { Float($0) / 100 }
        for offset: Float in [0, 1] {
            var y = [Float](repeating: 0, count: rows * (width + 3))
            y.withUnsafeMutableBufferPointer {
                Normalization.layerNorm(x, ldx: width, rows: rows, width: width, weight: w, bias: b, weightOffset: offset,
                                        eps: 1e-5, into: $0.baseAddress!, ldy: width + 3)
            }
            for r in 0..<rows {
                let row = (0..<width).map { Double(x[r * width + $0]) }
                let mean = row.reduce(0, +) / Double(width)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(width)
                for j in 0..<width {
                    let want = (row[j] - mean) / (variance + 1e-5).squareRoot() * Double(w[j] + offset) + Double(b[j])
                    #expect(abs(Double(y[r * (width + 3) + j]) - want) <= 1e-5, "offset \(offset) row \(r) col \(j)")
                }
            }
        }
        let v: [Float] = (0..<width).map { Float($0) - 18.5 }
        let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(zip(Normalization.l2Normalized(v), v).allSatisfy { abs(Double($0) - Double($1) / norm) <= 1e-7 })
        #expect(Normalization.l2Normalized([0, 0]) == [0, 0])
    }
}
