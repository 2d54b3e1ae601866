import Numerics

/// Where each token of a Swin block goes: the (shifted) window partition of a `height x width`
/// token grid, as transformers' `ClapAudioLayer.forward` builds it.
///
/// The grid is zero-padded at the bottom/right to a multiple of the window, rolled by `-shift`
/// along both axes, and cut into `window x window` windows in row-major window order. Window token
/// `(i, j)` of window `(wy, wx)` is grid position `((wy*ws + i + shift) mod Hp, (wx*ws + j + shift) mod Wp)`;
/// positions beyond the real grid are padding (zero input, output discarded). Shifted blocks add a
/// mask of -100 between tokens of different regions (`get_attn_mask`), computed on the padded grid.
struct SwinWindowLayout: Sendable {
    let height: Int, width: Int
    let window: Int, shift: Int
    let paddedHeight: Int, paddedWidth: Int
    /// Tokens per window.
    var tokens: Int { window * window }
    var windowsPerItem: Int { (paddedHeight / window) * (paddedWidth / window) }
    /// `windowsPerItem x tokens` grid positions (`y * width + x`), or -1 for padding.
    let tokenIndex: [Int32]
    /// Per window: the index of its mask in `masks`, or -1 when no pair of its tokens is masked.
    let maskIndex: [Int]
    /// Distinct masks, `tokens x tokens` each (0 or -100).
    let masks: [FloatStorage]
    let hasPadding: Bool

    init(height: Int, width: Int, window: Int, shift: Int) {
        self.height = height
        self.width = width
        self.window = window
        self.shift = shift
        paddedHeight = (height + window - 1) / window * window
        paddedWidth = (width + window - 1) / window * window
        hasPadding = paddedHeight != height || paddedWidth != width
        let ws = window, n = window * window
        let windowsY = paddedHeight / ws, windowsX = paddedWidth / ws
        var tokenIndex = [Int32](repeating: -1, count: windowsY * windowsX * n)
        var maskIndex = [Int](repeating: -1, count: windowsY * windowsX)
        var masks: [FloatStorage] = []
        var regionKeys: [[Int]: Int] = [:]
        let hp = paddedHeight, wp = paddedWidth
        // Region of a coordinate of the shifted frame along an axis of padded length `len`.
        func region(_ c: Int, _ len: Int) -> Int {
            (c >= len - ws ? 1 : 0) + (c >= len - shift ? 1 : 0)
        }
        for wy in 0..<windowsY {
            for wx in 0..<windowsX {
                let w = wy * windowsX + wx
                var regions = [Int](repeating: 0, count: n)
                for i in 0..<ws {
                    for j in 0..<ws {
                        let ys = wy * ws + i, xs = wx * ws + j
                        let y = (ys + shift) % hp, x = (xs + shift) % wp
                        if y < height && x < width { tokenIndex[w * n + i * ws + j] = Int32(y * width + x) }
                        regions[i * ws + j] = region(ys, hp) * 3 + region(xs, wp)
                    }
                }
                guard shift > 0, Set(regions).count > 1 else { continue }
                if let k = regionKeys[regions] {
                    maskIndex[w] = k
                } else {
                    let mask = FloatStorage(count: n * n)
                    for a in 0..<n {
                        for b in 0..<n where regions[a] != regions[b] { mask.pointer[a * n + b] = -100 }
                    }
                    regionKeys[regions] = masks.count
                    maskIndex[w] = masks.count
                    masks.append(mask)
                }
            }
        }
        self.tokenIndex = tokenIndex
        self.maskIndex = maskIndex
        self.masks = masks
    }

    func mask(window w: Int) -> UnsafePointer<Float>? {
        let k = maskIndex[w]
        return k < 0 ? nil : UnsafePointer(masks[k].pointer)
    }
}
