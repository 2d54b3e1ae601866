/// Block-diagonal linear map, as xLSTM's `LinearHeadwiseExpand` (expand factor 1, no bias):
/// the row is cut into `blocks` segments of `blockSize` values and each is multiplied by its own
/// `blockSize x blockSize` matrix (`weight[h, out, in]`).
public enum HeadwiseLinear {
    public static func apply(
        _ x: UnsafePointer<Float>, rows: Int, ldx: Int,
        weight: UnsafePointer<Float>, blocks: Int, blockSize: Int,
        into y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        if blockSize == 4 {
            for r in 0..<rows {
                let xi = x + r * ldx, yo = y + r * ldy
                for h in 0..<blocks {
                    let w = weight + h * 16, v = xi + h * 4, o = yo + h * 4
                    let v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3]
                    o[0] = w[0] * v0 + w[1] * v1 + w[2] * v2 + w[3] * v3
                    o[1] = w[4] * v0 + w[5] * v1 + w[6] * v2 + w[7] * v3
                    o[2] = w[8] * v0 + w[9] * v1 + w[10] * v2 + w[11] * v3
                    o[3] = w[12] * v0 + w[13] * v1 + w[14] * v2 + w[15] * v3
                }
            }
            return
        }
        let bs = blockSize
        for r in 0..<rows {
            let xi = x + r * ldx, yo = y + r * ldy
            for h in 0..<blocks {
                let w = weight + h * bs * bs, v = xi + h * bs, o = yo + h * bs
                for i in 0..<bs {
                    var acc: Float = 0
                    for d in 0..<bs { acc += w[i * bs + d] * v[d] }
                    o[i] = acc
                }
            }
        }
    }
}
