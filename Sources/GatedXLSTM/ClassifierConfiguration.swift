import XLSTM

/// Sizes of the gated xLSTM classifier: the `classifier` section of `model.json`.
///
/// Every stream vector (`embedding_dim` values) is read as `steps` x `step_dim`, linearly
/// projected to the stack width and run through its own mLSTM stack. The stack's sizes
/// (`width`, `blocks`, `heads`, `conv1d_kernel_size`, `qkv_proj_blocksize`, `proj_factor`)
/// sit in the same JSON object, decoded by `MLSTMConfiguration`.
public struct ClassifierConfiguration: Codable, Sendable, Equatable {
    public var embeddingDim: Int
    public var steps: Int
    public var stepDim: Int
    /// Stream names in input order; must equal `StreamLayout.names`.
    public var streams: [String]
    /// The per-stream mLSTM stack.
    public var stack: MLSTMConfiguration

    public init(embeddingDim: Int = 512, steps: Int = 16, stepDim: Int = 32,
                stack: MLSTMConfiguration = MLSTMConfiguration(width: 512, blocks: 8, heads: 4),
                streams: [String] = StreamLayout.names) {
        self.embeddingDim = embeddingDim
        self.steps = steps
        self.stepDim = stepDim
        self.stack = stack
        self.streams = streams
    }

    /// The paper's size: width 512, 8 blocks, 4 heads, 512-d embeddings as 16 x 32.
    public static let paper = ClassifierConfiguration()

    /// The model width (the stacks' `embedding_dim`).
    public var width: Int { stack.width }

    enum CodingKeys: String, CodingKey {
        case embeddingDim = "embedding_dim"
        case steps
        case stepDim = "step_dim"
        case streams
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        embeddingDim = try c.decode(Int.self, forKey: .embeddingDim)
        steps = try c.decode(Int.self, forKey: .steps)
        stepDim = try c.decode(Int.self, forKey: .stepDim)
        streams = try c.decode([String].self, forKey: .streams)
        stack = try MLSTMConfiguration(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(embeddingDim, forKey: .embeddingDim)
        try c.encode(steps, forKey: .steps)
        try c.encode(stepDim, forKey: .stepDim)
        try c.encode(streams, forKey: .streams)
        try stack.encode(to: encoder)
    }

    /// A message naming the first inconsistency, or nil.
    public func validationError() -> String? {
        if embeddingDim < 1 || steps < 1 || stepDim < 1 { return "embedding_dim, steps and step_dim must be positive" }
        if steps * stepDim != embeddingDim {
            return "steps (\(steps)) x step_dim (\(stepDim)) must equal embedding_dim (\(embeddingDim))"
        }
        if streams != StreamLayout.names {
            return "streams must be \(StreamLayout.names) in this order"
        }
        return stack.validationError()
    }

    /// Parameters of the whole classifier (12 stacks, input projections, gate, output layer).
    public func parameterCount(labels: Int) -> Int {
        let n = StreamLayout.count
        return n * (stack.parameterCount + stepDim * width + width)
            + (n - 1) * (embeddingDim + 1) + labels * (n * width + 1)
    }
}
