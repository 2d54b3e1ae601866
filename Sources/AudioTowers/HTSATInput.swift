import Numerics

/// The spectrogram-to-image front of HTSAT, as transformers' `ClapAudioEncoder.forward` up to the
/// patch embedding: batch norm over the mel bins (running statistics), bicubic interpolation of the
/// time axis to `spec_frames` (`align_corners=True`, only when shorter), then `reshape_mel2img`,
/// which cuts the `spec_frames x mel` spectrogram into `freq_ratio` consecutive time bands and
/// stacks them vertically: `image[k * mel + f][c] = spectrogram[k * width + c][f]`.
struct HTSATImageBuilder: Sendable {
    let melBins: Int
    let specFrames: Int
    let freqRatio: Int
    let imageWidth: Int
    /// Batch norm in PyTorch's inference form: `y = x * scale + shift` per mel bin.
    let scale: [Float]
    let shift: [Float]

    init(configuration c: HTSATConfiguration, weight: Parameter, bias: Parameter, mean: Parameter, variance: Parameter) {
        melBins = c.numMelBins
        specFrames = c.specFrames
        freqRatio = c.freqRatio
        imageWidth = c.imageWidth
        var scale = [Float](repeating: 0, count: c.numMelBins)
        var shift = [Float](repeating: 0, count: c.numMelBins)
        for f in 0..<c.numMelBins {
            // BatchNorm2d eps = 1e-5; PyTorch folds invstd * weight and bias - mean * that.
            let invstd = 1 / (variance.pointer[f] + 1e-5).squareRoot()
            scale[f] = invstd * weight.pointer[f]
            shift[f] = bias.pointer[f] - mean.pointer[f] * invstd * weight.pointer[f]
        }
        self.scale = scale
        self.shift = shift
    }

    /// Source rows and weights of bicubic interpolation with `align_corners=True` from `input` to
    /// `output` samples, computed as PyTorch's CPU kernel does (float32, A = -0.75, clamped indices).
    static func bicubicTaps(input: Int, output: Int) -> (indices: [Int], weights: [Float]) {
        let a: Float = -0.75
        func conv1(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func conv2(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        let scale: Float = output > 1 ? Float(input - 1) / Float(output - 1) : 0
        var indices = [Int](repeating: 0, count: 4 * output)
        var weights = [Float](repeating: 0, count: 4 * output)
        for i in 0..<output {
            let real = scale * Float(i)
            let floorIndex = Int(real.rounded(.down))
            let t = real - Float(floorIndex)
            weights[4 * i] = conv2(t + 1)
            weights[4 * i + 1] = conv1(t)
            weights[4 * i + 2] = conv1(1 - t)
            weights[4 * i + 3] = conv2(1 - t + 1)
            for j in 0..<4 { indices[4 * i + j] = min(max(floorIndex - 1 + j, 0), input - 1) }
        }
        return (indices, weights)
    }

    /// Builds the `(mel * freq_ratio) x image_width` image of one item from `frames x mel` features.
    /// `scratch` holds `2 * spec_frames * mel` floats.
    func image(features: UnsafePointer<Float>, frames: Int, scratch: UnsafeMutablePointer<Float>,
               into image: UnsafeMutablePointer<Float>) {
        let f = melBins
        let normed = scratch
        for t in 0..<frames {
            let src = features + t * f, dst = normed + t * f
            for j in 0..<f { dst[j] = src[j] * scale[j] + shift[j] }
        }
        var spectrogram = UnsafePointer(normed)
        if frames < specFrames {
            let stretched = scratch + specFrames * f
            let (indices, weights) = Self.bicubicTaps(input: frames, output: specFrames)
            for t in 0..<specFrames {
                let r0 = normed + indices[4 * t] * f, r1 = normed + indices[4 * t + 1] * f
                let r2 = normed + indices[4 * t + 2] * f, r3 = normed + indices[4 * t + 3] * f
                let w0 = weights[4 * t], w1 = weights[4 * t + 1], w2 = weights[4 * t + 2], w3 = weights[4 * t + 3]
                let dst = stretched + t * f
                // Summed in PyTorch's order: ((x0 w0 + x1 w1) + x2 w2) + x3 w3.
                for j in 0..<f { dst[j] = r0[j] * w0 + r1[j] * w1 + r2[j] * w2 + r3[j] * w3 }
            }
            spectrogram = UnsafePointer(stretched)
        }
        // Fold: band k holds frames [k * width, (k + 1) * width), transposed to mel rows.
        let w = imageWidth
        for k in 0..<freqRatio {
            for c in 0..<w {
                let src = spectrogram + (k * w + c) * f
                let dst = image + (k * f) * w + c
                for j in 0..<f { dst[j * w] = src[j] }
            }
        }
    }
}
