import Numerics

/// One mLSTM block: pre-norm residual around the mLSTM layer (up-projection, causal conv + SiLU,
/// head-wise q/k/v, gated matrix memory, multi-head norm, learnable skip, SiLU output gate,
/// down-projection), as `xlstm.blocks.mlstm.block.mLSTMBlock` without feed-forward.
public struct MLSTMBlock: Sendable {
    let norm: Parameter         // xlstm_norm.weight [D] (stored as weight - 1)
    let projUp: Linear    // [2I, D]
    let q: Parameter, k: Parameter, v: Parameter  // [I/bs, bs, bs]
    let convWeight: Parameter   // [I, 1, K]
    let convBias: Parameter     // [I]
    let gates: Linear     // igate rows then fgate rows: [2 NH, 3I]
    let gateBias: FloatStorage  // [2 NH]
    let outNorm: Parameter      // [I]
    let skip: Parameter         // [I]
    let projDown: Linear  // [D, I]
    let config: MLSTMConfiguration

    public init(config c: MLSTMConfiguration, parameters: ParameterSource, prefix: String) throws {
        let d = c.width, i = c.innerWidth, bs = c.qkvBlockSize
        func p(_ name: String, _ shape: [Int]) throws -> Parameter {
            try parameters.parameter(prefix + name, shape: shape)
        }
        config = c
        norm = try p("xlstm_norm.weight", [d])
        let up = try p("xlstm.proj_up.weight", [2 * i, d])
        q = try p("xlstm.q_proj.weight", [i / bs, bs, bs])
        k = try p("xlstm.k_proj.weight", [i / bs, bs, bs])
        v = try p("xlstm.v_proj.weight", [i / bs, bs, bs])
        convWeight = try p("xlstm.conv1d.conv.weight", [i, 1, c.convKernelSize])
        convBias = try p("xlstm.conv1d.conv.bias", [i])
        let igate = try p("xlstm.mlstm_cell.igate.weight", [c.heads, 3 * i])
        let igateBias = try p("xlstm.mlstm_cell.igate.bias", [c.heads])
        let fgate = try p("xlstm.mlstm_cell.fgate.weight", [c.heads, 3 * i])
        let fgateBias = try p("xlstm.mlstm_cell.fgate.bias", [c.heads])
        outNorm = try p("xlstm.mlstm_cell.outnorm.weight", [i])
        skip = try p("xlstm.learnable_skip", [i])
        let down = try p("xlstm.proj_down.weight", [d, i])

        // The large matrices are repacked for the small-row kernel; the originals are released.
        projUp = Linear(up, precision: parameters.weightPrecision)
        projDown = Linear(down, precision: parameters.weightPrecision)
        gates = Linear(stacking: [igate, fgate], precision: parameters.weightPrecision)
        gateBias = FloatStorage(igateBias.values + fgateBias.values)
        for used in [up, down, igate, fgate] { parameters.release(used) }
    }

    /// `x <- x + mLSTM(LayerNorm(x))` over `batch` sequences of `steps` rows of width `D`.
    func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, steps: Int, workspace ws: MLSTMWorkspace) {
        let c = config
        let d = c.width, i = c.innerWidth, nh = c.heads, rows = batch * steps
        let bs = c.qkvBlockSize

        // Pre-norm.
        let xn = ws.normed
        xn.update(from: x, count: rows * d)
        Normalization.layerNorm(xn, rows: rows, width: d, weight: norm.pointer, bias: nil, weightOffset: 1)

        // Up-projection: [x_mlstm | z], row stride 2I.
        let up = ws.up
        projUp.apply(xn, rows: rows, into: up)

        // Causal depthwise conv + SiLU on x_mlstm, per sequence.
        let conv = ws.conv
        for b in 0..<batch {
            CausalConv1D.depthwise(up + b * steps * 2 * i, steps: steps, channels: i, ldx: 2 * i,
                                   weight: convWeight.pointer, kernel: c.convKernelSize,
                                   bias: convBias.pointer, into: conv + b * steps * i)
        }
        Activation.silu(conv, count: rows * i)

        // q, k from the conv branch, v from x_mlstm; stored side by side as the gates' input.
        let qkv = ws.qkv
        HeadwiseLinear.apply(conv, rows: rows, ldx: i, weight: q.pointer, blocks: i / bs, blockSize: bs,
                             into: qkv, ldy: 3 * i)
        HeadwiseLinear.apply(conv, rows: rows, ldx: i, weight: k.pointer, blocks: i / bs, blockSize: bs,
                             into: qkv + i, ldy: 3 * i)
        HeadwiseLinear.apply(up, rows: rows, ldx: 2 * i, weight: v.pointer, blocks: i / bs, blockSize: bs,
                             into: qkv + 2 * i, ldy: 3 * i)

        // Input and forget gate pre-activations, one per head: [i_0..i_NH | f_0..f_NH] per row.
        gates.apply(qkv, rows: rows, bias: gateBias.pointer, into: ws.gates)

        // Matrix memory (parallel stabilised form) -> h [rows, I].
        let h = ws.hidden
        for b in 0..<batch {
            MLSTMCell.parallel(qkv: qkv + b * steps * 3 * i, innerWidth: i, heads: nh, steps: steps,
                               gates: ws.gates + b * steps * 2 * nh,
                               into: h + b * steps * i, scratch: ws.cell)
        }
        Normalization.multiHeadNorm(h, rows: rows, heads: nh, headDim: i / nh,
                                    weight: outNorm.pointer, weightOffset: 1)

        // Learnable skip from the conv branch, SiLU output gate from z.
        let skipW = skip.pointer
        for r in 0..<rows {
            Activation.skipGate(h + r * i, skip: skipW, conv: conv + r * i, z: up + r * 2 * i + i, count: i)
        }

        // Down-projection, added to the residual stream.
        projDown.apply(h, rows: rows, into: x, accumulate: true)
    }
}
