import Foundation
import Numerics
import Testing
import TestSupport

/// Numerics' `Attention` (used by the text tower without bias or mask) against a direct
/// double-precision computation, with the additive bias and mask a Swin window needs.
@Suite struct TextAttentionKernelTests {
    struct Case {
        let queries, keys, heads, headDim: Int
        let ld: Int  // row stride of q, k, v (heads side by side, plus slack)
        var q, k, v: [Float]
        var bias: [Float]  // heads x queries x keys
        var mask: [Float]  // queries x keys
    }

    func makeCase(queries: Int, keys: Int, heads: Int, headDim: Int, seed: UInt64) -> Case {
        var rng = SplitMix64(seed: seed)
        let ld = heads * headDim + 3
        func values(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in scale * rng.uniform() } }
        var mask = [Float](repeating: 0, count: queries * keys)
        for i in 0..<queries { for j in 0..<keys where (i + 2 * j) % 5 == 0 && j != i % keys { mask[i * keys + j] = -100 } }
        return Case(queries: queries, keys: keys, heads: heads, headDim: headDim, ld: ld,
                    q: values(max(queries, keys) * ld, 1.5), k: values(keys * ld, 1.5), v: values(keys * ld, 1),
                    bias: values(heads * queries * keys, 2), mask: mask)
    }

    /// softmax(scale q k^T + bias + mask) v in Double.
    func reference(_ c: Case, head h: Int, useBias: Bool, biasPerHead: Bool, useMask: Bool, scale: Double) -> [Double] {
        var out = [Double](repeating: 0, count: c.queries * c.headDim)
        for i in 0..<c.queries {
            var s = [Double](repeating: 0, count: c.keys)
            for j in 0..<c.keys {
                var dot = 0.0
                for d in 0..<c.headDim { dot += Double(c.q[i * c.ld + h * c.headDim + d]) * Double(c.k[j * c.ld + h * c.headDim + d]) }
                s[j] = scale * dot
                if useBias { s[j] += Double(c.bias[(biasPerHead ? h : 0) * c.queries * c.keys + i * c.keys + j]) }
                if useMask { s[j] += Double(c.mask[i * c.keys + j]) }
            }
            let m = s.max()!
            let e = s.map { Foundation.exp($0 - m) }
            let z = e.reduce(0, +)
            for d in 0..<c.headDim {
                var acc = 0.0
                for j in 0..<c.keys { acc += e[j] / z * Double(c.v[j * c.ld + h * c.headDim + d]) }
                out[i * c.headDim + d] = acc
            }
        }
        return out
    }

    @Test(arguments: [(7, 7), (1, 9), (12, 5), (64, 64), (150, 97), (100, 700)])
    func multiHeadWithBiasAndMask(queries: Int, keys: Int) {
        let c = makeCase(queries: queries, keys: keys, heads: 3, headDim: 8, seed: UInt64(queries * 100 + keys))
        let scale: Float = 1 / Float(8).squareRoot()
        for (useBias, perHead, useMask) in [(false, true, false), (true, true, false), (true, false, true), (false, true, true)] {
            let ldo = c.heads * c.headDim + 1
            var out = [Float](repeating: .nan, count: queries * ldo)
            var scratch = [Float](repeating: 0, count: Attention.scratchSize(queries: queries, keys: keys, headDim: c.headDim))
            c.q.withUnsafeBufferPointer { q in c.k.withUnsafeBufferPointer { k in c.v.withUnsafeBufferPointer { v in
                c.bias.withUnsafeBufferPointer { b in c.mask.withUnsafeBufferPointer { m in
                    out.withUnsafeMutableBufferPointer { o in scratch.withUnsafeMutableBufferPointer { s in
                        Attention.multiHead(query: q.baseAddress!, ldq: c.ld, key: k.baseAddress!, ldk: c.ld,
                                            value: v.baseAddress!, ldv: c.ld, queries: queries, keys: keys,
                                            heads: c.heads, headDim: c.headDim, scale: scale,
                                            bias: useBias ? b.baseAddress! : nil, biasPerHead: perHead,
                                            mask: useMask ? m.baseAddress! : nil,
                                            into: o.baseAddress!, ldo: ldo, scratch: s.baseAddress!)
                    } }
                } }
            } } }
            var worst = 0.0
            for h in 0..<c.heads {
                let ref = reference(c, head: h, useBias: useBias, biasPerHead: perHead, useMask: useMask,
                                    scale: Double(scale))
                for i in 0..<queries { for d in 0..<c.headDim {
                    worst = max(worst, abs(Double(out[i * ldo + h * c.headDim + d]) - ref[i * c.headDim + d]))
                } }
            }
            #expect(worst <= 2e-6, "bias \(useBias) perHead \(perHead) mask \(useMask): \(worst)")
            // The padding column of each output row is left untouched.
            #expect((0..<queries).allSatisfy { out[$0 * ldo + ldo - 1].isNaN })
        }
    }
}
