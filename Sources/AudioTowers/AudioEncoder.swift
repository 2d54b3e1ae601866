import Foundation
import ModelPackage
import Numerics

/// One window's outputs: the tower's pooled output, its projection, and the L2-normalised
/// embedding (`ClapModel.get_audio_features`).
public struct CLAPAudioOutput: Sendable, Equatable {
    /// `pooler_output` of `ClapAudioModel` (`hidden_size` values, 768 at paper size).
    public var pooled: [Float]
    /// `audio_projection(pooled)` = `ClapAudioModelWithProjection`'s `audio_embeds` (`projection_dim`).
    public var projected: [Float]
    /// `projected / max(||projected||, 1e-12)`: what the classifier reads.
    public var embedding: [Float]
}

/// CLAP's audio side: the HTSAT tower plus the projection MLP (`linear1` -> ReLU -> `linear2`) and
/// L2 normalisation, equal to transformers' `ClapModel.get_audio_features` for the unfused model.
///
/// Input: log-mel features of one 10 s window, `frames x num_mel_bins` float32 row-major (1001 x 64
/// at 48 kHz, as `ClapFeatureExtractor`'s `input_features[b, 0]`); any frame count from 1 to
/// `spec_size * freq_ratio` (1024) is accepted, shorter inputs are stretched as transformers does.
/// Several windows can be encoded in one call. Thread-safe: concurrent calls share the weights.
public final class CLAPAudioEncoder: Sendable {
    public let configuration: HTSATConfiguration
    let tower: HTSATTower
    /// Packed `[p, h]` and `[p, p]`.
    let linear1Weight: Linear, linear1Bias: Parameter
    let linear2Weight: Linear, linear2Bias: Parameter

    /// Reads every tensor by name and shape: `towerPrefix + "batch_norm.weight"`, ... and
    /// `projectionPrefix + "linear1.weight"`, ... (transformers' `ClapModel` state-dict names).
    /// Sets OpenBLAS to one thread per product: the tower parallelises over windows and columns itself.
    public init(configuration: HTSATConfiguration, parameters: ParameterSource,
                towerPrefix: String = "audio_model.audio_encoder.", projectionPrefix: String = "audio_projection.",
                cores: Int = CPUQuota.threads) throws {
        if let problem = configuration.validationError() {
            throw AudioTowerError(code: "invalid_configuration", message: "audio: \(problem)")
        }
        self.configuration = configuration
        tower = try HTSATTower(configuration: configuration, parameters: parameters, prefix: towerPrefix, cores: cores)
        let h = configuration.outputWidth, p = configuration.projectionDim
        let w1 = try parameters.parameter(projectionPrefix + "linear1.weight", shape: [p, h])
        linear1Bias = try parameters.parameter(projectionPrefix + "linear1.bias", shape: [p])
        let w2 = try parameters.parameter(projectionPrefix + "linear2.weight", shape: [p, p])
        linear2Bias = try parameters.parameter(projectionPrefix + "linear2.bias", shape: [p])
        linear1Weight = Linear(w1, precision: parameters.weightPrecision)
        linear2Weight = Linear(w2, precision: parameters.weightPrecision)
        for w in [w1, w2] { parameters.release(w) }
        BLAS.setThreads(1)
    }

    /// Builds the encoder from a model package: sizes from its `audio` section, tensors from its
    /// weights. Tensors of other stages are left for them; call `WeightStore.requireAllClaimed()`
    /// once every stage is loaded.
    public convenience init(package: ModelPackage) throws {
        let configuration = try package.section("audio", as: HTSATConfiguration.self)
        try self.init(configuration: configuration, parameters: package.weights)
    }

    /// The L2-normalised embedding of one window (`frames x num_mel_bins` values).
    public func embed(_ features: [Float]) throws -> [Float] {
        try encode([features])[0].embedding
    }

    /// L2-normalised embeddings of several windows.
    public func embed(batch: [[Float]]) throws -> [[Float]] {
        try encode(batch).map(\.embedding)
    }

    /// Pooled output, projection and embedding of each window.
    public func encode(_ batch: [[Float]]) throws -> [CLAPAudioOutput] {
        try encode(batch, observer: nil)
    }

    func encode(_ batch: [[Float]], observer: ((String, UnsafeBufferPointer<Float>) -> Void)?) throws -> [CLAPAudioOutput] {
        let c = configuration, mel = c.numMelBins
        var frames: [Int] = []
        for (b, item) in batch.enumerated() {
            frames.append(try AudioTowerError.frames(of: item, window: b, melBins: mel, maxFrames: c.specFrames,
                                                     limit: "the spectrogram image"))
        }
        guard !batch.isEmpty else { return [] }

        // Keep every item's storage alive and addressable for the whole forward pass.
        let joined = FloatStorage(count: batch.reduce(0) { $0 + $1.count })
        var pointers: [UnsafePointer<Float>] = []
        var offset = 0
        for item in batch {
            item.withUnsafeBufferPointer { (joined.pointer + offset).update(from: $0.baseAddress!, count: $0.count) }
            pointers.append(UnsafePointer(joined.pointer + offset))
            offset += item.count
        }
        let pooled = withExtendedLifetime(joined) { tower.forward(pointers, frames: frames, observer: observer) }
        return project(pooled, items: batch.count)
    }

    /// Projection MLP and normalisation of `items` pooled rows.
    func project(_ pooled: [Float], items: Int) -> [CLAPAudioOutput] {
        let h = configuration.outputWidth, p = configuration.projectionDim
        var hidden = [Float](repeating: 0, count: items * p)
        var projected = [Float](repeating: 0, count: items * p)
        pooled.withUnsafeBufferPointer { x in
            hidden.withUnsafeMutableBufferPointer { hb in
                linear1Weight.apply(x.baseAddress!, rows: items, bias: linear1Bias.pointer, into: hb.baseAddress!)
                Activation.relu(hb.baseAddress!, count: items * p)
                projected.withUnsafeMutableBufferPointer { pb in
                    linear2Weight.apply(hb.baseAddress!, rows: items, bias: linear2Bias.pointer,
                                        into: pb.baseAddress!)
                }
            }
        }
        var embeddings = projected
        embeddings.withUnsafeMutableBufferPointer { Normalization.l2Normalize($0.baseAddress!, rows: items, width: p) }
        return (0..<items).map { b in
            CLAPAudioOutput(pooled: Array(pooled[(b * h)..<((b + 1) * h)]),
                            projected: Array(projected[(b * p)..<((b + 1) * p)]),
                            embedding: Array(embeddings[(b * p)..<((b + 1) * p)]))
        }
    }
}
