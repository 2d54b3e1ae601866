import Numerics

/// One Swin transformer block of HTSAT (transformers' `ClapAudioLayer`, eval mode):
///
///     h = x + proj(WindowAttention(LN1(x)))        -- in (shifted) windows, relative position bias
///     y = h + fc2(GELU(fc1(LN2(h))))
///
/// Everything but the attention is per token, so a block runs window by window: a task gathers
/// the tokens of some windows, runs the whole block on them and scatters them back; windows are
/// disjoint, so tasks never touch the same tokens.
struct SwinBlock: Sendable {
    let width: Int, heads: Int, headDim: Int, mlpWidth: Int
    let eps: Float
    let norm1Weight: Parameter, norm1Bias: Parameter
    /// `[query; key; value]` weights `[3C, C]`, the query rows scaled by `1/sqrt(head_dim)`.
    let qkvWeight: FloatStorage
    let qkvBias: FloatStorage
    /// Relative position bias expanded to `heads x N x N` (N tokens per window).
    let positionBias: FloatStorage
    let projWeight: Parameter, projBias: Parameter
    let norm2Weight: Parameter, norm2Bias: Parameter
    let fc1Weight: Parameter, fc1Bias: Parameter
    let fc2Weight: Parameter, fc2Bias: Parameter

    /// Reads `prefix + "layernorm_before.weight"`, ... (transformers' `ClapAudioLayer` names).
    init(parameters: ParameterSource, prefix: String, width c: Int, heads: Int, window: Int, mlpWidth: Int,
         qkvBias hasQKVBias: Bool, eps: Double) throws {
        func p(_ name: String, _ shape: [Int]) throws -> Parameter {
            try parameters.parameter(prefix + name, shape: shape)
        }
        width = c
        self.heads = heads
        headDim = c / heads
        self.mlpWidth = mlpWidth
        self.eps = Float(eps)
        norm1Weight = try p("layernorm_before.weight", [c])
        norm1Bias = try p("layernorm_before.bias", [c])
        let span = 2 * window - 1
        let table = try p("attention.self.relative_position_bias_table", [span * span, heads])
        let q = try p("attention.self.query.weight", [c, c])
        let k = try p("attention.self.key.weight", [c, c])
        let v = try p("attention.self.value.weight", [c, c])
        let biases = hasQKVBias
            ? try ["query", "key", "value"].map { try p("attention.self.\($0).bias", [c]) } : nil
        projWeight = try p("attention.output.dense.weight", [c, c])
        projBias = try p("attention.output.dense.bias", [c])
        norm2Weight = try p("layernorm_after.weight", [c])
        norm2Bias = try p("layernorm_after.bias", [c])
        fc1Weight = try p("intermediate.dense.weight", [mlpWidth, c])
        fc1Bias = try p("intermediate.dense.bias", [mlpWidth])
        fc2Weight = try p("output.dense.weight", [c, mlpWidth])
        fc2Bias = try p("output.dense.bias", [c])

        // Fused q/k/v projection; the attention scale folded into the query rows.
        let scale = 1 / Float(headDim).squareRoot()
        qkvWeight = FloatStorage(count: 3 * c * c)
        qkvBias = FloatStorage(count: 3 * c)
        for (i, w) in [q, k, v].enumerated() {
            let dst = qkvWeight.pointer + i * c * c
            let s: Float = i == 0 ? scale : 1
            for j in 0..<(c * c) { dst[j] = w.pointer[j] * s }
            if let biases {
                for j in 0..<c { qkvBias.pointer[i * c + j] = biases[i].pointer[j] * s }
            }
        }
        for w in [q, k, v] { parameters.release(w) }

        // bias[h][a][b] = table[index(a, b)][h], index as transformers' create_relative_position_index.
        let n = window * window
        positionBias = FloatStorage(count: heads * n * n)
        for a in 0..<n {
            let (ay, ax) = (a / window, a % window)
            for b in 0..<n {
                let (by, bx) = (b / window, b % window)
                let index = (ay - by + window - 1) * span + (ax - bx + window - 1)
                for h in 0..<heads { positionBias.pointer[(h * n + a) * n + b] = table.pointer[index * heads + h] }
            }
        }
    }

    /// Attention tasks per window when a parallel step computes `windows` windows.
    func headGroups(windows: Int, execution: SwinExecution) -> Int {
        guard execution.parallel else { return 1 }
        return min(heads, max(1, (2 * execution.parts + windows - 1) / windows))
    }

    /// Scratch floats `forward` needs for `windows` windows of `tokens` tokens.
    func scratchSize(windows: Int, tokens: Int, execution: SwinExecution) -> Int {
        let rows = windows * tokens
        let tasks = execution.parallel ? windows * headGroups(windows: windows, execution: execution) : 1
        return rows * (2 * width + max(4 * width, mlpWidth)) + tasks * tokens * tokens
    }

    /// Runs the block on `windows` (global indices: item `w / windowsPerItem`) of the token grid
    /// `x` (`items x height*width x C`), in place.
    func forward(_ x: UnsafeMutablePointer<Float>, layout: SwinWindowLayout, windows: Range<Int>,
                 scratch: UnsafeMutablePointer<Float>, execution: SwinExecution) {
        let c = width, n = layout.tokens, rows = windows.count * n
        let perItem = layout.windowsPerItem, itemTokens = layout.height * layout.width
        let xw = scratch                      // gathered tokens, then the residual stream
        let normed = xw + rows * c            // LN1 / LN2 outputs
        let qkv = normed + rows * c           // [q | k | v] per row ...
        let context = qkv + rows * 3 * c      // ... and the attention output
        let hidden = qkv                      // the MLP's hidden layer reuses both
        let scores = qkv + rows * max(4 * c, mlpWidth)
        let eps = self.eps

        // Gather the windows' tokens; LN1 (padding stays zero, as transformers pads after the norm).
        execution.forEach(windows.count) { k in
            let w = windows.lowerBound + k
            let base = (w / perItem) * itemTokens, local = w % perItem
            for t in 0..<n {
                let row = k * n + t
                let index = Int(layout.tokenIndex[local * n + t])
                if index >= 0 {
                    (xw + row * c).update(from: x + (base + index) * c, count: c)
                } else {
                    (xw + row * c).update(repeating: 0, count: c)
                }
            }
            SwinVectorMath.layerNorm(xw + k * n * c, ldx: c, rows: n, width: c, weight: norm1Weight.pointer,
                                     bias: norm1Bias.pointer, eps: eps, into: normed + k * n * c, ldy: c)
            if layout.hasPadding {
                for t in 0..<n where layout.tokenIndex[local * n + t] < 0 {
                    (normed + (k * n + t) * c).update(repeating: 0, count: c)
                }
            }
        }

        execution.linear(normed, rows: rows, inFeatures: c, weight: qkvWeight.pointer, bias: qkvBias.pointer,
                         outFeatures: 3 * c, into: qkv)

        // Window attention: one task per (window, group of heads).
        let groups = headGroups(windows: windows.count, execution: execution)
        let headRanges = SwinExecution.ranges(heads, pieces: groups)
        execution.forEach(windows.count * headRanges.count) { task in
            let k = task / headRanges.count, g = task % headRanges.count
            let local = (windows.lowerBound + k) % perItem
            WindowAttention.attend(qkv: qkv + k * n * 3 * c, ldqkv: 3 * c, tokens: n, heads: heads, headDim: headDim,
                                   bias: positionBias.pointer, mask: layout.mask(window: local),
                                   headRange: headRanges[g], scores: scores + (execution.parallel ? task * n * n : 0),
                                   output: context + k * n * c, ldo: c)
        }

        // h = x + proj(attention)
        execution.linear(context, rows: rows, inFeatures: c, weight: projWeight.pointer, bias: projBias.pointer,
                         outFeatures: c, into: xw, accumulate: true)
        execution.rows(rows) { r in
            SwinVectorMath.layerNorm(xw + r.lowerBound * c, ldx: c, rows: r.count, width: c,
                                     weight: norm2Weight.pointer, bias: norm2Bias.pointer, eps: eps,
                                     into: normed + r.lowerBound * c, ldy: c)
        }
        let m = mlpWidth
        execution.linear(normed, rows: rows, inFeatures: c, weight: fc1Weight.pointer, bias: fc1Bias.pointer,
                         outFeatures: m, into: hidden) { cols in
            if cols.count == m {
                SwinVectorMath.gelu(hidden, count: rows * m)
            } else {
                for r in 0..<rows { SwinVectorMath.gelu(hidden + r * m + cols.lowerBound, count: cols.count) }
            }
        }
        execution.linear(hidden, rows: rows, inFeatures: m, weight: fc2Weight.pointer, bias: fc2Bias.pointer,
                         outFeatures: c, into: xw, accumulate: true)

        // Scatter back (padding rows dropped).
        execution.forEach(windows.count) { k in
            let w = windows.lowerBound + k
            let base = (w / perItem) * itemTokens, local = w % perItem
            for t in 0..<n {
                let index = Int(layout.tokenIndex[local * n + t])
                if index >= 0 { (x + (base + index) * c).update(from: xw + (k * n + t) * c, count: c) }
            }
        }
    }
}

/// Patch merging between stages (transformers' `ClapAudioPatchMerging`): each 2x2 neighbourhood
/// `[x(2i,2j), x(2i+1,2j), x(2i,2j+1), x(2i+1,2j+1)]` is concatenated (4C), layer-normed
/// (eps 1e-5) and reduced to 2C without bias.
struct SwinPatchMerging: Sendable {
    let width: Int
    let normWeight: Parameter, normBias: Parameter
    let reduction: Parameter

    init(parameters: ParameterSource, prefix: String, width c: Int) throws {
        width = c
        normWeight = try parameters.parameter(prefix + "norm.weight", shape: [4 * c])
        normBias = try parameters.parameter(prefix + "norm.bias", shape: [4 * c])
        reduction = try parameters.parameter(prefix + "reduction.weight", shape: [2 * c, 4 * c])
    }

    /// Rows of output computed per task.
    static let rowsPerTask = 256

    /// `x`: `items x (height x width) x C` -> `out`: `items x (height/2 x width/2) x 2C`.
    func forward(_ x: UnsafePointer<Float>, items: Int, height: Int, width gridWidth: Int,
                 into out: UnsafeMutablePointer<Float>, pool: SwinScratchPool, execution: SwinExecution) {
        let c = width, oh = height / 2, ow = gridWidth / 2
        let total = items * oh * ow
        let pieces = SwinExecution.ranges(total, pieces: max(1, total / Self.rowsPerTask))
        execution.forEach(pieces.count) { p in
            let range = pieces[p]
            pool.with(range.count * 4 * c) { buffer in
                for (r, o) in range.enumerated() {
                    let b = o / (oh * ow), i = (o % (oh * ow)) / ow, j = o % ow
                    let item = x + b * height * gridWidth * c
                    let dst = buffer + r * 4 * c
                    for (q, (dy, dx)) in [(0, 0), (1, 0), (0, 1), (1, 1)].enumerated() {
                        (dst + q * c).update(from: item + ((2 * i + dy) * gridWidth + 2 * j + dx) * c, count: c)
                    }
                }
                SwinVectorMath.layerNorm(buffer, ldx: 4 * c, rows: range.count, width: 4 * c,
                                         weight: normWeight.pointer, bias: normBias.pointer, eps: 1e-5,
                                         into: buffer, ldy: 4 * c)
                BLAS.linear(buffer, rows: range.count, inFeatures: 4 * c, weight: reduction.pointer, bias: nil,
                            outFeatures: 2 * c, into: out + range.lowerBound * 2 * c)
            }
        }
    }
}
