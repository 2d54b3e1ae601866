import Foundation
import ModelPackage
import Numerics
import TransformerLayers
import ErrorVocabulary

/// Errors of the text tower, with stable codes.
public struct TextEncoderError: CodedError, Equatable {
    public let code: String
    public let message: String
    public init(code: String, message: String) { self.code = code; self.message = message }
    /// Internal: a broken model package or a bug, never the service client's input.
    public var kind: ErrorKind { .internal }
}

/// A transformer text tower: token ids in, one embedding out.
///
/// Serves CLAP's RoBERTa tower (transformers `ClapModel.get_text_features`: first token, pooler
/// `tanh(dense)`, `text_projection`, L2 normalisation) and BERT sentence embedders
/// (all-MiniLM-L6-v2: mean pooling, L2 normalisation, optionally a projection), both configured
/// by a `TextEncoderConfiguration`.
///
/// Each transcript is computed at its own length: no padding is ever computed, and the result
/// equals the reference's for a batch padded with an attention mask. A batch is processed as
/// one stack of rows for the products (every weight is read once per batch, not once per
/// transcript) and per transcript for attention. Each layer is cut into `threads` parts (a
/// group of heads and a block of intermediate columns each) that run concurrently; see
/// `TransformerEncoderLayer`. `embed` may be called from several threads at once.
///
/// Tensor names are transformers' `state_dict` names: `<prefix>embeddings.*`,
/// `<prefix>encoder.layer.N.*`, `<prefix>pooler.dense.*` (only with `first_pooler` pooling) and
/// `<projectionPrefix>linear1.*`, `linear2.*` (only with a projection). Defaults: `text_model.`
/// and `text_projection.`, as in `ClapModel`.
public final class TextEncoder: Sendable {
    /// How the weight products are computed (same results up to float rounding).
    public enum ProductKernel: String, Sendable {
        /// Weights repacked at load for the small-row AVX2/FMA kernel (`Linear`).
        case packed
        /// OpenBLAS `sgemm` on a plain copy of the weights. Faster than `packed` only where
        /// OpenBLAS runs AVX-512 kernels (e.g. `OPENBLAS_CORETYPE=SkylakeX` on Zen 4, whose
        /// Debian build otherwise picks its Haswell kernels); see Docs/CLAP_TEXT.md.
        case blas
    }

    public let configuration: TextEncoderConfiguration
    /// Parts each layer is cut into, run concurrently (default: the active processor count,
    /// at most the number of heads).
    public let threads: Int
    let wordEmbeddings: Parameter
    let positionEmbeddings: Parameter
    let tokenTypeEmbeddings: Parameter
    let embeddingNorm: (weight: Parameter, bias: Parameter)
    let layers: [TransformerEncoderLayer]
    let pooler: Linear?
    let projection: (linear1: Linear, linear2: Linear, activation: Linear.Epilogue)?

    /// Reads every tensor by name and shape; a missing or misshapen tensor throws the
    /// parameter source's error naming it (`missing_tensor`, `tensor_shape_mismatch`). Layer,
    /// pooler and projection matrices are copied (packed for `kernel: .packed`) and their
    /// originals released (`ParameterSource.release`); the embedding tables stay where the
    /// source keeps them (zero-copy for a float32 model package), and only the rows of tokens
    /// that occur are ever read.
    ///
    /// Sets OpenBLAS to one thread per product: the encoder parallelises itself.
    public init(configuration: TextEncoderConfiguration, parameters: ParameterSource,
                prefix: String = "text_model.", projectionPrefix: String = "text_projection.",
                threads: Int? = nil, kernel: ProductKernel = .packed) throws {
        if let problem = configuration.validationError() {
            throw TextEncoderError(code: "invalid_configuration", message: "text: \(problem)")
        }
        let c = configuration, h = c.hiddenSize
        self.configuration = c
        let threads = max(1, threads ?? CPUQuota.threads)
        self.threads = threads
        let backend: Linear.Backend = kernel == .packed ? .packed : .blas
        func p(_ name: String, _ shape: [Int]) throws -> Parameter {
            try parameters.parameter(prefix + name, shape: shape)
        }
        wordEmbeddings = try p("embeddings.word_embeddings.weight", [c.vocabSize, h])
        positionEmbeddings = try p("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, h])
        tokenTypeEmbeddings = try p("embeddings.token_type_embeddings.weight", [c.typeVocabSize, h])
        embeddingNorm = (try p("embeddings.LayerNorm.weight", [h]), try p("embeddings.LayerNorm.bias", [h]))
        layers = try (0..<c.numLayers).map {
            try TransformerEncoderLayer(parameters: parameters, prefix: "\(prefix)encoder.layer.\($0).",
                                        hidden: h, heads: c.numHeads, intermediate: c.intermediateSize,
                                        eps: Float(c.layerNormEps), parts: threads, backend: backend)
        }
        if c.pooling == .firstPooler {
            let w = try p("pooler.dense.weight", [h, h]), b = try p("pooler.dense.bias", [h])
            pooler = Linear(w, bias: b, backend: backend, precision: parameters.weightPrecision)
            parameters.release(w)
            parameters.release(b)
        } else {
            pooler = nil
        }
        if let proj = c.projection {
            func q(_ name: String, _ shape: [Int]) throws -> Parameter {
                try parameters.parameter(projectionPrefix + name, shape: shape)
            }
            let w1 = try q("linear1.weight", [proj.hiddenSize, h]), b1 = try q("linear1.bias", [proj.hiddenSize])
            let w2 = try q("linear2.weight", [proj.outputSize, proj.hiddenSize])
            let b2 = try q("linear2.bias", [proj.outputSize])
            projection = (Linear(w1, bias: b1, backend: backend, precision: parameters.weightPrecision),
                          Linear(w2, bias: b2, backend: backend, precision: parameters.weightPrecision),
                          proj.activation == .relu ? .relu : .gelu)
            for used in [w1, b1, w2, b2] { parameters.release(used) }
        } else {
            projection = nil
        }
        BLAS.setThreads(1)
    }

    /// Builds the tower from a model package's `text` section (or `section`) and its weights.
    /// Tensors the tower does not use are left for other stages; the caller refuses leftovers
    /// with `WeightStore.requireAllClaimed()` once every stage is loaded.
    public convenience init(package: ModelPackage, section: String = "text", threads: Int? = nil,
                            kernel: ProductKernel = .packed) throws {
        let configuration = try package.section(section, as: TextEncoderConfiguration.self)
        try self.init(configuration: configuration, parameters: package.weights, threads: threads, kernel: kernel)
    }

    /// Size of the output embedding.
    public var outputSize: Int { configuration.outputSize }

    /// The longest accepted token sequence.
    public var maxTokens: Int { configuration.maxTokens }

    /// The embedding of one token sequence (ids as the tokenizer gives them, special tokens
    /// included, no padding).
    public func embed(_ ids: [Int]) throws -> [Float] {
        try embed(batch: [ids])[0]
    }

    /// Embeddings of several token sequences, each computed at its own length.
    public func embed(batch: [[Int]]) throws -> [[Float]] {
        guard !batch.isEmpty else { return [] }
        let c = configuration, h = c.hiddenSize, count = batch.count
        let (sequences, hidden) = try encode(batch, firstRowsOnly: c.pooling != .mean)
        defer { hidden.deallocate() }

        // Pool: one row of H per sequence.
        let pooled = UnsafeMutablePointer<Float>.allocate(capacity: count * h)
        defer { pooled.deallocate() }
        for (b, range) in sequences.enumerated() {
            let out = pooled + b * h
            switch c.pooling {
            case .first, .firstPooler:
                out.update(from: hidden + range.lowerBound * h, count: h)
            case .mean:
                // sentence-transformers' Pooling(mean): sum of the real rows / their count.
                out.update(from: hidden + range.lowerBound * h, count: h)
                for r in (range.lowerBound + 1)..<max(range.lowerBound + 1, range.upperBound) {
                    let row = hidden + r * h
                    for j in 0..<h { out[j] += row[j] }
                }
                let n = Float(range.count)
                for j in 0..<h { out[j] /= n }
            }
        }
        var width = h
        var current = pooled
        var buffers: [UnsafeMutablePointer<Float>] = []
        defer { for b in buffers { b.deallocate() } }
        func next(_ w: Int) -> UnsafeMutablePointer<Float> {
            let b = UnsafeMutablePointer<Float>.allocate(capacity: count * w)
            buffers.append(b)
            return b
        }
        if let pooler {
            let out = next(h)
            pooler.apply(current, rows: count, into: out, epilogue: .tanh)
            current = out
        }
        if c.normalizePooled { Normalization.l2Normalize(current, rows: count, width: width) }
        if let projection, let proj = c.projection {
            let mid = next(proj.hiddenSize)
            projection.linear1.apply(current, rows: count, into: mid, epilogue: projection.activation)
            let out = next(proj.outputSize)
            projection.linear2.apply(mid, rows: count, into: out)
            current = out
            width = proj.outputSize
        }
        if c.normalize { Normalization.l2Normalize(current, rows: count, width: width) }
        return (0..<count).map { Array(UnsafeBufferPointer(start: current + $0 * width, count: width)) }
    }

    /// The last hidden states of one sequence (`ids.count x hidden_size`, row-major): the
    /// encoder output before pooling (transformers' `last_hidden_state`).
    public func hiddenStates(_ ids: [Int]) throws -> [Float] {
        let (_, hidden) = try encode([ids])
        defer { hidden.deallocate() }
        return Array(UnsafeBufferPointer(start: hidden, count: ids.count * configuration.hiddenSize))
    }

    // MARK: - Encoder

    /// Validates the ids, embeds them and runs the layers over all sequences stacked.
    /// Returns the row range of every sequence and the hidden states (caller deallocates).
    /// With `firstRowsOnly`, only each sequence's first row of the result is computed (the last
    /// layer skips the other rows' outputs); the other rows hold the previous layer's output.
    private func encode(_ batch: [[Int]], firstRowsOnly: Bool = false)
        throws -> ([Range<Int>], UnsafeMutablePointer<Float>) {
        let c = configuration, h = c.hiddenSize
        var sequences: [Range<Int>] = []
        var rows = 0
        for (b, ids) in batch.enumerated() {
            let item = batch.count > 1 ? "sequence \(b): " : ""
            guard !ids.isEmpty else {
                throw TextEncoderError(code: "empty_input", message: "\(item)no tokens")
            }
            guard ids.count <= c.maxTokens else {
                throw TextEncoderError(code: "sequence_too_long",
                                       message: "\(item)\(ids.count) tokens, at most \(c.maxTokens) fit the position table")
            }
            if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= c.vocabSize }) {
                throw TextEncoderError(code: "invalid_token_id",
                                       message: "\(item)token \(bad) has id \(ids[bad]), outside 0..<\(c.vocabSize)")
            }
            sequences.append(rows..<(rows + ids.count))
            rows += ids.count
        }

        let x = UnsafeMutablePointer<Float>.allocate(capacity: rows * h)
        for (b, ids) in batch.enumerated() {
            writeEmbeddings(ids, into: x + sequences[b].lowerBound * h)
        }
        Normalization.layerNorm(x, rows: rows, width: h, weight: embeddingNorm.weight.pointer,
                                bias: embeddingNorm.bias.pointer, eps: Float(c.layerNormEps))
        if let first = layers.first {
            let longest = sequences.map(\.count).max() ?? 0
            let stride = TransformerEncoderLayer.scratchPerPart(
                rows: rows, sequences: sequences.count, hidden: h, heads: c.numHeads,
                intermediate: c.intermediateSize, parts: first.parts.count, longest: longest)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: stride * first.parts.count)
            defer { scratch.deallocate() }
            for (l, layer) in layers.enumerated() {
                if firstRowsOnly && l == layers.count - 1 {
                    layer.forwardFirstRows(x, sequences: sequences, scratch: scratch, scratchStride: stride)
                } else {
                    layer.forward(x, sequences: sequences, scratch: scratch, scratchStride: stride)
                }
            }
        }
        return (sequences, x)
    }

    /// `word[id] + token_type[0] + position[pos]` for each token, before the LayerNorm.
    private func writeEmbeddings(_ ids: [Int], into out: UnsafeMutablePointer<Float>) {
        let c = configuration, h = c.hiddenSize
        let word = wordEmbeddings.pointer, position = positionEmbeddings.pointer
        let type0 = tokenTypeEmbeddings.pointer
        var nonPad = 0
        for (t, id) in ids.enumerated() {
            let pos: Int
            switch c.architecture {
            case .bert:
                pos = t
            case .roberta:
                // create_position_ids_from_input_ids: cumsum of non-pad tokens, pad tokens at pad.
                if id == c.padTokenId {
                    pos = c.padTokenId
                } else {
                    nonPad += 1
                    pos = c.padTokenId + nonPad
                }
            }
            let row = out + t * h, w = word + id * h, p = position + pos * h
            for j in 0..<h { row[j] = (w[j] + type0[j]) + p[j] }
        }
    }
}
