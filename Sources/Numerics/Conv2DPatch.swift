/// 2-D convolution as `torch.nn.Conv2d` (groups 1, dilation 1, zero padding) by im2col + BLAS,
/// with token-major output: row `oy * outWidth + ox` holds the `outChannels` values of one output
/// position (the layout a patch embedding hands to a transformer, `conv(x).flatten(2).transpose(1, 2)`).
public struct Conv2DGeometry: Sendable, Equatable {
    public let channels: Int, height: Int, width: Int
    public let kernelHeight: Int, kernelWidth: Int
    public let strideHeight: Int, strideWidth: Int
    public let padHeight: Int, padWidth: Int

    public init(channels: Int, height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) {
        self.channels = channels
        self.height = height
        self.width = width
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (padHeight, padWidth) = padding
    }

    public var outHeight: Int { (height + 2 * padHeight - kernelHeight) / strideHeight + 1 }
    public var outWidth: Int { (width + 2 * padWidth - kernelWidth) / strideWidth + 1 }
    /// Output positions (rows of the im2col matrix).
    public var positions: Int { outHeight * outWidth }
    /// Columns of the im2col matrix: `channels * kh * kw`, ordered like PyTorch's `[out, in, kh, kw]`
    /// weight flattened to `[out, in * kh * kw]`.
    public var patchSize: Int { channels * kernelHeight * kernelWidth }
}

public enum Conv2D {
    /// Writes the im2col rows `rows` of one `channels x height x width` image into `columns`
    /// (`rows.count x patchSize`, dense).
    public static func im2col(_ x: UnsafePointer<Float>, geometry g: Conv2DGeometry, rows: Range<Int>,
                              into columns: UnsafeMutablePointer<Float>) {
        let kh = g.kernelHeight, kw = g.kernelWidth, ow = g.outWidth
        for (r, position) in rows.enumerated() {
            let oy = position / ow, ox = position % ow
            let dst = columns + r * g.patchSize
            let y0 = oy * g.strideHeight - g.padHeight, x0 = ox * g.strideWidth - g.padWidth
            for c in 0..<g.channels {
                let plane = x + c * g.height * g.width
                for i in 0..<kh {
                    let y = y0 + i
                    let out = dst + (c * kh + i) * kw
                    guard y >= 0 && y < g.height else {
                        out.update(repeating: 0, count: kw)
                        continue
                    }
                    let line = plane + y * g.width
                    if x0 >= 0 && x0 + kw <= g.width {
                        out.update(from: line + x0, count: kw)
                    } else {
                        for j in 0..<kw {
                            let xx = x0 + j
                            out[j] = xx >= 0 && xx < g.width ? line[xx] : 0
                        }
                    }
                }
            }
        }
    }

    /// Output rows `rows` of the convolution of one image: `y[r] = bias + W * im2col(x)[r]`
    /// (`weight` is `[outChannels, channels, kh, kw]`). `scratch` holds `rows.count * patchSize` floats.
    public static func forward(
        _ x: UnsafePointer<Float>, geometry g: Conv2DGeometry, rows: Range<Int>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outChannels: Int,
        scratch: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, ldy: Int? = nil
    ) {
        im2col(x, geometry: g, rows: rows, into: scratch)
        Gemm.linear(scratch, rows: rows.count, inFeatures: g.patchSize, weight: weight, bias: bias,
                    outFeatures: outChannels, into: y, ldy: ldy)
    }
}
