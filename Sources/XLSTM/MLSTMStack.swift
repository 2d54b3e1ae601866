import Numerics

/// A stack of mLSTM blocks with the post-blocks LayerNorm, as `xlstm.xLSTMBlockStack`
/// built from mLSTM blocks only. Parameters are read by the names of that module's
/// `state_dict()` under `prefix` (e.g. `streams.3.stack.`).
public struct MLSTMStack: Sendable {
    public let config: MLSTMConfiguration
    let blocks: [MLSTMBlock]
    let postNorm: Parameter

    public init(config: MLSTMConfiguration, parameters: ParameterSource, prefix: String = "") throws {
        if let problem = config.validationError() {
            throw ParameterError(code: "invalid_configuration", message: "mLSTM stack: \(problem)")
        }
        self.config = config
        blocks = try (0..<config.blocks).map {
            try MLSTMBlock(config: config, parameters: parameters, prefix: "\(prefix)blocks.\($0).")
        }
        postNorm = try parameters.parameter("\(prefix)post_blocks_norm.weight", shape: [config.width])
    }

    /// Runs the stack in place over `batch` sequences of `steps` rows (`batch * steps * width`
    /// floats, row-major), including the post-blocks norm.
    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, steps: Int, workspace: MLSTMWorkspace) {
        workspace.reserve(config: config, rows: batch * steps, steps: steps)
        for block in blocks { block.forward(x, batch: batch, steps: steps, workspace: workspace) }
        Normalization.layerNorm(x, rows: batch * steps, width: config.width,
                                weight: postNorm.pointer, bias: nil, weightOffset: 1)
    }

    /// Array convenience: `input` is `batch x steps x width`; returns the same shape.
    public func forward(_ input: [Float], batch: Int, steps: Int) -> [Float] {
        precondition(input.count == batch * steps * config.width, "input size")
        var x = input
        let ws = MLSTMWorkspace()
        x.withUnsafeMutableBufferPointer { forward($0.baseAddress!, batch: batch, steps: steps, workspace: ws) }
        return x
    }
}

/// Scratch buffers for one stack evaluation, reused across calls (one per concurrent task) so
/// that a turn allocates nothing on the hot path.
public final class MLSTMWorkspace: @unchecked Sendable {
    private let buffer = Scratch()
    private(set) var normed: UnsafeMutablePointer<Float>
    private(set) var up: UnsafeMutablePointer<Float>
    private(set) var conv: UnsafeMutablePointer<Float>
    private(set) var qkv: UnsafeMutablePointer<Float>
    private(set) var hidden: UnsafeMutablePointer<Float>
    private(set) var gates: UnsafeMutablePointer<Float>
    private(set) var cell: UnsafeMutablePointer<Float>

    public init() {
        let storage = buffer.pointer
        normed = storage; up = storage; conv = storage; qkv = storage
        hidden = storage; gates = storage; cell = storage
    }

    func reserve(config: MLSTMConfiguration, rows: Int, steps: Int) {
        let d = config.width, i = config.innerWidth, nh = config.heads
        let sizes = [rows * d, rows * 2 * i, rows * i, rows * 3 * i, rows * i, rows * 2 * nh,
                     steps * (steps + 2) + 1]
        let storage = buffer.reserve(sizes.reduce(0, +))
        var offset = 0
        func next(_ n: Int) -> UnsafeMutablePointer<Float> { defer { offset += n }; return storage + offset }
        normed = next(sizes[0]); up = next(sizes[1]); conv = next(sizes[2]); qkv = next(sizes[3])
        hidden = next(sizes[4]); gates = next(sizes[5]); cell = next(sizes[6])
    }
}
