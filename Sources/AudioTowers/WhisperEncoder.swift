import Foundation
import ModelPackage
import Numerics
import TransformerLayers

/// Whisper's audio encoder (transformers' `WhisperEncoder`): log-mel frames in, hidden states out.
///
///     x = gelu(conv1(mel))                 kernel 3, padding 1
///     x = gelu(conv2(x))                   kernel 3, stride 2, padding 1
///     x = x + embed_positions[0 ..< tokens]
///     x = layer_i(x)                       pre-LN transformer layers
///     out = layer_norm(x)
///
/// Unlike transformers, which insists on 3000 frames (30 s, zero-padded), any number of frames
/// from 1 to `2 * max_source_positions` is encoded at its own length: the positional table is
/// sliced to the clip's tokens and padding is never computed. The hidden states are transformers'
/// `hidden_states` (the stem's output, then each layer's, the last after the final norm).
///
/// The convolutions run as products of frame triples (im2col) against weights permuted at load;
/// the layers are ``TransformerEncoderLayer`` in its pre-LN arrangement, cut into parts that run
/// concurrently. Thread-safe: concurrent calls share the weights.
public final class WhisperEncoder: Sendable {
    public let configuration: WhisperEncoderConfiguration
    public let threads: Int
    /// `[d, 3 * mels]` and `[d, 3 * d]`: column `k * in + i` holds PyTorch's `weight[:, i, k]`.
    let conv1: Linear
    let conv2: Linear
    let positions: Parameter
    let layers: [TransformerEncoderLayer]
    let finalNorm: (weight: Parameter, bias: Parameter)

    /// Reads every tensor by its transformers name under `prefix` (`conv1.weight`, ...,
    /// `layers.N.self_attn.q_proj.weight`, ..., `layer_norm.bias`).
    public init(configuration: WhisperEncoderConfiguration, parameters: ParameterSource,
                prefix: String = "audio_model.encoder.", threads: Int? = nil) throws {
        if let problem = configuration.validationError() {
            throw AudioTowerError(code: "invalid_configuration", message: "audio.encoder: \(problem)")
        }
        let c = configuration, d = c.dModel, mels = c.numMelBins
        self.configuration = c
        let threads = max(1, threads ?? CPUQuota.threads)
        self.threads = threads
        func p(_ name: String, _ shape: [Int]) throws -> Parameter {
            try parameters.parameter(prefix + name, shape: shape)
        }
        func convolution(_ name: String, inChannels: Int) throws -> Linear {
            let w = try p("\(name).weight", [d, inChannels, 3]), b = try p("\(name).bias", [d])
            var permuted = [Float](repeating: 0, count: d * 3 * inChannels)
            for o in 0..<d {
                for i in 0..<inChannels {
                    for k in 0..<3 { permuted[o * 3 * inChannels + k * inChannels + i] = w.pointer[(o * inChannels + i) * 3 + k] }
                }
            }
            let linear = permuted.withUnsafeBufferPointer {
                Linear(weight: $0.baseAddress!, outFeatures: d, inFeatures: 3 * inChannels, bias: b.pointer,
                       backend: .packed, precision: parameters.weightPrecision)
            }
            parameters.release(w)
            parameters.release(b)
            return linear
        }
        conv1 = try convolution("conv1", inChannels: mels)
        conv2 = try convolution("conv2", inChannels: d)
        positions = try p("embed_positions.weight", [c.maxSourcePositions, d])
        layers = try (0..<c.layers).map {
            try TransformerEncoderLayer(parameters: parameters, prefix: "\(prefix)layers.\($0).", hidden: d,
                                        heads: c.heads, intermediate: c.ffnDim, eps: Float(c.layerNormEps),
                                        parts: threads, backend: .packed, arrangement: .preNorm, names: .whisper)
        }
        finalNorm = (try p("layer_norm.weight", [d]), try p("layer_norm.bias", [d]))
        BLAS.setThreads(1)
    }

    /// Tokens of each hidden state for `frames` input frames.
    public func tokens(frames: Int) -> Int { WhisperEncoderConfiguration.tokens(frames: frames) }

    /// Checks one window's features (`frames x num_mel_bins`, frame-major) and returns its frame count.
    func frames(of features: [Float], item: Int) throws -> Int {
        try AudioTowerError.frames(of: features, window: item, melBins: configuration.numMelBins,
                                   maxFrames: configuration.maxFrames, limit: "the positional table")
    }

    /// Every hidden state of one window: `layers + 1` arrays of `tokens x d_model` values.
    public func hiddenStates(_ features: [Float]) throws -> [[Float]] {
        var states: [[Float]] = []
        let d = configuration.dModel
        try forward([features]) { _, x, sequences in
            states.append(Array(UnsafeBufferPointer(start: x, count: (sequences.last?.upperBound ?? 0) * d)))
        }
        return states
    }

    /// Runs the encoder over several windows stacked as sequences of rows and calls
    /// `visit(state, rows, sequences)` with each hidden state (`state` 0 = the stem's output,
    /// `layers` = the final norm's output; `rows` holds `d_model` values per token, valid
    /// only during the call).
    func forward(_ batch: [[Float]],
                 visit: (Int, UnsafePointer<Float>, [Range<Int>]) -> Void) throws {
        let c = configuration, d = c.dModel, mels = c.numMelBins
        let frameCounts = try batch.enumerated().map { try frames(of: $0.element, item: $0.offset) }
        var sequences: [Range<Int>] = []
        var rows = 0
        for t in frameCounts {
            let n = tokens(frames: t)
            sequences.append(rows..<(rows + n))
            rows += n
        }
        guard rows > 0 else { return }
        let x = UnsafeMutablePointer<Float>.allocate(capacity: rows * d)
        defer { x.deallocate() }
        // The stem, window by window.
        for (b, features) in batch.enumerated() {
            let t = frameCounts[b], n = sequences[b].count
            let hidden = UnsafeMutablePointer<Float>.allocate(capacity: t * d)
            defer { hidden.deallocate() }
            features.withUnsafeBufferPointer { mel in
                convolve(conv1, input: mel.baseAddress!, steps: t, channels: mels, stride: 1, outputs: t, into: hidden)
            }
            let out = x + sequences[b].lowerBound * d
            convolve(conv2, input: hidden, steps: t, channels: d, stride: 2, outputs: n, into: out)
            for r in 0..<n {
                let row = out + r * d, pos = positions.pointer + r * d
                for j in 0..<d { row[j] += pos[j] }
            }
        }
        visit(0, x, sequences)
        if let first = layers.first {
            let longest = sequences.map(\.count).max() ?? 0
            let stride = TransformerEncoderLayer.scratchPerPart(
                rows: rows, sequences: sequences.count, hidden: d, heads: c.heads, intermediate: c.ffnDim,
                parts: first.parts.count, longest: longest)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: stride * first.parts.count)
            defer { scratch.deallocate() }
            for (l, layer) in layers.enumerated() {
                layer.forward(x, sequences: sequences, scratch: scratch, scratchStride: stride)
                if l == layers.count - 1 {
                    Normalization.layerNorm(x, ldx: d, rows: rows, width: d, weight: finalNorm.weight.pointer,
                                             bias: finalNorm.bias.pointer, eps: Float(c.layerNormEps), into: x, ldy: d)
                }
                visit(l + 1, x, sequences)
            }
        }
    }

    /// `gelu(conv(input))` for a kernel-3, padding-1 convolution along time: output step s reads
    /// input steps `stride * s - 1 ... stride * s + 1` (zeros outside), gathered into one row of
    /// `3 * channels` values, and the rows are multiplied by the permuted weight, split over the cores.
    private func convolve(_ linear: Linear, input: UnsafePointer<Float>, steps: Int, channels: Int, stride: Int,
                          outputs: Int, into out: UnsafeMutablePointer<Float>) {
        let width = 3 * channels
        let gathered = UnsafeMutablePointer<Float>.allocate(capacity: outputs * width)
        defer { gathered.deallocate() }
        for s in 0..<outputs {
            let row = gathered + s * width
            for k in 0..<3 {
                let source = stride * s - 1 + k
                if source >= 0 && source < steps {
                    (row + k * channels).update(from: input + source * channels, count: channels)
                } else {
                    (row + k * channels).update(repeating: 0, count: channels)
                }
            }
        }
        let d = linear.outFeatures
        let chunks = min(threads, max(1, outputs / 8))
        Parallel.forEach(chunks) { part in
            let lo = part * outputs / chunks, hi = (part + 1) * outputs / chunks
            linear.apply(gathered + lo * width, rows: hi - lo, into: out + lo * d, epilogue: .gelu)
        }
    }
}
