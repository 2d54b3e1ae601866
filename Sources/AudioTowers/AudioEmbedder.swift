import AudioFrontEnd
import Foundation
import ModelPackage
import Numerics

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

    /// Windows the tower takes in one call when clips are batched: the activations of a call
    /// grow with its windows, so batching short clips (one window each) never holds more than a
    /// long clip alone would (a clip of more windows still runs whole, as `embed(audio:)`).
    public static let batchWindows = 4

    /// The embeddings of several encoded clips (the turns of different sessions taken together):
    /// each decoded on its own, then their windows through the tower in batches of up to
    /// `batchWindows` (whole clips), so its products have more rows. Each clip's result is what
    /// `embed(audio:)` gives for it (a clip's own error stays its own; if a batch fails, each of
    /// its clips is embedded alone).
    public func embed(audios: [Data]) -> [Result<[Float], any Error>] {
        var results: [Result<[Float], any Error>] = []
        var windows: [[Float]] = []
        var owners: [(clip: Int, windows: Range<Int>)] = []
        for (i, data) in audios.enumerated() {
            do {
                let features = try usable(frontEnd.features(encoded: data))
                owners.append((i, windows.count..<(windows.count + features.windows.count)))
                windows += features.windows.map(\.features.values)
                results.append(.success([]))
            } catch {
                results.append(.failure(error))
            }
        }
        // Consecutive clips grouped while their windows fit in one call.
        var groups: [[(clip: Int, windows: Range<Int>)]] = []
        for owner in owners {
            if let last = groups.last, let first = last.first,
               owner.windows.upperBound - first.windows.lowerBound <= Self.batchWindows {
                groups[groups.count - 1].append(owner)
            } else {
                groups.append([owner])
            }
        }
        for group in groups {
            guard let first = group.first, let last = group.last else { continue }
            let span = first.windows.lowerBound..<last.windows.upperBound
            guard group.count > 1, let embedded = try? tower.embed(batch: Array(windows[span])) else {
                for owner in group {
                    results[owner.clip] = Result { try mean(tower.embed(batch: Array(windows[owner.windows]))) }
                }
                continue
            }
            for owner in group {
                let local = (owner.windows.lowerBound - span.lowerBound)..<(owner.windows.upperBound - span.lowerBound)
                results[owner.clip] = Result { try mean(Array(embedded[local])) }
            }
        }
        return results
    }

    func embed(_ features: AudioFeatures) throws -> [Float] {
        try mean(tower.embed(batch: usable(features).windows.map(\.features.values)))
    }

    /// `features`, unless a window has no frame: unpadded windows (Whisper) of a clip shorter
    /// than one hop have nothing to encode.
    func usable(_ features: AudioFeatures) throws -> AudioFeatures {
        guard features.windows.allSatisfy({ $0.features.frameCount > 0 }) else {
            throw AudioTowerError(code: "audio_too_short", message:
                "the clip is shorter than one analysis frame (\(frontEnd.configuration.hopLength) samples at \(frontEnd.configuration.sampleRate) Hz)",
                kind: .invalidInput)
        }
        return features
    }

    /// A clip's embedding from its windows': their mean, renormalised (one window: itself).
    func mean(_ windows: [[Float]]) throws -> [Float] {
        guard var mean = windows.first else {
            throw AudioTowerError(code: "empty_audio", message: "the clip has no audio window")
        }
        if windows.count > 1 {
            for w in windows.dropFirst() { for i in mean.indices { mean[i] += w[i] } }
            mean = Normalization.l2Normalized(mean)
        }
        return mean
    }
}
