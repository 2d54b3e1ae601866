import Numerics

/// One Swin transformer block of HTSAT (transformers' `ClapAudioLayer`, eval mode):
///
///     h = x + proj(WindowAttention(LN1(x)))        -- in (shifted) windows, relative position bias
///     y = h + fc2(GELU(fc1(LN2(h))))
///
/// Every product runs against weights packed once at load (`Linear`, 16-column panels,
/// AVX-512/AVX2 kernel chosen at run time); the originals are released. Everything but the
/// attention is per token, so a block runs window by window. Two schedules:
/// - `forward(... windows:)`: one task gathers the tokens of some windows, runs the whole block on
///   them and scatters them back (windows are disjoint, so concurrent tasks never touch the same
///   tokens). Used when there are enough windows for every core.
/// - `forwardSplit`: all windows at once, the heads and the MLP's hidden units divided among the
///   cores (each core's share of the output projections is a partial sum, added up afterwards).
///   Used for the last stages, which have one to four windows per item.
struct SwinBlock: Sendable {
    let width: Int, heads: Int, headDim: Int, mlpWidth: Int
    let eps: Float
    let norm1Weight: Parameter, norm1Bias: Parameter
    /// q/k/v weights fused head by head: rows `[q_h; k_h; v_h]` (`3 * head_dim` each) for
    /// h = 0, 1, ..., the query rows scaled by `1/sqrt(head_dim)`; `[3C, C]`, packed.
    let qkvWeight: Linear
    let qkvBias: FloatStorage
    /// Relative position bias expanded to `heads x N x N` (N tokens per window).
    let positionBias: FloatStorage
    /// Packed `[C, C]`, `[mlp, C]`, `[C, mlp]`. `forwardSplit` reads blocks of them in place
    /// (row blocks start on 16-row panels; column blocks anywhere).
    let projWeight: Linear, projBias: Parameter
    let norm2Weight: Parameter, norm2Bias: Parameter
    let fc1Weight: Linear, fc1Bias: Parameter
    let fc2Weight: Linear, fc2Bias: Parameter

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
        let proj = try p("attention.output.dense.weight", [c, c])
        projBias = try p("attention.output.dense.bias", [c])
        norm2Weight = try p("layernorm_after.weight", [c])
        norm2Bias = try p("layernorm_after.bias", [c])
        let fc1 = try p("intermediate.dense.weight", [mlpWidth, c])
        fc1Bias = try p("intermediate.dense.bias", [mlpWidth])
        let fc2 = try p("output.dense.weight", [c, mlpWidth])
        fc2Bias = try p("output.dense.bias", [c])
        projWeight = Linear(proj, precision: parameters.weightPrecision)
        fc1Weight = Linear(fc1, precision: parameters.weightPrecision)
        fc2Weight = Linear(fc2, precision: parameters.weightPrecision)
        for w in [proj, fc1, fc2] { parameters.release(w) }

        // Fused q/k/v projection, head-major; the attention scale folded into the query rows.
        let d = headDim
        let scale = 1 / Float(d).squareRoot()
        let fused = FloatStorage(count: 3 * c * c)
        qkvBias = FloatStorage(count: 3 * c)
        for h in 0..<heads {
            for (i, w) in [q, k, v].enumerated() {
                let s: Float = i == 0 ? scale : 1
                let row0 = (3 * h + i) * d  // destination row of the head's first q/k/v row
                for r in 0..<d {
                    let src = w.pointer + (h * d + r) * c, dst = fused.pointer + (row0 + r) * c
                    for j in 0..<c { dst[j] = src[j] * s }
                    if let biases { qkvBias.pointer[row0 + r] = biases[i].pointer[h * d + r] * s }
                }
            }
        }
        qkvWeight = Linear(weight: fused.pointer, outFeatures: 3 * c, inFeatures: c,
                           precision: parameters.weightPrecision)
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

    // MARK: - Gather / scatter

    /// Copies the tokens of `windows` into `xw` (window-major rows; padding rows zero) and writes
    /// LN1 of them into `normed` (padding stays zero, as transformers pads after the norm).
    private func gather(_ x: UnsafePointer<Float>, layout: SwinWindowLayout, window w: Int, row0: Int,
                        xw: UnsafeMutablePointer<Float>, normed: UnsafeMutablePointer<Float>) {
        let c = width, n = layout.tokens
        let perItem = layout.windowsPerItem, itemTokens = layout.height * layout.width
        let base = (w / perItem) * itemTokens, local = w % perItem
        for t in 0..<n {
            let row = row0 + t
            let index = Int(layout.tokenIndex[local * n + t])
            if index >= 0 {
                (xw + row * c).update(from: x + (base + index) * c, count: c)
            } else {
                (xw + row * c).update(repeating: 0, count: c)
            }
        }
        Normalization.layerNorm(xw + row0 * c, ldx: c, rows: n, width: c, weight: norm1Weight.pointer,
                                 bias: norm1Bias.pointer, eps: eps, into: normed + row0 * c, ldy: c)
        if layout.hasPadding {
            for t in 0..<n where layout.tokenIndex[local * n + t] < 0 {
                (normed + (row0 + t) * c).update(repeating: 0, count: c)
            }
        }
    }

    /// Writes rows of window `w` back to the grid (padding rows dropped), adding `extra` partial
    /// sums (row-aligned with `xw`) on the way.
    private func scatter(_ x: UnsafeMutablePointer<Float>, layout: SwinWindowLayout, window w: Int, row0: Int,
                         xw: UnsafePointer<Float>, extra: [UnsafeMutablePointer<Float>]) {
        let c = width, n = layout.tokens
        let perItem = layout.windowsPerItem, itemTokens = layout.height * layout.width
        let base = (w / perItem) * itemTokens, local = w % perItem
        for t in 0..<n {
            let index = Int(layout.tokenIndex[local * n + t])
            guard index >= 0 else { continue }
            let dst = x + (base + index) * c, src = xw + (row0 + t) * c
            dst.update(from: src, count: c)
            for e in extra {
                let add = e + (row0 + t) * c
                for j in 0..<c { dst[j] += add[j] }
            }
        }
    }

    // MARK: - Windows as independent tasks

    /// Scratch floats `forward` needs for `windows` windows of `tokens` tokens.
    func scratchSize(windows: Int, tokens: Int) -> Int {
        let rows = windows * tokens
        return rows * (2 * width + max(4 * width, mlpWidth)) + tokens * tokens
    }

    /// Runs the block on `windows` (global indices: item `w / windowsPerItem`) of the token grid
    /// `x` (`items x height*width x C`), in place, on the calling thread.
    func forward(_ x: UnsafeMutablePointer<Float>, layout: SwinWindowLayout, windows: Range<Int>,
                 scratch: UnsafeMutablePointer<Float>) {
        let c = width, n = layout.tokens, rows = windows.count * n, d = headDim
        let xw = scratch                      // gathered tokens, then the residual stream
        let normed = xw + rows * c            // LN1 / LN2 outputs
        let qkv = normed + rows * c           // head-major [q_h | k_h | v_h] per row ...
        let context = qkv + rows * 3 * c      // ... and the attention output
        let hidden = qkv                      // the MLP's hidden layer reuses both
        let scores = qkv + rows * max(4 * c, mlpWidth)

        for (k, w) in windows.enumerated() {
            gather(x, layout: layout, window: w, row0: k * n, xw: xw, normed: normed)
        }
        qkvWeight.apply(normed, rows: rows, bias: qkvBias.pointer, into: qkv)
        for (k, w) in windows.enumerated() {
            WindowAttention.attend(qkv: qkv + k * n * 3 * c, ld: 3 * c, tokens: n, headDim: d, heads: 0..<heads,
                                   headStride: 3 * d, keyOffset: d, valueOffset: 2 * d, bias: positionBias.pointer,
                                   mask: layout.mask(window: w % layout.windowsPerItem), scores: scores,
                                   output: context + k * n * c, ldo: c)
        }
        // h = x + proj(attention)
        projWeight.apply(context, rows: rows, bias: projBias.pointer, into: xw, accumulate: true)
        Normalization.layerNorm(xw, ldx: c, rows: rows, width: c, weight: norm2Weight.pointer,
                                 bias: norm2Bias.pointer, eps: eps, into: normed, ldy: c)
        fc1Weight.apply(normed, rows: rows, bias: fc1Bias.pointer, into: hidden)
        Activation.gelu(hidden, count: rows * mlpWidth)
        fc2Weight.apply(hidden, rows: rows, bias: fc2Bias.pointer, into: xw, accumulate: true)
        for (k, w) in windows.enumerated() {
            scatter(x, layout: layout, window: w, row0: k * n, xw: xw, extra: [])
        }
    }

    // MARK: - Heads and hidden units split over cores

    /// How `forwardSplit` divides the work among `parts` cores.
    struct Split {
        let heads: [Range<Int>]
        let hidden: [Range<Int>]
        var parts: Int { heads.count }
    }

    func split(parts: Int) -> Split {
        // Equal numbers of head ranges and hidden ranges. Every part's q/k/v rows and hidden units
        // start on a 16-row panel of the packed weights: heads in groups of `granule` (1 when
        // 3 * head_dim is a multiple of 16, as at paper size), hidden units in whole panels.
        var granule = 1
        while (3 * headDim * granule) % 16 != 0 { granule += 1 }
        let p = max(1, min(parts, (heads + granule - 1) / granule, (mlpWidth + 15) / 16))
        return Split(heads: SwinExecution.ranges(heads, pieces: p, granule: granule),
                     hidden: SwinExecution.ranges(mlpWidth, pieces: p, granule: 16))
    }

    /// Per-part scratch floats for `rows` rows.
    private func partSize(_ split: Split, _ i: Int, rows: Int, tokens: Int) -> Int {
        rows * max(3 * headDim * split.heads[i].count, split.hidden[i].count) + rows * width + tokens * tokens
    }

    func scratchSize(split: Split, windows: Int, tokens: Int) -> Int {
        let rows = windows * tokens
        return 3 * rows * width + (0..<split.parts).reduce(0) { $0 + partSize(split, $1, rows: rows, tokens: tokens) }
    }

    /// Runs the block on all `windows` with the heads and MLP hidden units divided among the
    /// parts of `split`, one task each (five parallel steps). `x` as in `forward`.
    func forwardSplit(_ x: UnsafeMutablePointer<Float>, layout: SwinWindowLayout, windows: Int, split: Split,
                      scratch: UnsafeMutablePointer<Float>) {
        let c = width, n = layout.tokens, rows = windows * n, d = headDim
        let xw = scratch, normed = xw + rows * c, context = normed + rows * c
        var parts: [(work: UnsafeMutablePointer<Float>, partial: UnsafeMutablePointer<Float>,
                     scores: UnsafeMutablePointer<Float>)] = []
        var offset = 3 * rows * c
        for i in 0..<split.parts {
            let work = scratch + offset
            let partial = work + rows * max(3 * d * split.heads[i].count, split.hidden[i].count)
            parts.append((work, partial, partial + rows * c))
            offset += partSize(split, i, rows: rows, tokens: n)
        }
        let partials = parts.dropFirst().map(\.partial)

        // 1. Gather and LN1, by window.
        Parallel.forEach(windows) { w in gather(x, layout: layout, window: w, row0: w * n, xw: xw, normed: normed) }

        // 2. Per part: q/k/v of its heads, their attention, their share of the output projection.
        //    Part 0 adds its share (and the bias) to the residual stream, the others keep partial sums.
        Parallel.forEach(split.parts) { i in
            let hs = split.heads[i], part = parts[i]
            let width3 = 3 * d * hs.count
            let q0 = 3 * d * hs.lowerBound
            qkvWeight.apply(normed, rows: rows, ldx: c, outputs: q0..<q0 + width3, inputs: 0..<c,
                            bias: qkvBias.pointer + q0, into: part.work, ldy: width3)
            for w in 0..<windows {
                WindowAttention.attend(qkv: part.work + w * n * width3, ld: width3, tokens: n, headDim: d, heads: hs,
                                       headStride: 3 * d, keyOffset: d, valueOffset: 2 * d,
                                       bias: positionBias.pointer, mask: layout.mask(window: w % layout.windowsPerItem),
                                       scores: part.scores, output: context + w * n * c, ldo: c)
            }
            let k0 = hs.lowerBound * d, kc = hs.count * d
            projWeight.apply(context + k0, rows: rows, ldx: c, outputs: 0..<c, inputs: k0..<k0 + kc,
                             bias: i == 0 ? projBias.pointer : nil, into: i == 0 ? xw : part.partial, ldy: c,
                             accumulate: i == 0)
        }

        // 3. Sum the partial projections into the residual stream; LN2. By rows.
        let pieces = SwinExecution.ranges(rows, pieces: split.parts)
        Parallel.forEach(pieces.count) { q in
            let r = pieces[q]
            for e in partials {
                for i in r.lowerBound * c..<r.upperBound * c { xw[i] += e[i] }
            }
            Normalization.layerNorm(xw + r.lowerBound * c, ldx: c, rows: r.count, width: c,
                                     weight: norm2Weight.pointer, bias: norm2Bias.pointer, eps: eps,
                                     into: normed + r.lowerBound * c, ldy: c)
        }

        // 4. Per part: its hidden units (fc1 + GELU) and their share of fc2.
        Parallel.forEach(split.parts) { i in
            let hid = split.hidden[i], part = parts[i]
            fc1Weight.apply(normed, rows: rows, ldx: c, outputs: hid, inputs: 0..<c,
                            bias: fc1Bias.pointer + hid.lowerBound, into: part.work, ldy: hid.count)
            Activation.gelu(part.work, count: rows * hid.count)
            fc2Weight.apply(part.work, rows: rows, ldx: hid.count, outputs: 0..<c, inputs: hid,
                            bias: i == 0 ? fc2Bias.pointer : nil, into: i == 0 ? xw : part.partial, ldy: c,
                            accumulate: i == 0)
        }

        // 5. Sum the partial fc2 outputs while scattering back, by window.
        Parallel.forEach(windows) { w in
            scatter(x, layout: layout, window: w, row0: w * n, xw: xw, extra: partials)
        }
    }
}

/// Patch merging between stages (transformers' `ClapAudioPatchMerging`): each 2x2 neighbourhood
/// `[x(2i,2j), x(2i+1,2j), x(2i,2j+1), x(2i+1,2j+1)]` is concatenated (4C), layer-normed
/// (eps 1e-5) and reduced to 2C without bias.
struct SwinPatchMerging: Sendable {
    let width: Int
    let normWeight: Parameter, normBias: Parameter
    /// `[2C, 4C]`, packed.
    let reduction: Linear

    init(parameters: ParameterSource, prefix: String, width c: Int) throws {
        width = c
        normWeight = try parameters.parameter(prefix + "norm.weight", shape: [4 * c])
        normBias = try parameters.parameter(prefix + "norm.bias", shape: [4 * c])
        let weight = try parameters.parameter(prefix + "reduction.weight", shape: [2 * c, 4 * c])
        reduction = Linear(weight, precision: parameters.weightPrecision)
        parameters.release(weight)
    }

    /// Rows of output computed per task.
    static let rowsPerTask = 256

    /// `x`: `items x (height x width) x C` -> `out`: `items x (height/2 x width/2) x 2C`.
    func forward(_ x: UnsafePointer<Float>, items: Int, height: Int, width gridWidth: Int,
                 into out: UnsafeMutablePointer<Float>, pool: ScratchPool<Scratch>, execution: SwinExecution) {
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
                Normalization.layerNorm(buffer, ldx: 4 * c, rows: range.count, width: 4 * c,
                                         weight: normWeight.pointer, bias: normBias.pointer, eps: 1e-5,
                                         into: buffer, ldy: 4 * c)
                reduction.apply(buffer, rows: range.count, into: out + range.lowerBound * 2 * c)
            }
        }
    }
}
