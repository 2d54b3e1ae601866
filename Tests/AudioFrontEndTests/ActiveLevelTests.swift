import Foundation
import Testing
@testable import AudioFrontEnd

/// `active_level_dbfs`: properties that hold whatever the implementation (the reference-parity
/// fixtures compare it with the training pipeline's numpy version).
@Suite struct ActiveLevelTests {
    static let config = AudioFrontEndConfiguration(sampleRate: 16_000, nFFT: 512, hopLength: 320, fMin: 50,
                                                   fMax: 8_000, maxLengthSeconds: 5, activeLevelDBFS: -26)

    /// 1.5 s of a vowel-like tone with 0.5 s of silence before and after.
    static func speechLike(amplitude: Float) -> [Float] {
        (0..<40_000).map { i in
            guard (8_000..<32_000).contains(i) else { return 0 }
            let t = Float(i) / 16_000
            return amplitude * (sin(2 * .pi * 180 * t) + 0.5 * sin(2 * .pi * 900 * t) + 0.2 * sin(2 * .pi * 2_700 * t))
        }
    }

    @Test func levelIsTheRMSOfTheLoudestHalfOfTheFrames() {
        // 4 frames of 320 samples at constant amplitudes 0.1, 0.4, 0.2, 0.0: the loudest two are 0.4 and 0.2.
        let x = [Float](repeating: 0.1, count: 320) + [Float](repeating: -0.4, count: 320)
            + [Float](repeating: 0.2, count: 320) + [Float](repeating: 0, count: 320)
        let level = ActiveLevel.level(x, sampleRate: 16_000)
        #expect(abs(level - ((0.16 + 0.04) / 2.0).squareRoot()) < 1e-7)
        // 5 frames: the loudest three; the 100-sample tail after the last whole frame is ignored.
        let y = x + [Float](repeating: 0.3, count: 320) + [Float](repeating: 1, count: 100)
        #expect(abs(ActiveLevel.level(y, sampleRate: 16_000) - ((0.16 + 0.09 + 0.04) / 3.0).squareRoot()) < 1e-7)
        // Shorter than one frame: the RMS of the whole clip.
        #expect(abs(ActiveLevel.level([0.3, -0.4], sampleRate: 16_000) - (0.125).squareRoot()) < 1e-7)
        #expect(ActiveLevel.level([], sampleRate: 16_000) == 0)
    }

    @Test func normalisedClipHasTheTargetLevel() {
        for target in [-40.0, -26, -6] {
            let y = ActiveLevel.normalise(Self.speechLike(amplitude: 0.01), sampleRate: 16_000, targetDBFS: target)
            let db = 20 * log10(ActiveLevel.level(y, sampleRate: 16_000))
            #expect(abs(db - target) < 1e-4, "target \(target) dBFS, got \(db)")
        }
    }

    @Test func featuresDoNotDependOnTheInputGain() throws {
        let normalised = try AudioFrontEnd(configuration: Self.config)
        var raw = Self.config
        raw.activeLevelDBFS = nil
        let asSent = try AudioFrontEnd(configuration: raw)
        let quiet = try normalised.features(samples: Self.speechLike(amplitude: 0.02), sampleRate: 16_000)
        let loud = try normalised.features(samples: Self.speechLike(amplitude: 0.3), sampleRate: 16_000)
        let quietRaw = try asSent.features(samples: Self.speechLike(amplitude: 0.02), sampleRate: 16_000)
        let loudRaw = try asSent.features(samples: Self.speechLike(amplitude: 0.3), sampleRate: 16_000)
        // Away from the -100 dB floor (the silent padding), bands move by the gain without normalisation
        // and not at all with it.
        var moved: Float = 0, kept: Float = 0
        for i in loudRaw.windows[0].features.values.indices where quietRaw.windows[0].features.values[i] > -60 {
            moved = max(moved, abs(loudRaw.windows[0].features.values[i] - quietRaw.windows[0].features.values[i]))
            kept = max(kept, abs(loud.windows[0].features.values[i] - quiet.windows[0].features.values[i]))
        }
        #expect(abs(moved - Float(20 * log10(0.3 / 0.02))) < 0.01, "unnormalised bands moved by \(moved) dB")
        #expect(kept < 1e-3, "normalised bands moved by \(kept) dB")
    }

    @Test func digitalSilenceIsLeftAlone() throws {
        let frontEnd = try AudioFrontEnd(configuration: Self.config)
        let silence = [Float](repeating: 0, count: 16_000)
        #expect(ActiveLevel.normalise(silence, sampleRate: 16_000, targetDBFS: -26) == silence)
        let features = try frontEnd.features(samples: silence, sampleRate: 16_000)
        #expect(features.windows[0].features.values.allSatisfy { $0 == -100 })
        let hiss = [Float](repeating: 5e-6, count: 16_000)  // -106 dBFS
        #expect(ActiveLevel.normalise(hiss, sampleRate: 16_000, targetDBFS: -26) == hiss)
    }
}
