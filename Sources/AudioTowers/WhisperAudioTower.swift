import Foundation
import ModelPackage
import Numerics
import TransformerLayers

/// The audio tower of a package whose `audio.tower` is `whisper` (``WhisperTowerConfiguration``):
/// a frozen Whisper encoder, per-state statistics over time, a learned softmax mix of the
/// states, and the projection MLP to the shared embedding space, L2-normalised.
///
///     s_l    = [mean_t h_l, sqrt(var_t h_l + eps)]     l = 0 ... layers (hidden states)
///     z_l    = (s_l - state_mean_l) * state_scale_l    fixed standardisation (the training set's)
///     pooled = sum_l softmax(layer_weights)_l * z_l
///     e      = normalize(linear2(relu(linear1(pooled))))
///
/// Tensors: the encoder under `audio_model.encoder.`, the mixing logits
/// `audio_model.layer_weights` (`[layers + 1]`), the standardisation `audio_model.state_mean` and
/// `audio_model.state_scale` (`[layers + 1, pooled width]`; the states' scales differ by orders of
/// magnitude, so the mix weighs standardised states), and `audio_projection.linear1.*`, `linear2.*`.
/// Thread-safe.
public final class WhisperAudioTower: AudioTower {
    public let configuration: WhisperTowerConfiguration
    public let encoder: WhisperEncoder
    /// softmax of the mixing logits.
    public let stateWeights: [Float]
    let stateMean: [Float]
    let stateScale: [Float]
    let linear1: Linear
    let linear2: Linear

    public init(configuration: WhisperTowerConfiguration, parameters: ParameterSource,
                prefix: String = "audio_model.", projectionPrefix: String = "audio_projection.",
                threads: Int? = nil) throws {
        if let problem = configuration.validationError() {
            throw AudioTowerError(code: "invalid_configuration", message: "audio: \(problem)")
        }
        self.configuration = configuration
        encoder = try WhisperEncoder(configuration: configuration.encoder, parameters: parameters,
                                     prefix: prefix + "encoder.", threads: threads)
        let logits = try parameters.parameter(prefix + "layer_weights", shape: [configuration.states]).values
        guard logits.allSatisfy(\.isFinite) else {
            throw AudioTowerError(code: "invalid_configuration", message: "\(prefix)layer_weights: non-finite value")
        }
        let top = logits.max() ?? 0
        let e = logits.map { Foundation.exp(Double($0 - top)) }
        let total = e.reduce(0, +)
        stateWeights = e.map { Float($0 / total) }
        let p = configuration.projection, width = configuration.pooledWidth
        stateMean = try parameters.parameter(prefix + "state_mean", shape: [configuration.states, width]).values
        stateScale = try parameters.parameter(prefix + "state_scale", shape: [configuration.states, width]).values
        guard (stateMean + stateScale).allSatisfy(\.isFinite) else {
            throw AudioTowerError(code: "invalid_configuration", message: "\(prefix)state_mean/state_scale: non-finite value")
        }
        let w1 = try parameters.parameter(projectionPrefix + "linear1.weight", shape: [p.hiddenSize, width])
        let b1 = try parameters.parameter(projectionPrefix + "linear1.bias", shape: [p.hiddenSize])
        let w2 = try parameters.parameter(projectionPrefix + "linear2.weight", shape: [p.outputSize, p.hiddenSize])
        let b2 = try parameters.parameter(projectionPrefix + "linear2.bias", shape: [p.outputSize])
        linear1 = Linear(w1, bias: b1, backend: .packed, precision: parameters.weightPrecision)
        linear2 = Linear(w2, bias: b2, backend: .packed, precision: parameters.weightPrecision)
        for used in [w1, b1, w2, b2] { parameters.release(used) }
    }

    /// Builds the tower from a package's `audio` section and weights.
    public convenience init(package: ModelPackage, threads: Int? = nil) throws {
        let configuration = try package.section("audio", as: WhisperTowerConfiguration.self)
        try self.init(configuration: configuration, parameters: package.weights, threads: threads)
    }

    public var melBins: Int { configuration.encoder.numMelBins }
    public var embeddingSize: Int { configuration.projection.outputSize }

    /// The pooled statistics of every hidden state of each window: `layers + 1` rows of
    /// `pooledWidth` values per window (mean, then std when pooled).
    public func stateStatistics(batch: [[Float]]) throws -> [[[Float]]] {
        let c = configuration, d = c.encoder.dModel, width = c.pooledWidth
        let withStd = c.pooling.includesStd, eps = c.pooling.eps
        var out = [[[Float]]](repeating: [], count: batch.count)
        try encoder.forward(batch) { _, x, sequences in
            for (b, range) in sequences.enumerated() {
                var mean = [Double](repeating: 0, count: d), square = [Double](repeating: 0, count: d)
                for r in range {
                    let row = x + r * d
                    for j in 0..<d { mean[j] += Double(row[j]) }
                }
                let n = Double(range.count)
                for j in 0..<d { mean[j] /= n }
                var stats = [Float](repeating: 0, count: width)
                for j in 0..<d { stats[j] = Float(mean[j]) }
                if withStd {
                    for r in range {
                        let row = x + r * d
                        for j in 0..<d {
                            let v = Double(row[j]) - mean[j]
                            square[j] += v * v
                        }
                    }
                    for j in 0..<d { stats[d + j] = Float((square[j] / n + eps).squareRoot()) }
                }
                out[b].append(stats)
            }
        }
        return out
    }

    public func embed(batch: [[Float]]) throws -> [[Float]] {
        guard !batch.isEmpty else { return [] }
        let statistics = try stateStatistics(batch: batch)
        let c = configuration, width = c.pooledWidth, p = c.projection
        var pooled = [Float](repeating: 0, count: batch.count * width)
        for (b, states) in statistics.enumerated() {
            for (l, stats) in states.enumerated() {
                let w = stateWeights[l], o = l * width
                for j in 0..<width { pooled[b * width + j] += w * ((stats[j] - stateMean[o + j]) * stateScale[o + j]) }
            }
        }
        var hidden = [Float](repeating: 0, count: batch.count * p.hiddenSize)
        var out = [Float](repeating: 0, count: batch.count * p.outputSize)
        pooled.withUnsafeBufferPointer { x in
            hidden.withUnsafeMutableBufferPointer { h in
                linear1.apply(x.baseAddress!, rows: batch.count, into: h.baseAddress!, epilogue: .relu)
                out.withUnsafeMutableBufferPointer { o in
                    linear2.apply(h.baseAddress!, rows: batch.count, into: o.baseAddress!)
                }
            }
        }
        out.withUnsafeMutableBufferPointer {
            Normalization.l2Normalize($0.baseAddress!, rows: batch.count, width: p.outputSize)
        }
        return (0..<batch.count).map { Array(out[($0 * p.outputSize)..<(($0 + 1) * p.outputSize)]) }
    }
}
