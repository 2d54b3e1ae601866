import Foundation
import Testing
@testable import AudioFrontEnd
import TestSupport

@Suite struct ConfigurationTests {
    @Test func defaultsAreClapUnfused() throws {
        let c = try JSONDecoder().decode(AudioFrontEndConfiguration.self, from: Data("{}".utf8))
        #expect(c == .clapUnfused)
        #expect(c.sampleRate == 48_000 && c.nFFT == 1024 && c.hopLength == 480 && c.nMels == 64)
        #expect(c.fMin == 50 && c.fMax == 14_000 && c.maxLengthSeconds == 10)
        #expect(c.maxLengthSamples == 480_000)
        #expect(c.framesPerWindow == 1001)
        #expect(c.frequencyBins == 513)
        #expect(c.effectiveMelScale == .slaney && c.effectiveMelNorm == .slaney)
        #expect(c.padding == .repeatpad && c.truncation == .randTrunc && c.topDB == nil)
    }

    @Test func fusionSelectsHTKFiltersUnlessOverridden() throws {
        let fusion = try JSONDecoder().decode(AudioFrontEndConfiguration.self, from: Data(#"{"truncation": "fusion"}"#.utf8))
        #expect(fusion.effectiveMelScale == .htk && fusion.effectiveMelNorm == MelNormNone.none)
        let explicit = try JSONDecoder().decode(AudioFrontEndConfiguration.self,
                                                from: Data(#"{"truncation": "fusion", "mel_scale": "slaney", "mel_norm": "slaney"}"#.utf8))
        #expect(explicit.effectiveMelScale == .slaney && explicit.effectiveMelNorm == .slaney)
    }

    @Test func everyKeyRoundTrips() throws {
        let json = """
        {"sample_rate": 16000, "n_fft": 400, "win_length": 320, "hop_length": 160, "n_mels": 80,
         "f_min": 20, "f_max": 7600, "max_length_s": 4.5, "padding": "repeat", "truncation": "rand_trunc",
         "mel_scale": "kaldi", "mel_norm": "none", "window": "hamming", "periodic_window": false,
         "center": false, "pad_mode": "constant", "power": 1, "mel_floor": 1e-8, "db_reference": 2,
         "db_min_value": 1e-9, "top_db": 80, "resample_quality": "soxr_vhq", "min_tail_s": 0.5,
         "active_level_dbfs": -26}
        """
        let c = try JSONDecoder().decode(AudioFrontEndConfiguration.self, from: Data(json.utf8))
        #expect(c.sampleRate == 16_000 && c.nFFT == 400 && c.windowLength == 320 && c.hopLength == 160)
        #expect(c.maxLengthSamples == 72_000 && c.framesPerWindow == 1 + (72_000 - 400) / 160)
        #expect(c.window == .hamming && !c.periodicWindow && !c.center && c.padMode == .constant)
        #expect(c.power == 1 && c.topDB == 80 && c.resampleQuality == .vhq && c.minTailSeconds == 0.5)
        #expect(c.activeLevelDBFS == -26)
        let again = try JSONDecoder().decode(AudioFrontEndConfiguration.self, from: JSONEncoder().encode(c))
        #expect(again == c)
        // The same code serves that configuration.
        let extractor = try LogMelExtractor(configuration: c)
        let s = extractor.spectrogram([Float](repeating: 0.25, count: c.maxLengthSamples))
        #expect(s.frameCount == c.framesPerWindow && s.melCount == 80)
        #expect(s.values.allSatisfy { $0.isFinite })
    }

    @Test(arguments: [
        #"{"n_fft": 1}"#, #"{"hop_length": 0}"#, #"{"n_mels": 0}"#, #"{"f_min": 9000, "f_max": 8000}"#,
        #"{"f_max": -1}"#, #"{"win_length": 2048}"#, #"{"max_length_s": 0}"#, #"{"sample_rate": 0}"#,
        #"{"power": 3}"#, #"{"mel_floor": 0}"#, #"{"top_db": -5}"#, #"{"padding": "mirror"}"#,
        #"{"truncation": "crop"}"#, #"{"mel_scale": "bark"}"#, #"{"n_fft": "1024"}"#, #"{"min_tail_s": -1}"#,
        #"{"active_level_dbfs": 3}"#, #"{"active_level_dbfs": -120}"#,
        #"{"center": false, "n_fft": 1024, "max_length_s": 0.001}"#,
    ])
    func invalidConfigurationsAreRefused(_ json: String) {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(AudioFrontEndConfiguration.self, from: Data(json.utf8))
        }
    }

    @Test func invalidConfigurationCode() {
        var c = AudioFrontEndConfiguration.clapUnfused
        c.hopLength = 0
        #expect(throws: AudioError.self) { try AudioFrontEnd(configuration: c) }
        do { try c.validate() } catch let e as AudioError { #expect(e.reason == .invalidAudioConfig) } catch {}
    }
}

typealias MelNormNone = AudioFrontEndConfiguration.MelNorm

@Suite struct WindowingTests {
    @Test func shortClipFilling() {
        #expect(AudioFrontEnd.fill([1, 2, 3], to: 10, padding: .repeatpad) == [1, 2, 3, 1, 2, 3, 1, 2, 3, 0])
        #expect(AudioFrontEnd.fill([1, 2, 3], to: 10, padding: .repeat) == [1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
        #expect(AudioFrontEnd.fill([1, 2, 3], to: 10, padding: .pad) == [1, 2, 3, 0, 0, 0, 0, 0, 0, 0])
        #expect(AudioFrontEnd.fill([1, 2, 3, 4], to: 4, padding: .repeatpad) == [1, 2, 3, 4])
        #expect(AudioFrontEnd.fill([1, 2, 3], to: 6, padding: .repeatpad) == [1, 2, 3, 1, 2, 3])
        #expect(AudioFrontEnd.fill([5], to: 3, padding: .repeatpad) == [5, 5, 5])
        // CLAP: 0.3 s at 48 kHz (14400 samples) tiles 33 times, then 4800 zeros.
        let clip = (0..<14_400).map { Float($0 % 97) / 97 }
        let filled = AudioFrontEnd.fill(clip, to: 480_000, padding: .repeatpad)
        #expect(filled.count == 480_000)
        #expect(Array(filled[(32 * 14_400)..<(33 * 14_400)]) == clip)
        #expect(filled[(33 * 14_400)...].allSatisfy { $0 == 0 })
    }

    @Test func longClipWindows() {
        let L = 480_000, tail = 48_000
        #expect(AudioFrontEnd.windowRanges(sampleCount: 100, windowLength: L, minimumTail: tail) == [0..<100])
        #expect(AudioFrontEnd.windowRanges(sampleCount: L, windowLength: L, minimumTail: tail) == [0..<L])
        #expect(AudioFrontEnd.windowRanges(sampleCount: 2 * L, windowLength: L, minimumTail: tail) == [0..<L, L..<(2 * L)])
        #expect(AudioFrontEnd.windowRanges(sampleCount: 1_200_000, windowLength: L, minimumTail: tail)
                == [0..<L, L..<(2 * L), (2 * L)..<1_200_000])
        // A tail shorter than min_tail_s is dropped, unless it is the only window.
        #expect(AudioFrontEnd.windowRanges(sampleCount: L + 1, windowLength: L, minimumTail: tail) == [0..<L])
        #expect(AudioFrontEnd.windowRanges(sampleCount: L + tail - 1, windowLength: L, minimumTail: tail) == [0..<L])
        #expect(AudioFrontEnd.windowRanges(sampleCount: L + tail, windowLength: L, minimumTail: tail) == [0..<L, L..<(L + tail)])
        #expect(AudioFrontEnd.windowRanges(sampleCount: L + 1, windowLength: L, minimumTail: 0) == [0..<L, L..<(L + 1)])
        #expect(AudioFrontEnd.windowRanges(sampleCount: 0, windowLength: L, minimumTail: tail).isEmpty)
    }

    /// Each window of a long clip is the spectrogram of that slice, filled like a short clip.
    @Test func longClipFeaturesArePerWindow() throws {
        var config = AudioFrontEndConfiguration(sampleRate: 8_000, nFFT: 256, hopLength: 80, nMels: 32, fMin: 0,
                                                fMax: 4_000, maxLengthSeconds: 1, minTailSeconds: 0.25)
        config.padding = .repeatpad
        let frontEnd = try AudioFrontEnd(configuration: config)
        let n = 8_000 * 2 + 3_000  // two full windows and a 0.375 s tail
        let clip = (0..<n).map { Float(sin(Double($0) * 0.031) * 0.4) }
        let features = try frontEnd.features(samples: clip, sampleRate: 8_000)
        #expect(features.windows.map(\.startSample) == [0, 8_000, 16_000])
        #expect(features.windows.map(\.sampleCount) == [8_000, 8_000, 3_000])
        for w in features.windows {
            let slice = Array(clip[w.startSample..<(w.startSample + w.sampleCount)])
            let expected = frontEnd.extractor.spectrogram(AudioFrontEnd.fill(slice, to: 8_000, padding: .repeatpad))
            #expect(w.features == expected)
            #expect(w.features.frameCount == config.framesPerWindow)
        }
        // A 0.2 s tail (< min_tail_s) is dropped.
        let shorter = try frontEnd.features(samples: Array(clip.prefix(17_600)), sampleRate: 8_000)
        #expect(shorter.windows.count == 2)
        #expect(shorter.sampleCount == 17_600)
    }

    @Test func rawSampleErrors() throws {
        let frontEnd = try AudioFrontEnd(decodingOptions: .init(maxDurationSeconds: 1))
        #expect(throws: AudioError.self) { try frontEnd.features(samples: [], sampleRate: 16_000) }
        #expect(throws: AudioError.self) { try frontEnd.features(samples: [0.1], sampleRate: 0) }
        #expect(throws: AudioError.self) { try frontEnd.features(samples: [Float](repeating: 0, count: 16_001), sampleRate: 16_000) }
        let ok = try frontEnd.features(samples: [Float](repeating: 0, count: 16_000), sampleRate: 16_000)
        #expect(ok.windows.count == 1 && ok.sampleCount == 48_000)
        // Silence floors at 10 * log10(1e-10) = -100 dB.
        #expect(ok.windows[0].features.values.allSatisfy { $0 == -100 })
    }
}

@Suite struct SpectralTests {
    /// The float64 mixed-radix FFT against a direct DFT (in float64), radices 2, 3, 4, 5 and
    /// generic primes.
    @Test(arguments: Array(1...40) + [49, 64, 77, 100, 121, 128, 200, 202, 256, 405, 512, 1024])
    func fftMatchesDirectDFT(_ n: Int) {
        let plan = ComplexFFTPlan(count: n)
        let lanes = Lanes.scalarCount
        var rng = SplitMix64(seed: UInt64(n))
        func r() -> Double { Double(rng.next() % 2_000_001) / 1_000_000 - 1 }
        var inRe = [[Double]](), inIm = [[Double]]()
        for _ in 0..<lanes {
            inRe.append((0..<n).map { _ in r() })
            inIm.append((0..<n).map { _ in r() })
        }
        let re = UnsafeMutablePointer<Lanes>.allocate(capacity: n), im = UnsafeMutablePointer<Lanes>.allocate(capacity: n)
        let sr = UnsafeMutablePointer<Lanes>.allocate(capacity: n), si = UnsafeMutablePointer<Lanes>.allocate(capacity: n)
        defer { re.deallocate(); im.deallocate(); sr.deallocate(); si.deallocate() }
        for j in 0..<n {
            var a = Lanes.zero, b = Lanes.zero
            for l in 0..<lanes { a[l] = inRe[l][j]; b[l] = inIm[l][j] }
            re[j] = a
            im[j] = b
        }
        plan.forward(re: re, im: im, scratchRe: sr, scratchIm: si)
        var worst = 0.0
        for l in 0..<lanes {
            for k in 0..<n {
                var xr = 0.0, xi = 0.0
                for j in 0..<n {
                    let angle = -2 * Double.pi * Double((j * k) % n) / Double(n)
                    xr += inRe[l][j] * cos(angle) - inIm[l][j] * sin(angle)
                    xi += inRe[l][j] * sin(angle) + inIm[l][j] * cos(angle)
                }
                worst = max(worst, abs(re[k][l] - xr), abs(im[k][l] - xi))
            }
        }
        #expect(worst < 1e-11 * Double(n), "n = \(n): \(worst)")
    }

    @Test func paddingModesMatchNumpy() {
        func pad(_ x: [Float], _ by: Int, _ mode: AudioFrontEndConfiguration.PadMode) -> [Float] {
            x.withUnsafeBufferPointer { LogMelExtractor.pad($0, by: by, mode: mode) }
        }
        #expect(pad([1, 2, 3], 5, .reflect) == [2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2])
        #expect(pad([1, 2], 3, .reflect) == [2, 1, 2, 1, 2, 1, 2, 1])
        #expect(pad([7], 2, .reflect) == [7, 7, 7, 7, 7])
        #expect(pad([1, 2, 3], 4, .edge) == [1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3])
        #expect(pad([1, 2, 3], 2, .constant) == [0, 0, 1, 2, 3, 0, 0])
        #expect(pad([1, 2, 3], 0, .reflect) == [1, 2, 3])
    }

    @Test func frameCounts() throws {
        let e = try LogMelExtractor(configuration: .clapUnfused)
        #expect(e.frameCount(samples: 480_000) == 1001)
        #expect(e.frameCount(samples: 479_999) == 1000)
        #expect(e.frameCount(samples: 1) == 1)
        #expect(e.spectrogram([]).frameCount == 1)
        #expect(e.spectrogram([0.5]).frameCount == 1)
        let tiny = e.spectrogram([0.5, -0.25, 0.125])
        #expect(tiny.frameCount == 1 && tiny.values.allSatisfy { $0.isFinite })
    }

    @Test func hannWindowIsPeriodic() {
        let w = LogMelExtractor.window(.hann, length: 8, periodic: true, frameLength: 8)
        let expected = (0..<8).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / 8) }
        #expect(zip(w, expected).allSatisfy { abs($0 - $1) < 1e-15 })
        let centred = LogMelExtractor.window(.hann, length: 4, periodic: true, frameLength: 8)
        #expect(centred[0] == 0 && centred[1] == 0 && centred[6] == 0 && centred[7] == 0 && centred[4] == 1)
    }

    @Test func toneLandsInItsMelBand() throws {
        let e = try LogMelExtractor(configuration: .clapUnfused)
        let f = 1000.0
        let tone = (0..<48_000).map { Float(0.5 * sin(2 * Double.pi * f * Double($0) / 48_000)) }
        let s = e.spectrogram(tone)
        let middle = s.frameCount / 2
        let row = (0..<64).map { s[middle, $0] }
        let peak = row.indices.max { row[$0] < row[$1] }!
        // The Slaney filter centred nearest 1 kHz.
        let centres = MelFilterBank.linspace(MelFilterBank.hertzToMel(50, scale: .slaney),
                                             MelFilterBank.hertzToMel(14_000, scale: .slaney), 66)
            .map { MelFilterBank.melToHertz($0, scale: .slaney) }
        let nearest = (1...64).min { abs(centres[$0] - f) < abs(centres[$1] - f) }! - 1
        #expect(abs(peak - nearest) <= 1)
    }
}
