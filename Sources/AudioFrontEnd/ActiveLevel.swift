import Foundation

/// Level normalisation of a clip before its features are taken (the `active_level_dbfs` key).
///
/// Call audio arrives at whatever level the caller's line and gain stages leave it, and a
/// log-mel encoder is not gain invariant by itself: every band moves by the gain in dB. The
/// clip's *active level*, the RMS of its loudest half of 20 ms frames, does not depend on how
/// much silence surrounds the speech; scaling the clip so that this level is a fixed dBFS makes
/// the features the same at any input gain (short of clipping). Sums are in Float64 and the
/// scale is applied as one Float32 product, as the training pipeline computes it
/// (Training/pipeline/speech.py `normalise_level`).
public enum ActiveLevel {
    /// Clips whose active level is below this (-100 dBFS) are digital silence and are left as they are.
    public static let silence: Double = 1e-5

    /// RMS of the loudest half (rounded up) of the clip's consecutive `rate / 50`-sample frames;
    /// the RMS of the whole clip when it is shorter than one frame; 0 for no samples.
    public static func level(_ samples: [Float], sampleRate: Int) -> Double {
        guard !samples.isEmpty else { return 0 }
        let frame = max(1, sampleRate / 50)
        let n = samples.count / frame
        guard n > 0 else { return meanSquare(samples[...]).squareRoot() }
        var energies = (0..<n).map { meanSquare(samples[($0 * frame)..<(($0 + 1) * frame)]) }
        energies.sort(by: >)
        let loudest = energies.prefix((n + 1) / 2)
        return (loudest.reduce(0, +) / Double(loudest.count)).squareRoot()
    }

    /// The clip scaled so that its active level is `targetDBFS` (unchanged when it is silence).
    /// No clipping: the features are computed from float samples.
    public static func normalise(_ samples: [Float], sampleRate: Int, targetDBFS: Double) -> [Float] {
        let current = level(samples, sampleRate: sampleRate)
        guard current >= silence else { return samples }
        let scale = Float(pow(10, targetDBFS / 20) / current)
        return samples.map { $0 * scale }
    }

    private static func meanSquare(_ slice: ArraySlice<Float>) -> Double {
        var sum = 0.0
        for x in slice { sum += Double(x) * Double(x) }
        return sum / Double(slice.count)
    }
}
