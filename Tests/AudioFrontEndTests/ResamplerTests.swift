import Foundation
import Testing
@testable import AudioFrontEnd
import TestSupport

@Suite struct ResamplerTests {
    /// Agreement with `librosa.resample(res_type="soxr_hq")` (PyPI soxr's bundled libsoxr vs the
    /// system libsoxr), including librosa's output length `ceil(n * target / source)`.
    @Test(arguments: AudioFixtures.shared.resampleCases)
    func matchesLibrosaSoxrHQ(_ c: AudioFixtures.ResampleCase) throws {
        let input = try AudioFixtures.floats(c.input)
        let expected = try AudioFixtures.floats(c.output)
        let output = try Resampler().resample(input, from: c.from, to: c.to)
        try #require(output.count == expected.count)
        let diff = maxAbsDiff(output, expected)
        print("resample \(c.name): max abs difference \(diff) (peak \(expected.map(abs).max()!))")
        #expect(diff <= 1e-6)
    }

    static func snr(_ y: [Float], reference: (Int) -> Double, margin: Int) -> Double {
        var signal = 0.0, noise = 0.0
        for i in margin..<(y.count - margin) {
            let r = reference(i)
            signal += r * r
            noise += (Double(y[i]) - r) * (Double(y[i]) - r)
        }
        return 10 * log10(signal / noise)
    }

    /// A resampled sine against the analytic sine at the output rate (edges excluded): SNR
    /// (THD + noise) measured 130-136 dB for HQ and about 150 dB for VHQ.
    @Test(arguments: [(44_100, 48_000, 997.0), (16_000, 48_000, 1000.0), (8_000, 48_000, 1234.5),
                      (22_050, 48_000, 5000.0), (48_000, 16_000, 3000.0)])
    func sineSNR(_ rates: (Int, Int, Double)) throws {
        let (source, target, f) = rates
        let input = (0..<source).map { Float(0.5 * sin(2 * Double.pi * f * Double($0) / Double(source) + 0.3)) }
        for (quality, minimum) in [(ResamplerQuality.hq, 120.0), (.vhq, 140.0)] {
            let y = try Resampler(quality: quality).resample(input, from: source, to: target)
            #expect(y.count == Resampler.outputLength(inputLength: source, from: source, to: target))
            let snr = Self.snr(y, reference: { 0.5 * sin(2 * Double.pi * f * Double($0) / Double(target) + 0.3) }, margin: 2000)
            print("resample sine \(f) Hz \(source) -> \(target) \(quality.rawValue): SNR \(String(format: "%.1f", snr)) dB")
            #expect(snr > minimum)
        }
    }

    /// Downsampling removes what lies above the new Nyquist frequency.
    @Test func antiAliasing() throws {
        let input = (0..<48_000).map { Float(0.5 * sin(2 * Double.pi * 12_000 * Double($0) / 48_000)) }
        let y = try Resampler().resample(input, from: 48_000, to: 16_000)
        let energy = y[2000..<(y.count - 2000)].reduce(0.0) { $0 + Double($1) * Double($1) } / Double(y.count - 4000)
        let level = 10 * log10(energy / 0.125)
        print("resample 12 kHz tone 48 kHz -> 16 kHz: residual \(String(format: "%.1f", level)) dB")
        #expect(level < -100)
    }

    @Test func lengthsAndEdgeCases() throws {
        let r = Resampler()
        #expect(try r.resample([1, 2, 3], from: 16_000, to: 16_000) == [1, 2, 3])
        #expect(try r.resample([], from: 8_000, to: 48_000).isEmpty)
        #expect(try r.resample([0.5], from: 8_000, to: 48_000).count == 6)
        // librosa's ceil(n * (target / source)) in float64, rounding error included (as in the fixtures).
        #expect(Resampler.outputLength(inputLength: 22_050, from: 22_050, to: 48_000) == 48_001)
        #expect(Resampler.outputLength(inputLength: 44_100, from: 44_100, to: 48_000) == 48_001)
        #expect(Resampler.outputLength(inputLength: 33_075, from: 22_050, to: 48_000) == 72_000)
        #expect(Resampler.outputLength(inputLength: 110_250, from: 44_100, to: 48_000) == 120_001)
        #expect(Resampler.outputLength(inputLength: 16_000, from: 16_000, to: 48_000) == 48_000)
        #expect(throws: AudioError.self) { try r.resample([1], from: 0, to: 48_000) }
    }
}
