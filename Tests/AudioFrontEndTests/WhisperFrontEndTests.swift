import Foundation
import ModelPackage
import Testing
@testable import AudioFrontEnd
import TestSupport

/// Whisper's log-mel (`front_end: whisper`) against transformers' `WhisperFeatureExtractor`
/// (`_np_extract_fbank_features` of the unpadded clip; Training/fixtures/make_whisper_fixtures.py):
/// the clips are decoded by libsndfile as the service decodes them.
@Suite struct WhisperFrontEndTests {
    static let directory = AudioFixtures.directory.appendingPathComponent("whisper")
    /// Shared with the CLAP tests (Tests/SharedFixtures/whisper-clips).
    static let clips = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SharedFixtures/whisper-clips").standardized

    static func frontEnd() throws -> AudioFrontEnd {
        let json = Data(#"{"front_end": "whisper"}"#.utf8)
        return try AudioFrontEnd(configuration: JSONDecoder().decode(AudioFrontEndConfiguration.self, from: json))
    }

    @Test(arguments: ["tones_gap", "chirp"])
    func matchesWhisperFeatureExtractor(clip: String) throws {
        let reference = try WeightStore(url: Self.directory.appendingPathComponent("front_end.safetensors"))
        let expected = try reference.tensor("mel.\(clip)")
        let mels = expected.shape[0], frames = expected.shape[1]
        let frontEnd = try Self.frontEnd()
        let features = try frontEnd.features(encoded: Data(contentsOf: Self.clips.appendingPathComponent("\(clip).wav")))
        #expect(features.windows.count == 1)
        let window = try #require(features.windows.first).features
        #expect(window.melCount == mels && window.frameCount == frames, "\(window.frameCount) x \(window.melCount), expected \(frames) x \(mels)")
        guard window.frameCount == frames else { return }
        let values = expected.values
        var transposed = [Float](repeating: 0, count: values.count)
        for m in 0..<mels { for t in 0..<frames { transposed[t * mels + m] = values[m * frames + t] } }
        let err = maxAbsDiff(window.values, transposed)
        #expect(err <= 1e-4, "\(clip): max abs \(err)")
    }

    @Test func defaultsAreWhisperFeatureExtractors() throws {
        let c = try Self.frontEnd().configuration
        #expect(c == .whisper)
        #expect(c.sampleRate == 16_000 && c.nFFT == 400 && c.hopLength == 160 && c.nMels == 80)
        #expect(c.fMin == 0 && c.fMax == 8_000 && c.maxLengthSeconds == 30 && c.padding == .none)
        #expect(c.framesPerWindow == 3000)
        // A key given explicitly still wins over the kind's default.
        let custom = try JSONDecoder().decode(AudioFrontEndConfiguration.self,
                                              from: Data(#"{"front_end": "whisper", "n_mels": 128}"#.utf8))
        #expect(custom.nMels == 128 && custom.nFFT == 400)
        // The CLAP default is unchanged when the key is absent.
        #expect(try JSONDecoder().decode(AudioFrontEndConfiguration.self, from: Data("{}".utf8)) == .clapUnfused)
    }

    /// Unpadded windows: a short clip keeps its own frames (samples / hop, the last STFT frame
    /// dropped); a long one is cut into 30 s windows, a tail under `min_tail_s` dropped.
    @Test func windowsAreUnpadded() throws {
        let frontEnd = try Self.frontEnd()
        var g = SplitMix64(seed: 7)
        let short = (0..<8_000).map { _ in g.uniform() * 0.1 }
        let one = try frontEnd.features(samples: short, sampleRate: 16_000)
        #expect(one.windows.count == 1 && one.windows[0].features.frameCount == 50)
        let long = (0..<(16_000 * 65)).map { _ in g.uniform() * 0.1 }
        let many = try frontEnd.features(samples: long, sampleRate: 16_000)
        #expect(many.windows.map(\.features.frameCount) == [3000, 3000, 500])
        // 8 kHz input is resampled to 16 kHz first.
        let narrow = try frontEnd.features(samples: Array(short.prefix(4_000)), sampleRate: 8_000)
        #expect(narrow.windows[0].features.frameCount == 50)
        // Fewer samples than a hop give no frame: the encoder refuses such a clip.
        #expect(try frontEnd.features(samples: Array(short.prefix(100)), sampleRate: 16_000).windows[0].features.frameCount == 0)
    }

    /// The last STFT frame is dropped and the dynamic range clamp is over the whole window.
    @Test func clampAndScale() throws {
        let frontEnd = try Self.frontEnd()
        var samples = [Float](repeating: 0, count: 3_200)
        for i in 0..<1_600 { samples[i] = sinf(Float(i) * 0.3) * 0.5 }  // tone, then digital silence
        let mel = try frontEnd.features(samples: samples, sampleRate: 16_000).windows[0].features
        let peak = try #require(mel.values.max()), low = try #require(mel.values.min())
        #expect(mel.frameCount == 20)
        #expect(abs((peak * 4 - 4) - (low * 4 - 4) - 8) < 1e-4, "the floor sits 8 below the peak (log10)")
    }
}
