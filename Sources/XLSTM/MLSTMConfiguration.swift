/// Sizes of an mLSTM block stack, with the semantics of NX-AI's `xlstm` package
/// (`xLSTMBlockStackConfig` of `mLSTMBlockConfig(mLSTMLayerConfig(...))`).
public struct MLSTMConfiguration: Codable, Sendable, Equatable {
    /// Model width (`embedding_dim`).
    public var width: Int
    /// Number of mLSTM blocks.
    public var blocks: Int
    /// Heads of the matrix memory.
    public var heads: Int
    /// Causal depthwise convolution kernel size.
    public var convKernelSize: Int
    /// Block size of the head-wise q/k/v projections.
    public var qkvBlockSize: Int
    /// Up-projection factor (the inner width is `proj_factor * width` rounded up to 64).
    public var projectionFactor: Double

    public init(width: Int, blocks: Int, heads: Int, convKernelSize: Int = 4,
                qkvBlockSize: Int = 4, projectionFactor: Double = 2) {
        self.width = width
        self.blocks = blocks
        self.heads = heads
        self.convKernelSize = convKernelSize
        self.qkvBlockSize = qkvBlockSize
        self.projectionFactor = projectionFactor
    }

    enum CodingKeys: String, CodingKey {
        case width, blocks, heads
        case convKernelSize = "conv1d_kernel_size"
        case qkvBlockSize = "qkv_proj_blocksize"
        case projectionFactor = "proj_factor"
    }

    /// The inner (up-projected) width: `ceil(proj_factor * width / 64) * 64`, as `UpProjConfigMixin`.
    public var innerWidth: Int {
        Int((projectionFactor * Double(width) / 64).rounded(.up)) * 64
    }

    public var headDim: Int { innerWidth / heads }

    /// Checks that the sizes describe a buildable stack; returns a message naming the problem.
    public func validationError() -> String? {
        if width < 1 { return "width must be positive" }
        if blocks < 1 { return "blocks must be positive" }
        if heads < 1 { return "heads must be positive" }
        if convKernelSize < 1 { return "conv1d_kernel_size must be positive" }
        if qkvBlockSize < 1 { return "qkv_proj_blocksize must be positive" }
        if !(projectionFactor > 0) || !projectionFactor.isFinite { return "proj_factor must be positive" }
        if innerWidth % heads != 0 { return "inner width \(innerWidth) is not divisible by heads \(heads)" }
        if innerWidth % qkvBlockSize != 0 {
            return "inner width \(innerWidth) is not divisible by qkv_proj_blocksize \(qkvBlockSize)"
        }
        return nil
    }

    /// Number of parameters of one stack.
    public var parameterCount: Int {
        let d = width, i = innerWidth
        let perBlock = d + d * 2 * i + 3 * i * qkvBlockSize + i * convKernelSize + i
            + 2 * (heads * 3 * i + heads) + i + i + i * d
        return blocks * perBlock + d
    }
}
