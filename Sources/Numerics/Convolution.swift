/// Causal depthwise 1-D convolution along time, as xLSTM's `CausalConv1d`
/// (`nn.Conv1d(groups=channels, padding=k-1)` with the trailing `k-1` outputs dropped).
public enum CausalConv1D {
    /// `y[t, c] = bias[c] + sum_j weight[c, j] * x[t - (k-1) + j, c]`, zero before `t = 0`.
    ///
    /// - Parameters:
    ///   - x: `steps x channels` input with row stride `ldx`.
    ///   - weight: `channels x kernel` (PyTorch's `[C, 1, K]`).
    ///   - y: dense `steps x channels` output (must not alias `x`).
    public static func depthwise(
        _ x: UnsafePointer<Float>, steps: Int, channels: Int, ldx: Int? = nil,
        weight: UnsafePointer<Float>, kernel: Int, bias: UnsafePointer<Float>?,
        into y: UnsafeMutablePointer<Float>
    ) {
        let ldx = ldx ?? channels
        for t in 0..<steps {
            let out = y + t * channels
            if let bias { out.update(from: bias, count: channels) } else { out.update(repeating: 0, count: channels) }
            for j in 0..<kernel {
                let src = t - (kernel - 1) + j
                guard src >= 0 else { continue }
                let row = x + src * ldx
                for c in 0..<channels { out[c] += weight[c * kernel + j] * row[c] }
            }
        }
    }
}
