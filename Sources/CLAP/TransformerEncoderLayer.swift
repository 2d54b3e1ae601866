import Foundation
import Numerics

/// One post-LN transformer encoder layer as BERT/RoBERTa (`BertLayer`, `ClapTextLayer`):
///
///     a = LayerNorm(x + dense(attention(x)))
///     y = LayerNorm(a + output(gelu(intermediate(a))))
///
/// Parameters by their transformers names under `prefix` (`...encoder.layer.N.`):
/// `attention.self.{query,key,value}.{weight,bias}`, `attention.output.dense.*`,
/// `attention.output.LayerNorm.*`, `intermediate.dense.*`, `output.dense.*`, `output.LayerNorm.*`.
///
/// Rows of several sequences are processed together (their products are row-independent), and
/// attention is computed within each sequence only, at its own length: padding is never computed.
struct TransformerEncoderLayer: Sendable {
    let hidden: Int
    let heads: Int
    let intermediateSize: Int
    let eps: Float
    let qkv: PackedLinear            // [3H, H]: query, key, value stacked
    let attentionOutput: PackedLinear
    let attentionNorm: (weight: Parameter, bias: Parameter)
    let intermediate: PackedLinear
    let output: PackedLinear
    let outputNorm: (weight: Parameter, bias: Parameter)

    init(parameters: ParameterSource, prefix: String, hidden h: Int, heads: Int, intermediate i: Int,
         eps: Float, parts: Int) throws {
        func p(_ name: String, _ shape: [Int]) throws -> Parameter {
            try parameters.parameter(prefix + name, shape: shape)
        }
        hidden = h
        self.heads = heads
        intermediateSize = i
        self.eps = eps
        let q = try p("attention.self.query.weight", [h, h]), qb = try p("attention.self.query.bias", [h])
        let k = try p("attention.self.key.weight", [h, h]), kb = try p("attention.self.key.bias", [h])
        let v = try p("attention.self.value.weight", [h, h]), vb = try p("attention.self.value.bias", [h])
        let ao = try p("attention.output.dense.weight", [h, h]), aob = try p("attention.output.dense.bias", [h])
        attentionNorm = (try p("attention.output.LayerNorm.weight", [h]), try p("attention.output.LayerNorm.bias", [h]))
        let up = try p("intermediate.dense.weight", [i, h]), upb = try p("intermediate.dense.bias", [i])
        let down = try p("output.dense.weight", [h, i]), downb = try p("output.dense.bias", [h])
        outputNorm = (try p("output.LayerNorm.weight", [h]), try p("output.LayerNorm.bias", [h]))

        qkv = PackedLinear(weights: [q, k, v], biases: [qb, kb, vb], parts: parts)
        attentionOutput = PackedLinear(weights: [ao], biases: [aob], parts: parts)
        intermediate = PackedLinear(weights: [up], biases: [upb], parts: parts)
        output = PackedLinear(weights: [down], biases: [downb], parts: parts)
        // Biases were copied too; every tensor of the layer now lives in the packed copies or
        // stays small (LayerNorm), so the large originals can go.
        for used in [q, k, v, ao, up, down, qb, kb, vb, aob, upb, downb] { parameters.release(used) }
    }

    /// `x <- layer(x)` in place for the rows of `sequences` (row ranges of `x`, `hidden` wide).
    func forward(_ x: UnsafeMutablePointer<Float>, sequences: [Range<Int>], workspace ws: TransformerWorkspace,
                 threads: Int) {
        let h = hidden, rows = sequences.last?.upperBound ?? 0
        guard rows > 0 else { return }

        // Fused q | k | v projection: rows of 3H.
        qkv.apply(x, rows: rows, into: ws.qkv)

        // Attention within each sequence, heads side by side in ws.context.
        attention(sequences: sequences, workspace: ws, threads: threads)

        // a = LayerNorm(x + dense(context)): the product accumulates into the residual stream.
        attentionOutput.apply(ws.context, rows: rows, into: x, accumulate: true)
        Normalization.layerNorm(x, rows: rows, width: h, weight: attentionNorm.weight.pointer,
                                bias: attentionNorm.bias.pointer, eps: eps)

        // y = LayerNorm(a + output(gelu(intermediate(a)))).
        intermediate.apply(x, rows: rows, into: ws.intermediate, epilogue: .gelu)
        output.apply(ws.intermediate, rows: rows, into: x, accumulate: true)
        Normalization.layerNorm(x, rows: rows, width: h, weight: outputNorm.weight.pointer,
                                bias: outputNorm.bias.pointer, eps: eps)
    }

    /// Scaled dot-product attention per (sequence, head), split over `threads` workers.
    private func attention(sequences: [Range<Int>], workspace ws: TransformerWorkspace, threads: Int) {
        let h = hidden, dh = h / heads, ld = 3 * h
        let scale = 1 / Float(dh).squareRoot()
        let items = sequences.count * heads
        let workers = max(1, min(threads, items))
        let qkv = ws.qkv, context = ws.context
        let scratchStride = ws.attentionScratchStride
        Parallel.forEach(workers) { w in
            let scratch = ws.attentionScratch + w * scratchStride
            var item = w
            while item < items {
                let range = sequences[item / heads], head = item % heads
                let base = qkv + range.lowerBound * ld + head * dh
                Attention.head(query: base, ldq: ld, key: base + h, ldk: ld, value: base + 2 * h, ldv: ld,
                               queries: range.count, keys: range.count, headDim: dh, scale: scale,
                               into: context + range.lowerBound * h + head * dh, ldo: h, scratch: scratch)
                item += workers
            }
        }
    }
}

/// Scratch memory for one forward pass of the text tower (one per concurrent call).
final class TransformerWorkspace: @unchecked Sendable {
    let storage: UnsafeMutablePointer<Float>
    let qkv: UnsafeMutablePointer<Float>           // rows x 3H
    let context: UnsafeMutablePointer<Float>       // rows x H
    let intermediate: UnsafeMutablePointer<Float>  // rows x I
    let attentionScratch: UnsafeMutablePointer<Float>
    let attentionScratchStride: Int

    init(rows: Int, hidden: Int, intermediate i: Int, longest: Int, workers: Int) {
        attentionScratchStride = Attention.scratchSize(queries: longest, keys: longest)
        let sizes = [rows * 3 * hidden, rows * hidden, rows * i, max(1, workers) * attentionScratchStride]
        let total = sizes.reduce(0, +)
        storage = .allocate(capacity: max(total, 1))
        storage.initialize(repeating: 0, count: max(total, 1))
        qkv = storage
        context = qkv + sizes[0]
        intermediate = context + sizes[1]
        attentionScratch = intermediate + sizes[2]
    }

    deinit { storage.deallocate() }
}
