import XLSTM

/// Sizes of the gated xLSTM classifier: the `classifier` section of `model.json`.
///
/// Every stream vector (`embedding_dim` values) is read as `steps` x `step_dim`, linearly
/// projected to `width` and run through its own mLSTM stack.
public struct ClassifierConfiguration: Codable, Sendable, Equatable {
    public var embeddingDim: Int
    public var steps: Int
    public var stepDim: Int
    public var width: Int
    public var blocks: Int
    public var heads: Int
    public var convKernelSize: Int
    public var qkvBlockSize: Int
    public var projectionFactor: Double
    /// Stream names in input order; must equal `StreamLayout.names`.
    public var streams: [String]

    public init(embeddingDim: Int = 512, steps: Int = 16, stepDim: Int = 32, width: Int = 512,
                blocks: Int = 8, heads: Int = 4, convKernelSize: Int = 4, qkvBlockSize: Int = 4,
                projectionFactor: Double = 2, streams: [String] = StreamLayout.names) {
        self.embeddingDim = embeddingDim
        self.steps = steps
        self.stepDim = stepDim
        self.width = width
        self.blocks = blocks
        self.heads = heads
        self.convKernelSize = convKernelSize
        self.qkvBlockSize = qkvBlockSize
        self.projectionFactor = projectionFactor
        self.streams = streams
    }

    /// The paper's size: width 512, 8 blocks, 4 heads, 512-d embeddings as 16 x 32.
    public static let paper = ClassifierConfiguration()

    enum CodingKeys: String, CodingKey {
        case embeddingDim = "embedding_dim"
        case steps
        case stepDim = "step_dim"
        case width, blocks, heads
        case convKernelSize = "conv1d_kernel_size"
        case qkvBlockSize = "qkv_proj_blocksize"
        case projectionFactor = "proj_factor"
        case streams
    }

    public var stack: MLSTMConfiguration {
        MLSTMConfiguration(width: width, blocks: blocks, heads: heads, convKernelSize: convKernelSize,
                           qkvBlockSize: qkvBlockSize, projectionFactor: projectionFactor)
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
