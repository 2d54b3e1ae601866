import Numerics

/// A linear layer (`y = x W^T + b`) whose weight is packed at load for small-row products and
/// cut into column blocks that run concurrently.
///
/// A transcript of 20 tokens multiplies 20 rows by each weight: too few rows to split, so the
/// work is split over the output columns instead. The weight (`[out, in]`, PyTorch layout) is cut
/// into `parts` blocks of whole 16-column panels, each packed as its own `PackedMatrix`; a call
/// runs the blocks with `Parallel.forEach`, each writing its own columns of `y`, and applies the
/// optional activation to its columns while they are still in cache.
///
/// Several weights that read the same input (query, key, value) can be stacked into one layer.
struct PackedLinear: Sendable {
    enum Epilogue: Sendable { case none, gelu, relu, tanh }

    struct Block: Sendable {
        let matrix: PackedMatrix
        let offset: Int
        let count: Int
    }

    let inFeatures: Int
    let outFeatures: Int
    let blocks: [Block]
    let bias: FloatStorage?

    /// Stacks `weights` (each `[out_i, in]`) on top of each other, with their `biases` (all or
    /// none), and packs them in at most `parts` column blocks. The caller releases the originals.
    init(weights: [Parameter], biases: [Parameter]?, parts: Int) {
        precondition(!weights.isEmpty, "PackedLinear needs a weight")
        let k = weights[0].shape[1]
        precondition(weights.allSatisfy { $0.shape.count == 2 && $0.shape[1] == k }, "stacked weights need equal inputs")
        let n = weights.reduce(0) { $0 + $1.shape[0] }
        inFeatures = k
        outFeatures = n

        // One contiguous [n, k] source (a view of the original when there is a single weight).
        let source: UnsafePointer<Float>
        let owner: AnyObject
        if weights.count == 1 {
            source = weights[0].pointer
            owner = FloatStorage(count: 0)
        } else {
            let joined = FloatStorage(count: n * k)
            var offset = 0
            for w in weights {
                (joined.pointer + offset).update(from: w.pointer, count: w.count)
                offset += w.count
            }
            source = UnsafePointer(joined.pointer)
            owner = joined
        }

        let panels = (n + 15) / 16
        let partCount = max(1, min(parts, panels))
        var blocks: [Block] = []
        for p in 0..<partCount {
            let first = p * panels / partCount * 16
            let last = min(n, (p + 1) * panels / partCount * 16)
            guard last > first else { continue }
            let view = Parameter(name: weights[0].name, shape: [last - first, k],
                                 pointer: source + first * k, owner: owner)
            blocks.append(Block(matrix: PackedMatrix(view), offset: first, count: last - first))
        }
        self.blocks = blocks

        if let biases {
            precondition(biases.count == weights.count, "one bias per stacked weight")
            let b = FloatStorage(count: n)
            var offset = 0
            for bias in biases {
                (b.pointer + offset).update(from: bias.pointer, count: bias.count)
                offset += bias.count
            }
            bias = b
        } else {
            bias = nil
        }
    }

    /// `y[r] = epilogue(x[r] W^T + b (+ y[r] if accumulate))` for `rows` rows.
    func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil,
               into y: UnsafeMutablePointer<Float>, ldy: Int? = nil,
               accumulate: Bool = false, epilogue: Epilogue = .none) {
        guard rows > 0 else { return }
        let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
        let bias = self.bias?.pointer
        let blocks = self.blocks
        Parallel.forEach(blocks.count) { i in
            let block = blocks[i]
            block.matrix.apply(x, rows: rows, ldx: ldx, bias: bias.map { UnsafePointer($0 + block.offset) },
                               into: y + block.offset, ldy: ldy, accumulate: accumulate)
            switch epilogue {
            case .none: break
            case .gelu: for r in 0..<rows { TransformerActivation.gelu(y + r * ldy + block.offset, count: block.count) }
            case .relu: for r in 0..<rows { TransformerActivation.relu(y + r * ldy + block.offset, count: block.count) }
            case .tanh: for r in 0..<rows { TransformerActivation.tanh(y + r * ldy + block.offset, count: block.count) }
            }
        }
    }

    /// Bytes held by the packed copies.
    var byteCount: Int { blocks.reduce(0) { $0 + $1.matrix.byteCount } }
}
