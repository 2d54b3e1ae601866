import Foundation
import Numerics

/// One transformer encoder layer, in either of two arrangements (``Arrangement``):
///
/// post-LN, as BERT/RoBERTa (`BertLayer`, `ClapTextLayer`):
///
///     a = LayerNorm(x + dense(attention(x)))
///     y = LayerNorm(a + output(gelu(intermediate(a))))
///
/// pre-LN, as Whisper's encoder (`WhisperEncoderLayer`; no key bias):
///
///     a = x + out_proj(attention(LayerNorm(x)))
///     y = a + fc2(gelu(fc1(LayerNorm(a))))
///
/// Parameters by their transformers names under `prefix` (``TensorNames``): for BERT
/// (`...encoder.layer.N.`) `attention.self.{query,key,value}.{weight,bias}`,
/// `attention.output.dense.*`, `attention.output.LayerNorm.*`, `intermediate.dense.*`,
/// `output.dense.*`, `output.LayerNorm.*`; for Whisper (`...layers.N.`) `self_attn.{q,k,v}_proj.*`,
/// `self_attn.out_proj.*`, `self_attn_layer_norm.*`, `fc1.*`, `fc2.*`, `final_layer_norm.*`.
///
/// Rows of several sequences are processed together (their products are row-independent), and
/// attention is computed within each sequence only, at its own length: padding is never computed.
///
/// Parallel plan: the layer is cut into `parts` slices that run concurrently with no barrier
/// inside a half-layer. Part p owns a group of heads and a block of intermediate columns:
/// 1. its q/k/v columns (one packed product), attention for its heads over every sequence, and
///    its share of the attention output product (`context[:, heads_p] * Wo[:, heads_p]^T`, a
///    split of the inner dimension);
/// 2. its intermediate columns with GELU, and its share of the output product
///    (`inter[:, block_p] * Wout[:, block_p]^T`).
/// The partial sums are added (with the bias and the residual) before each LayerNorm. So a
/// layer costs two parallel regions, each core reads only its slices of the weights, and the
/// q/k/v values it produces are consumed by the same core.
///
/// The text tower (TextTower) and the Whisper encoder (AudioTowers) are built of these layers;
/// `package` access: shared by this package's modules, not a public API.
package struct TransformerEncoderLayer: Sendable {
    /// Where the layer norms sit.
    package enum Arrangement: Sendable {
        /// After each residual sum (BERT).
        case postNorm
        /// Before each sub-block, on its input (Whisper); the residual stream is never normalised.
        case preNorm
    }

    /// The layer's tensor names (relative to its prefix); `keyBias` nil for a key projection without bias.
    package struct TensorNames: Sendable {
        var query, queryBias, key: String
        var keyBias: String?
        var value, valueBias, attentionOutput, attentionOutputBias: String
        var attentionNorm, attentionNormBias: String
        var intermediate, intermediateBias, output, outputBias: String
        var outputNorm, outputNormBias: String

        /// BERT/RoBERTa (`BertLayer`).
        package static let bert = TensorNames(
            query: "attention.self.query.weight", queryBias: "attention.self.query.bias",
            key: "attention.self.key.weight", keyBias: "attention.self.key.bias",
            value: "attention.self.value.weight", valueBias: "attention.self.value.bias",
            attentionOutput: "attention.output.dense.weight", attentionOutputBias: "attention.output.dense.bias",
            attentionNorm: "attention.output.LayerNorm.weight", attentionNormBias: "attention.output.LayerNorm.bias",
            intermediate: "intermediate.dense.weight", intermediateBias: "intermediate.dense.bias",
            output: "output.dense.weight", outputBias: "output.dense.bias",
            outputNorm: "output.LayerNorm.weight", outputNormBias: "output.LayerNorm.bias")

        /// Whisper's encoder (`WhisperEncoderLayer`): the key projection has no bias.
        package static let whisper = TensorNames(
            query: "self_attn.q_proj.weight", queryBias: "self_attn.q_proj.bias",
            key: "self_attn.k_proj.weight", keyBias: nil,
            value: "self_attn.v_proj.weight", valueBias: "self_attn.v_proj.bias",
            attentionOutput: "self_attn.out_proj.weight", attentionOutputBias: "self_attn.out_proj.bias",
            attentionNorm: "self_attn_layer_norm.weight", attentionNormBias: "self_attn_layer_norm.bias",
            intermediate: "fc1.weight", intermediateBias: "fc1.bias",
            output: "fc2.weight", outputBias: "fc2.bias",
            outputNorm: "final_layer_norm.weight", outputNormBias: "final_layer_norm.bias")
    }

    package struct Part: Sendable {
        let heads: Range<Int>
        let columns: Range<Int>        // intermediate columns
        let query: Linear        // [|heads| * dh, H]: q rows of these heads
        let keyValue: Linear     // [2 * |heads| * dh, H]: k then v rows of these heads
        let attentionOutput: Linear  // [H, |heads| * dh], no bias
        let intermediate: Linear     // [|columns|, H] with its bias slice
        let output: Linear           // [H, |columns|], no bias
    }

    let arrangement: Arrangement
    let hidden: Int
    let heads: Int
    let intermediateSize: Int
    let eps: Float
    package let parts: [Part]
    let attentionOutputBias: FloatStorage
    let outputBias: FloatStorage
    let attentionNorm: (weight: Parameter, bias: Parameter)
    let outputNorm: (weight: Parameter, bias: Parameter)

    package init(parameters: ParameterSource, prefix: String, hidden h: Int, heads: Int, intermediate i: Int,
                 eps: Float, parts requested: Int, backend: Linear.Backend,
                 arrangement: Arrangement = .postNorm, names: TensorNames = .bert) throws {
        func p(_ name: String, _ shape: [Int]) throws -> Parameter {
            try parameters.parameter(prefix + name, shape: shape)
        }
        self.arrangement = arrangement
        hidden = h
        self.heads = heads
        intermediateSize = i
        self.eps = eps
        let q = try p(names.query, [h, h]), qb = try p(names.queryBias, [h])
        let k = try p(names.key, [h, h])
        let kb = try names.keyBias.map { try p($0, [h]) } ?? Parameter(name: prefix + "(no key bias)", shape: [h], values: [Float](repeating: 0, count: h))
        let v = try p(names.value, [h, h]), vb = try p(names.valueBias, [h])
        let ao = try p(names.attentionOutput, [h, h]), aob = try p(names.attentionOutputBias, [h])
        attentionNorm = (try p(names.attentionNorm, [h]), try p(names.attentionNormBias, [h]))
        let up = try p(names.intermediate, [i, h]), upb = try p(names.intermediateBias, [i])
        let down = try p(names.output, [h, i]), downb = try p(names.outputBias, [h])
        outputNorm = (try p(names.outputNorm, [h]), try p(names.outputNormBias, [h]))

        let dh = h / heads
        let precision = parameters.weightPrecision
        let count = max(1, min(requested, heads))
        let blocks = (i + 15) / 16
        parts = (0..<count).map { part in
            let hr = (part * heads / count)..<((part + 1) * heads / count)
            let cr = min(i, part * blocks / count * 16)..<min(i, (part + 1) * blocks / count * 16)
            let width = hr.count * dh, first = hr.lowerBound * dh
            // k and v rows of these heads stacked (one product), with their biases.
            let stacked = FloatStorage(count: 2 * width * h)
            let stackedBias = FloatStorage(count: 2 * width)
            for (j, (w, b)) in [(k, kb), (v, vb)].enumerated() {
                (stacked.pointer + j * width * h).update(from: w.pointer + first * h, count: width * h)
                (stackedBias.pointer + j * width).update(from: b.pointer + first, count: width)
            }
            return Part(
                heads: hr, columns: cr,
                query: Linear(weight: q.pointer + first * h, outFeatures: width, inFeatures: h,
                                    bias: qb.pointer + first, backend: backend, precision: precision),
                keyValue: Linear(weight: stacked.pointer, outFeatures: 2 * width, inFeatures: h,
                                       bias: stackedBias.pointer, backend: backend, precision: precision),
                attentionOutput: Linear(weight: ao.pointer + first, outFeatures: h, inFeatures: width, ldw: h,
                                              bias: nil, backend: backend, precision: precision),
                intermediate: Linear(weight: up.pointer + cr.lowerBound * h, outFeatures: cr.count,
                                           inFeatures: h, bias: upb.pointer + cr.lowerBound, backend: backend, precision: precision),
                output: Linear(weight: down.pointer + cr.lowerBound, outFeatures: h, inFeatures: cr.count,
                                     ldw: i, bias: nil, backend: backend, precision: precision))
        }
        attentionOutputBias = FloatStorage(aob.values)
        outputBias = FloatStorage(downb.values)
        // Every large tensor now lives in the parts' copies: the originals can go.
        for used in [q, k, v, ao, up, down, qb, vb, aob, upb, downb] { parameters.release(used) }
        if names.keyBias != nil { parameters.release(kb) }
    }

    /// Scratch floats each part needs for `rows` rows whose longest sequence has `longest` rows.
    package static func scratchPerPart(rows: Int, sequences: Int, hidden h: Int, heads: Int, intermediate i: Int,
                                       parts: Int, longest: Int) -> Int {
        let count = max(1, min(parts, heads))
        let maxHeads = (heads + count - 1) / count
        let width = maxHeads * (h / heads)
        let maxColumns = ((i + 15) / 16 + count - 1) / count * 16
        // qkv (3w) + context (w) + partial (h) per row, then the intermediate block, which the
        // attention scores reuse.
        // The first-rows-only pass adds its queries (one row of w per sequence) at the end.
        return rows * (4 * width + h) + max(rows * maxColumns, Attention.scratchSize(queries: longest, keys: longest, headDim: h / heads))
            + sequences * width
    }

    /// `x <- layer(x)` in place for the rows of `sequences` (row ranges of `x`, `hidden` wide).
    /// `scratch` holds `parts.count` blocks of `scratchStride` floats.
    package func forward(_ x: UnsafeMutablePointer<Float>, sequences: [Range<Int>],
                         scratch: UnsafeMutablePointer<Float>, scratchStride: Int) {
        let h = hidden, dh = hidden / heads, rows = sequences.last?.upperBound ?? 0
        guard rows > 0 else { return }
        let parts = self.parts
        let single = parts.count == 1
        let scale = 1 / Float(dh).squareRoot()
        // Pre-LN: the sub-block reads a normalised copy, the residual stream stays in x.
        let normed: UnsafeMutablePointer<Float>? = arrangement == .preNorm ? .allocate(capacity: rows * h) : nil
        defer { normed?.deallocate() }
        if let normed {
            byRows(rows) { r in norm(x, attentionNorm, rows: r, into: normed) }
        }
        let input = UnsafePointer(normed ?? x)

        // 1. q/k/v, attention and the attention output product, per part.
        Parallel.forEach(parts.count) { index in
            let part = parts[index]
            let width = part.heads.count * dh
            let base = scratch + index * scratchStride
            let qkv = base, context = qkv + rows * 3 * width, partial = context + rows * width
            let attention = partial + rows * h  // the intermediate area, unused until step 2
            part.query.apply(input, rows: rows, into: qkv, ldy: 3 * width)
            part.keyValue.apply(input, rows: rows, into: qkv + width, ldy: 3 * width)
            for range in sequences {
                for head in 0..<part.heads.count {
                    let q = qkv + range.lowerBound * 3 * width + head * dh
                    Attention.head(query: q, ldq: 3 * width, key: q + width, ldk: 3 * width,
                                   value: q + 2 * width, ldv: 3 * width,
                                   queries: range.count, keys: range.count, headDim: dh, scale: scale,
                                   into: context + range.lowerBound * width + head * dh, ldo: width,
                                   scratch: attention)
                }
            }
            // With one part x is no longer read: accumulate straight into the residual stream.
            part.attentionOutput.apply(context, rows: rows, into: single ? x : partial, accumulate: single)
        }
        // 2. Intermediate columns + GELU and the output product, per part (pre-LN: the sum and
        // the norm of its rows too, split over the parts).
        byRows(rows) { r in
            reduce(into: x, rows: r, bias: attentionOutputBias.pointer, partials: single ? 0 : parts.count,
                   scratch: scratch, scratchStride: scratchStride,
                   partialOffset: { rows * 4 * (parts[$0].heads.count * dh) })
            if let normed { norm(x, outputNorm, rows: r, into: normed) }
        }
        if let normed {
            feedForward(from: normed, into: x, rows: rows, layoutRows: rows, inPlace: single,
                        scratch: scratch, scratchStride: scratchStride)
        } else {
            normAndFeedForward(x, rows: rows, layoutRows: rows, inPlace: single, scratch: scratch,
                               scratchStride: scratchStride)
        }
    }

    /// The second half of a layer on `rows` rows of `y`: attention LayerNorm, then per part its
    /// intermediate columns + GELU and its share of the output product (accumulated straight into
    /// `y` when `inPlace`, i.e. one part; else as partial sums), the sum, and the output
    /// LayerNorm. Part scratch is laid out for `layoutRows` rows.
    private func normAndFeedForward(_ y: UnsafeMutablePointer<Float>, rows: Int, layoutRows: Int, inPlace: Bool,
                                    scratch: UnsafeMutablePointer<Float>, scratchStride: Int) {
        let h = hidden
        Normalization.layerNorm(y, rows: rows, width: h, weight: attentionNorm.weight.pointer,
                                bias: attentionNorm.bias.pointer, eps: eps)
        feedForward(from: y, into: y, rows: rows, layoutRows: layoutRows, inPlace: inPlace, scratch: scratch,
                    scratchStride: scratchStride)
        Normalization.layerNorm(y, rows: rows, width: h, weight: outputNorm.weight.pointer,
                                bias: outputNorm.bias.pointer, eps: eps)
    }

    /// `y += output(gelu(intermediate(source))) + bias` on `rows` rows, per part (accumulated
    /// straight into `y` when `inPlace`, else as partial sums reduced afterwards). `source` may be `y`.
    private func feedForward(from source: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int,
                             layoutRows: Int, inPlace: Bool, scratch: UnsafeMutablePointer<Float>, scratchStride: Int) {
        let h = hidden, dh = hidden / heads
        Parallel.forEach(parts.count) { index in
            let part = parts[index]
            let width = part.heads.count * dh
            let base = scratch + index * scratchStride
            let partial = base + layoutRows * 4 * width, inter = partial + layoutRows * h
            part.intermediate.apply(source, rows: rows, into: inter, epilogue: .gelu)
            part.output.apply(inter, rows: rows, into: inPlace ? y : partial, accumulate: inPlace)
        }
        byRows(rows) { r in
            reduce(into: y, rows: r, bias: outputBias.pointer, partials: inPlace ? 0 : parts.count,
                   scratch: scratch, scratchStride: scratchStride,
                   partialOffset: { layoutRows * 4 * (parts[$0].heads.count * dh) })
        }
    }

    /// The layer for the first row of each sequence only: what first-token pooling reads from
    /// the last layer. Keys and values still come from every row, but queries, the attention
    /// output, the feed-forward block and the norms run on one row per sequence, so the result
    /// for those rows equals `forward`'s (about 80% of the last layer's work is skipped).
    /// On return the first row of each sequence in `x` holds the layer output; other rows are
    /// left as they were.
    /// Post-LN layers only.
    package func forwardFirstRows(_ x: UnsafeMutablePointer<Float>, sequences: [Range<Int>],
                                  scratch: UnsafeMutablePointer<Float>, scratchStride: Int) {
        precondition(arrangement == .postNorm, "forwardFirstRows serves post-LN layers")
        let h = hidden, dh = hidden / heads, rows = sequences.last?.upperBound ?? 0
        let count = sequences.count
        guard rows > 0 else { return }
        let parts = self.parts
        let scale = 1 / Float(dh).squareRoot()
        // The first rows, gathered.
        let first = UnsafeMutablePointer<Float>.allocate(capacity: count * h)
        defer { first.deallocate() }
        for (b, range) in sequences.enumerated() { (first + b * h).update(from: x + range.lowerBound * h, count: h) }
        let maxColumns = parts.map(\.columns.count).max() ?? 0
        let longest = sequences.map(\.count).max() ?? 0
        let queriesOffset = rows * (4 * parts.map { $0.heads.count * dh }.max()! + h)
            + max(rows * maxColumns, Attention.scratchSize(queries: longest, keys: longest, headDim: h / heads))

        Parallel.forEach(parts.count) { index in
            let part = parts[index]
            let width = part.heads.count * dh
            let base = scratch + index * scratchStride
            let kv = base, context = kv + rows * 3 * width, partial = context + rows * width
            let attention = partial + rows * h
            let queries = base + queriesOffset
            part.keyValue.apply(x, rows: rows, into: kv, ldy: 2 * width)
            part.query.apply(first, rows: count, into: queries)
            for (b, range) in sequences.enumerated() {
                for head in 0..<part.heads.count {
                    let k = kv + range.lowerBound * 2 * width + head * dh
                    Attention.head(query: queries + b * width + head * dh, ldq: width, key: k, ldk: 2 * width,
                                   value: k + width, ldv: 2 * width,
                                   queries: 1, keys: range.count, headDim: dh, scale: scale,
                                   into: context + b * width + head * dh, ldo: width, scratch: attention)
                }
            }
            part.attentionOutput.apply(context, rows: count, into: partial)
        }
        reduce(into: first, rows: 0..<count, bias: attentionOutputBias.pointer, partials: parts.count,
               scratch: scratch, scratchStride: scratchStride,
               partialOffset: { rows * 4 * (parts[$0].heads.count * dh) })
        normAndFeedForward(first, rows: count, layoutRows: rows, inPlace: false, scratch: scratch,
                           scratchStride: scratchStride)
        for (b, range) in sequences.enumerated() { (x + range.lowerBound * h).update(from: first + b * h, count: h) }
    }

    /// Calls `body` with row ranges covering `0 ..< rows`: one per part, concurrently, from 64
    /// rows (the serial sums and norms between the parallel regions of an encoder's hundreds of
    /// tokens); one range, on this thread, below.
    private func byRows(_ rows: Int, _ body: (Range<Int>) -> Void) {
        let count = rows >= 64 ? parts.count : 1
        Parallel.forEach(count) { i in body((i * rows / count)..<((i + 1) * rows / count)) }
    }

    /// Pre-LN: `normed[r] = LayerNorm(x[r])` for the rows `rows` (float32 partial sums, vectorised).
    private func norm(_ x: UnsafePointer<Float>, _ norm: (weight: Parameter, bias: Parameter), rows: Range<Int>,
                      into normed: UnsafeMutablePointer<Float>) {
        let h = hidden
        Normalization.layerNorm(x + rows.lowerBound * h, ldx: h, rows: rows.count, width: h,
                                 weight: norm.weight.pointer, bias: norm.bias.pointer, eps: eps,
                                 into: normed + rows.lowerBound * h, ldy: h)
    }

    /// `x += bias + sum of the parts' partial products` for the rows `rows` (the partials sit at
    /// `partialOffset(p)` in part p's scratch, `hidden` values per row).
    private func reduce(into x: UnsafeMutablePointer<Float>, rows: Range<Int>, bias: UnsafePointer<Float>, partials: Int,
                        scratch: UnsafeMutablePointer<Float>, scratchStride: Int,
                        partialOffset: (Int) -> Int) {
        let h = hidden
        let sources = (0..<partials).map { UnsafePointer(scratch + $0 * scratchStride + partialOffset($0)) }
        for r in rows {
            let row = x + r * h
            switch sources.count {
            case 0:
                for j in 0..<h { row[j] += bias[j] }
            case 2:
                let a = sources[0] + r * h, b = sources[1] + r * h
                for j in 0..<h { row[j] += (a[j] + b[j]) + bias[j] }
            default:
                for j in 0..<h {
                    var s: Float = 0
                    for src in sources { s += src[r * h + j] }
                    row[j] += s + bias[j]
                }
            }
        }
    }
}
