/// Sizes of a Whisper encoder: the `encoder` object of a Whisper audio tower's `audio` section,
/// with transformers' `WhisperConfig` key names (a checkpoint's `config.json` converts by copying).
/// Missing keys take Whisper base's values.
public struct WhisperEncoderConfiguration: Codable, Sendable, Equatable {
    /// Width of the residual stream (512 for base).
    public var dModel: Int
    public var layers: Int
    public var heads: Int
    public var ffnDim: Int
    /// Mel bins of the input (80; 128 for large-v3).
    public var numMelBins: Int
    /// Rows of the positional table: tokens after the stride-2 stem (1500 = 30 s).
    public var maxSourcePositions: Int
    public var activation: String
    public var layerNormEps: Double

    public init(dModel: Int = 512, layers: Int = 6, heads: Int = 8, ffnDim: Int = 2048, numMelBins: Int = 80,
                maxSourcePositions: Int = 1500, activation: String = "gelu", layerNormEps: Double = 1e-5) {
        self.dModel = dModel
        self.layers = layers
        self.heads = heads
        self.ffnDim = ffnDim
        self.numMelBins = numMelBins
        self.maxSourcePositions = maxSourcePositions
        self.activation = activation
        self.layerNormEps = layerNormEps
    }

    /// Whisper base (`openai/whisper-base`).
    public static let base = WhisperEncoderConfiguration()

    enum CodingKeys: String, CodingKey {
        case dModel = "d_model", layers = "encoder_layers", heads = "encoder_attention_heads"
        case ffnDim = "encoder_ffn_dim", numMelBins = "num_mel_bins", maxSourcePositions = "max_source_positions"
        case activation = "activation_function", layerNormEps = "layer_norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = WhisperEncoderConfiguration.base
        dModel = try c.decodeIfPresent(Int.self, forKey: .dModel) ?? d.dModel
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? d.layers
        heads = try c.decodeIfPresent(Int.self, forKey: .heads) ?? d.heads
        ffnDim = try c.decodeIfPresent(Int.self, forKey: .ffnDim) ?? d.ffnDim
        numMelBins = try c.decodeIfPresent(Int.self, forKey: .numMelBins) ?? d.numMelBins
        maxSourcePositions = try c.decodeIfPresent(Int.self, forKey: .maxSourcePositions) ?? d.maxSourcePositions
        activation = try c.decodeIfPresent(String.self, forKey: .activation) ?? d.activation
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? d.layerNormEps
    }

    /// Input frames of a full window: two per position (the second convolution has stride 2).
    public var maxFrames: Int { 2 * maxSourcePositions }

    /// Tokens after the stem for `frames` input frames: `floor((frames - 1) / 2) + 1`
    /// (kernel 3, stride 2, padding 1).
    public static func tokens(frames: Int) -> Int { frames < 1 ? 0 : (frames - 1) / 2 + 1 }

    /// The first inconsistency, as a message naming the key, or nil.
    public func validationError() -> String? {
        if dModel < 1 || layers < 1 || heads < 1 || ffnDim < 1 || numMelBins < 1 || maxSourcePositions < 1 {
            return "d_model, encoder_layers, encoder_attention_heads, encoder_ffn_dim, num_mel_bins and max_source_positions must be positive"
        }
        if dModel % heads != 0 { return "d_model (\(dModel)) is not divisible by encoder_attention_heads (\(heads))" }
        if activation != "gelu" { return "activation_function '\(activation)' is not supported (gelu)" }
        if !(layerNormEps > 0) || !layerNormEps.isFinite { return "layer_norm_eps must be positive" }
        return nil
    }
}

/// A Whisper audio tower: the `audio` section of a package whose `tower` is `whisper`.
///
/// The frozen encoder's hidden states (the stem's output and every layer's, the last one after
/// the final norm: `layers + 1` states) are pooled over time per state (mean, and optionally
/// the population standard deviation `sqrt(var + eps)`), the states are mixed by a learned
/// softmax weighting, and the projection MLP (`linear1` -> ReLU -> `linear2`) maps the result to
/// the shared embedding space, L2-normalised.
public struct WhisperTowerConfiguration: Codable, Sendable, Equatable {
    public struct Pooling: Codable, Sendable, Equatable {
        /// `["mean"]` or `["mean", "std"]`: the statistics over time of each hidden state,
        /// concatenated in this order.
        public var statistics: [String]
        /// Added to the variance before the square root.
        public var eps: Double

        public init(statistics: [String] = ["mean", "std"], eps: Double = 1e-6) {
            self.statistics = statistics
            self.eps = eps
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            statistics = try c.decodeIfPresent([String].self, forKey: .statistics) ?? ["mean", "std"]
            eps = try c.decodeIfPresent(Double.self, forKey: .eps) ?? 1e-6
        }

        public var includesStd: Bool { statistics.contains("std") }
    }

    public struct Projection: Codable, Sendable, Equatable {
        public var hiddenSize: Int
        public var outputSize: Int
        public init(hiddenSize: Int = 512, outputSize: Int = 512) {
            self.hiddenSize = hiddenSize
            self.outputSize = outputSize
        }
        enum CodingKeys: String, CodingKey { case hiddenSize = "hidden_size", outputSize = "output_size" }
    }

    public var encoder: WhisperEncoderConfiguration
    public var pooling: Pooling
    public var projection: Projection

    public init(encoder: WhisperEncoderConfiguration = .base, pooling: Pooling = Pooling(),
                projection: Projection = Projection()) {
        self.encoder = encoder
        self.pooling = pooling
        self.projection = projection
    }

    enum CodingKeys: String, CodingKey { case encoder, pooling, projection }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        encoder = try c.decodeIfPresent(WhisperEncoderConfiguration.self, forKey: .encoder) ?? .base
        pooling = try c.decodeIfPresent(Pooling.self, forKey: .pooling) ?? Pooling()
        projection = try c.decodeIfPresent(Projection.self, forKey: .projection) ?? Projection()
    }

    /// Hidden states pooled: the stem's output and each layer's.
    public var states: Int { encoder.layers + 1 }
    /// Width of one pooled state (`d_model` per statistic).
    public var pooledWidth: Int { encoder.dModel * pooling.statistics.count }

    public func validationError() -> String? {
        if let problem = encoder.validationError() { return "encoder: \(problem)" }
        let known = [["mean"], ["mean", "std"]]
        if !known.contains(pooling.statistics) {
            return "pooling.statistics must be [\"mean\"] or [\"mean\", \"std\"], got \(pooling.statistics)"
        }
        if !(pooling.eps >= 0) || !pooling.eps.isFinite { return "pooling.eps must be >= 0" }
        if projection.hiddenSize < 1 || projection.outputSize < 1 { return "projection sizes must be positive" }
        return nil
    }
}

/// Which audio tower a package's `audio` section describes (its `tower` key).
public enum AudioTowerKind: String, Codable, Sendable, CaseIterable {
    /// CLAP's HTSAT (the paper's tower; the default when the key is absent).
    case htsat
    /// A frozen Whisper encoder with learned pooling and projection.
    case whisper
}
