import Foundation
import Testing
@testable import Numerics
import TestSupport

/// Golden values from PyTorch (Training/fixtures/make_numerics_fixtures.py).
struct Fixture {
    let cases: [String: [String: Any]]

    init() throws {
        let url = try #require(Bundle.module.url(forResource: "numerics", withExtension: "json",
                                                 subdirectory: "Fixtures"))
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        cases = try #require(object as? [String: [String: Any]])
    }

    func floats(_ c: String, _ key: String) throws -> [Float] {
        let raw = try #require(cases[c]?[key] as? [Any], "\(c).\(key)")
        return try raw.map { v in
            if let n = v as? NSNumber { return n.floatValue }
            if let s = v as? String, s == "inf" { return .infinity }
            if let s = v as? String, s == "-inf" { return -.infinity }
            throw FixtureError.badValue("\(c).\(key)")
        }
    }

    func int(_ c: String, _ key: String) throws -> Int {
        try #require(cases[c]?[key] as? Int, "\(c).\(key)")
    }
}

enum FixtureError: Error { case badValue(String) }


@Suite struct ActivationTests {
    let f: Fixture
    init() throws { f = try Fixture() }

    @Test func elementwiseMatchesPyTorch() throws {
        let x = try f.floats("activations", "x")
        #expect(maxAbsDiff(x.map(Activation.sigmoid), try f.floats("activations", "sigmoid")) < 1e-6)
        #expect(maxAbsDiff(x.map(Activation.logSigmoid), try f.floats("activations", "logsigmoid")) < 1e-5)
        #expect(maxAbsDiff(x.map(Activation.silu), try f.floats("activations", "silu")) < 1e-5)
        #expect(maxAbsDiff(x.map(Activation.gelu), try f.floats("activations", "gelu")) < 1e-5)
    }

    @Test func softmaxAndLogSoftmaxMatchPyTorch() throws {
        let rows = try f.int("softmax", "rows"), cols = try f.int("softmax", "cols")
        let x = try f.floats("softmax", "x")
        var sm: [Float] = [], lsm: [Float] = []
        for r in 0..<rows {
            let row = Array(x[(r * cols)..<((r + 1) * cols)])
            sm += Activation.softmax(row)
            lsm += Activation.logSoftmax(row)
        }
        #expect(maxAbsDiff(sm, try f.floats("softmax", "softmax")) < 1e-6)
        #expect(maxAbsDiff(lsm, try f.floats("softmax", "log_softmax")) < 1e-5)
        let d = Activation.logSoftmax(x.prefix(cols).map(Double.init)).map(Float.init)
        #expect(maxAbsDiff(d, Array(try f.floats("softmax", "log_softmax").prefix(cols))) < 1e-5)
    }

    @Test func softmaxIsStableForHugeLogits() {
        let p = Activation.softmax([1e30, -1e30, 0])
        #expect(p == [1, 0, 0])
        #expect(Activation.logSoftmax([Float]()) == [])
    }
}

@Suite struct NormalizationTests {
    let f: Fixture
    init() throws { f = try Fixture() }

    @Test func layerNormWithBiasAndResidualWeight() throws {
        let rows = try f.int("layer_norm", "rows"), width = try f.int("layer_norm", "width")
        let w = try f.floats("layer_norm", "weight"), b = try f.floats("layer_norm", "bias")
        var x = try f.floats("layer_norm", "x")
        var y = x
        y.withUnsafeMutableBufferPointer { Normalization.layerNorm($0.baseAddress!, rows: rows, width: width, weight: w, bias: b) }
        #expect(maxAbsDiff(y, try f.floats("layer_norm", "with_bias")) < 1e-5)
        x.withUnsafeMutableBufferPointer {
            Normalization.layerNorm($0.baseAddress!, rows: rows, width: width, weight: w, bias: nil, weightOffset: 1)
        }
        #expect(maxAbsDiff(x, try f.floats("layer_norm", "residual_weight_no_bias")) < 1e-5)
    }

    @Test func multiHeadNormIsGroupNormPerHead() throws {
        let c = "multi_head_norm"
        var x = try f.floats(c, "x")
        let w = try f.floats(c, "weight")
        x.withUnsafeMutableBufferPointer {
            Normalization.multiHeadNorm($0.baseAddress!, rows: try! f.int(c, "rows"), heads: try! f.int(c, "heads"),
                                        headDim: try! f.int(c, "head_dim"), weight: w, weightOffset: 1)
        }
        #expect(maxAbsDiff(x, try f.floats(c, "output")) < 1e-5)
    }
}

@Suite struct LayerKernelTests {
    let f: Fixture
    init() throws { f = try Fixture() }

    @Test func causalDepthwiseConvolution() throws {
        let c = "causal_conv1d"
        let t = try f.int(c, "steps"), ch = try f.int(c, "channels"), k = try f.int(c, "kernel")
        let x = try f.floats(c, "x"), w = try f.floats(c, "weight"), b = try f.floats(c, "bias")
        var y = [Float](repeating: .nan, count: t * ch)
        y.withUnsafeMutableBufferPointer {
            CausalConv1D.depthwise(x, steps: t, channels: ch, weight: w, kernel: k, bias: b, into: $0.baseAddress!)
        }
        #expect(maxAbsDiff(y, try f.floats(c, "output")) < 1e-5)
    }

    @Test(arguments: ["headwise_4", "headwise_3"])
    func headwiseLinear(_ c: String) throws {
        let rows = try f.int(c, "rows"), blocks = try f.int(c, "blocks"), bs = try f.int(c, "block_size")
        let x = try f.floats(c, "x"), w = try f.floats(c, "weight")
        var y = [Float](repeating: .nan, count: rows * blocks * bs)
        y.withUnsafeMutableBufferPointer {
            HeadwiseLinear.apply(x, rows: rows, ldx: blocks * bs, weight: w, blocks: blocks, blockSize: bs,
                                 into: $0.baseAddress!, ldy: blocks * bs)
        }
        #expect(maxAbsDiff(y, try f.floats(c, "output")) < 1e-5)
    }

    @Test func linearThroughBLAS() throws {
        let c = "linear"
        let rows = try f.int(c, "rows"), n = try f.int(c, "in"), m = try f.int(c, "out")
        let x = try f.floats(c, "x"), w = try f.floats(c, "weight"), b = try f.floats(c, "bias")
        var y = [Float](repeating: .nan, count: rows * m)
        y.withUnsafeMutableBufferPointer {
            BLAS.linear(x, rows: rows, inFeatures: n, weight: w, bias: b, outFeatures: m, into: $0.baseAddress!)
        }
        #expect(maxAbsDiff(y, try f.floats(c, "output")) < 1e-4)
        // Accumulating into existing values adds the product and the bias once.
        var acc = [Float](repeating: 1, count: rows * m)
        acc.withUnsafeMutableBufferPointer {
            BLAS.linear(x, rows: rows, inFeatures: n, weight: w, bias: b, outFeatures: m,
                        into: $0.baseAddress!, accumulate: true)
        }
        #expect(maxAbsDiff(acc, try f.floats(c, "output").map { $0 + 1 }) < 1e-4)
    }

    @Test func parallelForEachVisitsEveryIndexOnce() {
        var hits = [Int](repeating: 0, count: 100)
        hits.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            Parallel.forEach(100) { p[$0] += 1 }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }
}

@Suite struct HalfPrecisionTests {
    let f: Fixture
    init() throws { f = try Fixture() }

    @Test(arguments: [("half", false), ("bfloat16", true)])
    func widensExactly(_ c: String, _ brain: Bool) throws {
        let bits = try #require(f.cases[c]?["bits"] as? [Int])
        let expected = try f.floats(c, "values")
        for (b, e) in zip(bits, expected) {
            let u = UInt16(truncatingIfNeeded: b)
            let v = brain ? HalfPrecision.float(fromBFloat16: u) : HalfPrecision.float(fromHalf: u)
            #expect(v.bitPattern == e.bitPattern || (v == 0 && e == 0 && v.sign == e.sign),
                    "bits \(u): \(v) != \(e)")
        }
        #expect(HalfPrecision.float(fromHalf: 0x7E00).isNaN)
    }
}

@Suite struct ParameterTests {
    @Test func inMemoryParametersCheckNameAndShape() throws {
        let p = InMemoryParameters()
        p.set("a.weight", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        #expect(try p.parameter("a.weight", shape: [2, 3]).values == [1, 2, 3, 4, 5, 6])
        #expect(throws: ParameterError.shapeMismatch("a.weight", expected: [3, 2], found: [2, 3])) {
            try p.parameter("a.weight", shape: [3, 2])
        }
        #expect(throws: ParameterError.missing("b")) { try p.parameter("b", shape: [1]) }
    }
}

@Suite struct VectorisedKernelTests {
    let f: Fixture
    init() throws { f = try Fixture() }

    @Test func vectorisedSiluAndSigmoidMatchPyTorch() throws {
        // Pad to exercise both the 8-lane body and the scalar tail.
        let x = try f.floats("activations", "x")
        var silu = x, sig = x
        silu.withUnsafeMutableBufferPointer { Activation.silu($0.baseAddress!, count: $0.count) }
        sig.withUnsafeMutableBufferPointer { Activation.sigmoid($0.baseAddress!, count: $0.count) }
        #expect(maxAbsDiff(silu, try f.floats("activations", "silu")) < 1e-5)
        #expect(maxAbsDiff(sig, try f.floats("activations", "sigmoid")) < 1e-6)
        // Relative accuracy where values are small.
        for (a, b) in zip(sig, try f.floats("activations", "sigmoid")) where b > 1e-30 {
            #expect(abs(a - b) / b < 1e-5)
        }
    }

    @Test func skipGateIsTheOutputGateFormula() throws {
        let x = try f.floats("activations", "x")
        let n = 203
        let h = Array(x.prefix(n)), c = Array(x.suffix(n)), z = Array(x.reversed().prefix(n))
        let skip = (0..<n).map { Float($0 % 7) * 0.3 - 1 }
        var out = h
        out.withUnsafeMutableBufferPointer {
            Activation.skipGate($0.baseAddress!, skip: skip, conv: c, z: z, count: n)
        }
        let expected = (0..<n).map { (h[$0] + skip[$0] * c[$0]) * Activation.silu(z[$0]) }
        #expect(maxAbsDiff(out, expected) < 1e-4)
    }

    @Test func everyKernelLevelMatchesPyTorchLinear() throws {
        let c = "linear"
        let rows = try f.int(c, "rows"), n = try f.int(c, "in"), m = try f.int(c, "out")
        let packed = Linear(Parameter(name: "w", shape: [m, n], values: try f.floats(c, "weight")))
        let x = try f.floats(c, "x"), b = try f.floats(c, "bias"), expected = try f.floats(c, "output")
        let best = KernelPath.level
        defer { KernelPath.limitLevel(nil) }
        for level in 0...best {
            #expect(KernelPath.limitLevel(level) == level)
            // Row counts around the tile sizes (6 for AVX2, up to 12 for AVX-512).
            for r in [1, 5, 6, 7] where r <= rows {
                var y = [Float](repeating: .nan, count: r * m)
                y.withUnsafeMutableBufferPointer { packed.apply(x, rows: r, bias: b, into: $0.baseAddress!) }
                #expect(maxAbsDiff(y, Array(expected.prefix(r * m))) < 1e-4, "level \(level), rows \(r)")
            }
        }
    }

    @Test func packedMatrixMatchesPyTorchLinear() throws {
        let c = "linear"
        let rows = try f.int(c, "rows"), n = try f.int(c, "in"), m = try f.int(c, "out")
        let w = Parameter(name: "w", shape: [m, n], values: try f.floats(c, "weight"))
        let b = try f.floats(c, "bias")
        let packed = Linear(w)
        let x = try f.floats(c, "x")
        var y = [Float](repeating: .nan, count: rows * m)
        y.withUnsafeMutableBufferPointer { packed.apply(x, rows: rows, bias: b, into: $0.baseAddress!) }
        #expect(maxAbsDiff(y, try f.floats(c, "output")) < 1e-4)
        // Strided output, accumulation, and a row count that is not a multiple of the tile.
        var wide = [Float](repeating: 2, count: rows * (m + 5))
        wide.withUnsafeMutableBufferPointer {
            packed.apply(x, rows: rows, bias: b, into: $0.baseAddress!, ldy: m + 5, accumulate: true)
        }
        let expected = try f.floats(c, "output")
        for r in 0..<rows {
            for j in 0..<m { #expect(abs(wide[r * (m + 5) + j] - (expected[r * m + j] + 2)) < 1e-4) }
            for j in m..<(m + 5) { #expect(wide[r * (m + 5) + j] == 2) }
        }
    }

    @Test func stackedPackedMatricesEqualSeparateOnes() throws {
        let c = "linear"
        let rows = try f.int(c, "rows"), n = try f.int(c, "in"), m = try f.int(c, "out")
        let wv = try f.floats(c, "weight")
        let top = Parameter(name: "a", shape: [7, n], values: Array(wv.prefix(7 * n)))
        let bottom = Parameter(name: "b", shape: [m - 7, n], values: Array(wv.dropFirst(7 * n)))
        let x = try f.floats(c, "x")
        var joined = [Float](repeating: 0, count: rows * m), whole = joined
        joined.withUnsafeMutableBufferPointer { Linear(stacking: [top, bottom]).apply(x, rows: rows, into: $0.baseAddress!) }
        whole.withUnsafeMutableBufferPointer {
            Linear(Parameter(name: "w", shape: [m, n], values: wv)).apply(x, rows: rows, into: $0.baseAddress!)
        }
        #expect(joined == whole)
    }
}
