/// The text tower's sizes and pooling: the `text` section of `model.json` (every key except
/// `tokenizer`, which ``loadTokenizer(package:section:)`` reads, and which is ignored here).
///
/// Two architectures share one encoder (embeddings + post-LN BERT layers with exact GELU):
/// - `roberta`: CLAP's text tower (transformers `ClapTextModel` = `RobertaModel`): position ids
///   start at `pad_token_id + 1` and count only non-pad tokens, as `create_position_ids_from_input_ids`.
/// - `bert`: `BertModel` (e.g. all-MiniLM-L6-v2): position ids `0, 1, 2, ...`.
///
/// Token type ids are always 0 (single-sentence input), as both references default to.
public struct TextEncoderConfiguration: Codable, Sendable, Equatable {
    public enum Architecture: String, Codable, Sendable {
        case roberta, bert
    }

    /// How the sequence becomes one vector.
    public enum Pooling: String, Codable, Sendable {
        /// The first token's last hidden state.
        case first
        /// The first token through the pooler `tanh(dense(h_0))` (`pooler_output`; CLAP).
        case firstPooler = "first_pooler"
        /// The mean of all tokens' last hidden states (sentence-transformers `Pooling` mean).
        case mean
    }

    /// An MLP on the pooled vector: `linear2(activation(linear1(x)))`, as `ClapProjectionLayer`
    /// (tensors `<projection prefix>linear1.*`, `linear2.*`).
    public struct Projection: Codable, Sendable, Equatable {
        public enum Activation: String, Codable, Sendable { case relu, gelu }
        /// Output size of `linear1`.
        public var hiddenSize: Int
        /// Output size of `linear2` (the embedding size).
        public var outputSize: Int
        public var activation: Activation

        public init(hiddenSize: Int, outputSize: Int, activation: Activation = .relu) {
            self.hiddenSize = hiddenSize
            self.outputSize = outputSize
            self.activation = activation
        }

        enum CodingKeys: String, CodingKey {
            case hiddenSize = "hidden_size", outputSize = "output_size", activation
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
            outputSize = try c.decode(Int.self, forKey: .outputSize)
            activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? .relu
        }
    }

    public var architecture: Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Double
    /// The padding token (RoBERTa's position ids depend on it; never fed by this encoder's callers).
    public var padTokenId: Int
    /// Only `gelu` (exact, erf) is supported.
    public var hiddenAct: String
    public var pooling: Pooling
    /// L2-normalise the pooled vector before the projection (sentence-transformers' `Normalize`).
    public var normalizePooled: Bool
    /// L2-normalise the output (`F.normalize`, eps 1e-12).
    public var normalize: Bool
    public var projection: Projection?

    public init(architecture: Architecture, vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int,
                intermediateSize: Int, maxPositionEmbeddings: Int, typeVocabSize: Int, layerNormEps: Double,
                padTokenId: Int, hiddenAct: String = "gelu", pooling: Pooling, normalizePooled: Bool = false,
                normalize: Bool = true, projection: Projection?) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.padTokenId = padTokenId
        self.hiddenAct = hiddenAct
        self.pooling = pooling
        self.normalizePooled = normalizePooled
        self.normalize = normalize
        self.projection = projection
    }

    /// CLAP's text tower (LAION `clap-htsat-unfused`, 630k-audioset-best): RoBERTa-base, pooled
    /// first token through the pooler, projection 768 -> 512 -> 512 (ReLU), L2-normalised.
    /// `layer_norm_eps` is RoBERTa-base's 1e-5, what laion_clap runs (transformers'
    /// `ClapTextConfig` defaults to 1e-12; a converted transformers checkpoint keeps its own).
    public static let clapRobertaBase = TextEncoderConfiguration(
        architecture: .roberta, vocabSize: 50265, hiddenSize: 768, numLayers: 12, numHeads: 12,
        intermediateSize: 3072, maxPositionEmbeddings: 514, typeVocabSize: 1, layerNormEps: 1e-5,
        padTokenId: 1, pooling: .firstPooler, normalize: true,
        projection: Projection(hiddenSize: 512, outputSize: 512))

    /// sentence-transformers all-MiniLM-L6-v2: BERT, 6 layers, width 384, mean pooling,
    /// L2-normalised, no projection (384-d output).
    public static let allMiniLML6V2 = TextEncoderConfiguration(
        architecture: .bert, vocabSize: 30522, hiddenSize: 384, numLayers: 6, numHeads: 12,
        intermediateSize: 1536, maxPositionEmbeddings: 512, typeVocabSize: 2, layerNormEps: 1e-12,
        padTokenId: 0, pooling: .mean, normalize: true, projection: nil)

    enum CodingKeys: String, CodingKey {
        case architecture
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case numLayers = "num_layers"
        case numHeads = "num_heads"
        case intermediateSize = "intermediate_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps"
        case padTokenId = "pad_token_id"
        case hiddenAct = "hidden_act"
        case pooling
        case normalizePooled = "normalize_pooled"
        case normalize
        case projection
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        architecture = try c.decode(Architecture.self, forKey: .architecture)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        numLayers = try c.decode(Int.self, forKey: .numLayers)
        numHeads = try c.decode(Int.self, forKey: .numHeads)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        maxPositionEmbeddings = try c.decode(Int.self, forKey: .maxPositionEmbeddings)
        typeVocabSize = try c.decode(Int.self, forKey: .typeVocabSize)
        layerNormEps = try c.decode(Double.self, forKey: .layerNormEps)
        switch architecture {
        case .roberta: padTokenId = try c.decode(Int.self, forKey: .padTokenId)
        case .bert: padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? 0
        }
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu"
        pooling = try c.decode(Pooling.self, forKey: .pooling)
        normalizePooled = try c.decodeIfPresent(Bool.self, forKey: .normalizePooled) ?? false
        normalize = try c.decodeIfPresent(Bool.self, forKey: .normalize) ?? true
        projection = try c.decodeIfPresent(Projection.self, forKey: .projection)
    }

    /// The longest token sequence the position table allows: RoBERTa's positions run from
    /// `pad_token_id + 1`, BERT's from 0.
    public var maxTokens: Int {
        switch architecture {
        case .roberta: return max(0, maxPositionEmbeddings - padTokenId - 1)
        case .bert: return maxPositionEmbeddings
        }
    }

    public var headDim: Int { numHeads > 0 ? hiddenSize / numHeads : 0 }

    /// Size of the encoder's output vector.
    public var outputSize: Int { projection?.outputSize ?? hiddenSize }

    /// A message naming the first inconsistency, or nil.
    public func validationError() -> String? {
        if vocabSize < 1 { return "vocab_size must be positive" }
        if hiddenSize < 1 { return "hidden_size must be positive" }
        if numLayers < 0 { return "num_layers must not be negative" }
        if numHeads < 1 { return "num_heads must be positive" }
        if hiddenSize % numHeads != 0 { return "hidden_size \(hiddenSize) is not divisible by num_heads \(numHeads)" }
        if intermediateSize < 1 { return "intermediate_size must be positive" }
        if typeVocabSize < 1 { return "type_vocab_size must be positive" }
        if !(layerNormEps > 0) || !layerNormEps.isFinite { return "layer_norm_eps must be positive" }
        if hiddenAct != "gelu" { return "hidden_act '\(hiddenAct)' is not supported (only 'gelu')" }
        if architecture == .roberta && (padTokenId < 0 || padTokenId >= vocabSize) {
            return "pad_token_id \(padTokenId) is outside the vocabulary"
        }
        if maxTokens < 1 { return "max_position_embeddings \(maxPositionEmbeddings) leaves no room for a token" }
        if let p = projection, p.hiddenSize < 1 || p.outputSize < 1 {
            return "projection sizes must be positive"
        }
        return nil
    }

    /// Parameters of the tower (embeddings, layers, pooler if used, projection if any).
    public var parameterCount: Int {
        let h = hiddenSize, i = intermediateSize
        let embeddings = (vocabSize + maxPositionEmbeddings + typeVocabSize) * h + 2 * h
        let layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
        let pooler = pooling == .firstPooler ? h * h + h : 0
        let proj = projection.map { $0.hiddenSize * (h + 1) + $0.outputSize * ($0.hiddenSize + 1) } ?? 0
        return embeddings + numLayers * layer + pooler + proj
    }
}
