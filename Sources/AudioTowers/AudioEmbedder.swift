import AudioFrontEnd
import Foundation
import ModelPackage

/// The audio half of the encoder: an encoded clip (or samples at any rate) to one L2-normalised
/// embedding.
///
/// decode -> mono -> resample -> log-mel windows (the front end a package's `audio` section
/// describes: CLAP's or Whisper's log-mel) -> the audio tower it names (HTSAT + projection, or
/// Whisper + pooling + projection) per window -> mean of the window embeddings, renormalised (a
/// clip longer than the window is embedded window by window, deterministically). Errors are the
/// front end's `AudioError`s and ``AudioTowerError``s, each with its stable code and kind.
/// Thread-safe.
public final class AudioEmbedder: Sendable {
    public let frontEnd: AudioFrontEnd
    public let tower: any AudioTower

    public init(frontEnd: AudioFrontEnd, tower: any AudioTower) throws {
        guard frontEnd.configuration.nMels == tower.melBins else {
            throw AudioTowerError(code: "invalid_configuration",
                                  message: "audio: n_mels \(frontEnd.configuration.nMels) != the tower's mel bins \(tower.melBins)")
        }
        self.frontEnd = frontEnd
        self.tower = tower
    }

    /// The front end and the tower of a package's `audio` section (front-end keys, `tower` and
    /// the tower's sizes). `maxAudioSeconds`: longer clips are refused (`audio_too_long`) from
    /// their header.
    public convenience init(package: ModelPackage, maxAudioSeconds: Double = 120) throws {
        let frontEnd = try AudioFrontEnd(configuration: package.section("audio", as: AudioFrontEndConfiguration.self),
                                         decodingOptions: AudioDecodingOptions(maxDurationSeconds: maxAudioSeconds))
        try self.init(frontEnd: frontEnd, tower: loadAudioTower(package: package))
    }

    /// Size of the embedding.
    public var dimension: Int { tower.embeddingSize }

    /// The embedding of an encoded clip (WAV, FLAC, ...).
    public func embed(audio data: Data) throws -> [Float] {
        try embed(frontEnd.features(encoded: data))
    }

    /// An upper bound of an encoded clip's duration in seconds from its header alone (nothing is
    /// decoded): the length the header states, or the per-clip limit when it states none (a
    /// longer clip is refused while decoding). Throws the decoder's `AudioError`s.
    public func durationBound(audio data: Data) throws -> Double {
        try frontEnd.decoder.probe(data).durationSeconds ?? frontEnd.decoder.options.maxDurationSeconds
    }

    /// The embedding of a clip given as samples at any rate.
    public func embed(samples: [Float], sampleRate: Int) throws -> [Float] {
        try embed(frontEnd.features(samples: samples, sampleRate: sampleRate))
    }

    func embed(_ features: AudioFeatures) throws -> [Float] {
        // Unpadded windows (Whisper) of a clip shorter than one hop have no frame to encode.
        guard features.windows.allSatisfy({ $0.features.frameCount > 0 }) else {
            throw AudioTowerError(code: "audio_too_short", message:
                "the clip is shorter than one analysis frame (\(frontEnd.configuration.hopLength) samples at \(frontEnd.configuration.sampleRate) Hz)",
                kind: .invalidInput)
        }
        let windows = try tower.embed(batch: features.windows.map(\.features.values))
        guard var mean = windows.first else {
            throw AudioTowerError(code: "empty_audio", message: "the clip has no audio window")
        }
        if windows.count > 1 {
            for w in windows.dropFirst() { for i in mean.indices { mean[i] += w[i] } }
            let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 0 { mean = mean.map { $0 / norm } }
        }
        return mean
    }
}
