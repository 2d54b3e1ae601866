import Foundation
import Testing
@testable import AudioFrontEnd
import TestSupport

/// Timing of the log-mel front-end on a 10 s, 48 kHz window (printed; the bound is loose so
/// that debug builds and busy machines pass: release builds take a few ms).
@Suite struct SpeedTests {
    @Test func tenSecondsAt48kHz() throws {
        let extractor = try LogMelExtractor(configuration: .clapUnfused)
        var rng = SplitMix64(seed: 3)
        let waveform = (0..<480_000).map { _ in Float(Double(rng.next() % 20_000) / 10_000 - 1) * 0.3 }
        var times: [Double] = []
        var frames = 0
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            let s = extractor.spectrogram(waveform)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            frames = s.frameCount
        }
        #expect(frames == 1001)
        times.sort()
        print("log-mel 10 s @ 48 kHz: median \(times[2]) ms, best \(times[0]) ms")
        #expect(times[0] < 5_000)
    }

    @Test func resample16kTo48kTenSeconds() throws {
        var rng = SplitMix64(seed: 4)
        let input = (0..<160_000).map { _ in Float(Double(rng.next() % 20_000) / 10_000 - 1) * 0.3 }
        let resampler = Resampler()
        var times: [Double] = []
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            let out = try resampler.resample(input, from: 16_000, to: 48_000)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            #expect(out.count == 480_000)
        }
        times.sort()
        print("soxr HQ 10 s 16 kHz -> 48 kHz: median \(times[1]) ms")
    }
}
