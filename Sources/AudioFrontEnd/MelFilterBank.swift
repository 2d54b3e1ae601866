import Foundation

/// Triangular mel filters, computed in float64 exactly as transformers' `audio_utils.mel_filter_bank`
/// (itself librosa's `filters.mel` for the Slaney scale and norm, torchaudio's `melscale_fbanks`
/// for HTK), and stored sparsely: each filter is a contiguous run of non-zero bin weights.
public struct MelFilterBank: Sendable, Equatable {
    public let frequencyBins: Int
    public let melCount: Int
    /// First bin of each filter's run.
    public let starts: [Int]
    /// Length of each filter's run (0 for an empty filter).
    public let lengths: [Int]
    /// Offset of each filter's run in `weights`.
    public let offsets: [Int]
    /// All runs, concatenated.
    public let weights: [Double]

    public init(frequencyBins: Int, melCount: Int, fMin: Double, fMax: Double, sampleRate: Int,
                scale: AudioFrontEndConfiguration.MelScale, norm: AudioFrontEndConfiguration.MelNorm) {
        let dense = Self.dense(frequencyBins: frequencyBins, melCount: melCount, fMin: fMin, fMax: fMax,
                               sampleRate: sampleRate, scale: scale, norm: norm)
        var starts: [Int] = [], lengths: [Int] = [], offsets: [Int] = [], weights: [Double] = []
        for m in 0..<melCount {
            var first = -1, last = -1
            for k in 0..<frequencyBins where dense[k * melCount + m] != 0 {
                if first < 0 { first = k }
                last = k
            }
            offsets.append(weights.count)
            if first < 0 {
                starts.append(0)
                lengths.append(0)
            } else {
                starts.append(first)
                lengths.append(last - first + 1)
                for k in first...last { weights.append(dense[k * melCount + m]) }
            }
        }
        self.frequencyBins = frequencyBins
        self.melCount = melCount
        self.starts = starts
        self.lengths = lengths
        self.offsets = offsets
        self.weights = weights
    }

    /// The dense `[frequencyBins x melCount]` matrix (row-major), as transformers returns it.
    public static func dense(frequencyBins: Int, melCount: Int, fMin: Double, fMax: Double, sampleRate: Int,
                             scale: AudioFrontEndConfiguration.MelScale,
                             norm: AudioFrontEndConfiguration.MelNorm) -> [Double] {
        let melMin = hertzToMel(fMin, scale: scale)
        let melMax = hertzToMel(fMax, scale: scale)
        let melPoints = linspace(melMin, melMax, melCount + 2)
        let filterFreqs = melPoints.map { melToHertz($0, scale: scale) }
        // np.linspace(0, sampling_rate // 2, num_frequency_bins)
        let fftFreqs = linspace(0, Double(sampleRate / 2), frequencyBins)
        var filterDiff = [Double](repeating: 0, count: max(0, filterFreqs.count - 1))
        for i in 0..<filterDiff.count { filterDiff[i] = filterFreqs[i + 1] - filterFreqs[i] }
        var out = [Double](repeating: 0, count: frequencyBins * melCount)
        for k in 0..<frequencyBins {
            for m in 0..<melCount {
                // slopes = filter_freqs[None, :] - fft_freqs[:, None]
                let down = -(filterFreqs[m] - fftFreqs[k]) / filterDiff[m]
                let up = (filterFreqs[m + 2] - fftFreqs[k]) / filterDiff[m + 1]
                let w = Swift.max(0, Swift.min(down, up))
                out[k * melCount + m] = w.isNaN ? 0 : w
            }
        }
        if norm == .slaney {
            for m in 0..<melCount {
                let enorm = 2.0 / (filterFreqs[m + 2] - filterFreqs[m])
                for k in 0..<frequencyBins { out[k * melCount + m] *= enorm }
            }
        }
        return out
    }

    /// transformers' `hertz_to_mel`.
    public static func hertzToMel(_ f: Double, scale: AudioFrontEndConfiguration.MelScale) -> Double {
        switch scale {
        case .htk: return 2595.0 * log10(1.0 + f / 700.0)
        case .kaldi: return 1127.0 * log(1.0 + f / 700.0)
        case .slaney:
            let minLogHertz = 1000.0, minLogMel = 15.0, logstep = 27.0 / log(6.4)
            return f >= minLogHertz ? minLogMel + log(f / minLogHertz) * logstep : 3.0 * f / 200.0
        }
    }

    /// transformers' `mel_to_hertz`.
    public static func melToHertz(_ m: Double, scale: AudioFrontEndConfiguration.MelScale) -> Double {
        switch scale {
        case .htk: return 700.0 * (pow(10, m / 2595.0) - 1.0)
        case .kaldi: return 700.0 * (exp(m / 1127.0) - 1.0)
        case .slaney:
            let minLogHertz = 1000.0, minLogMel = 15.0, logstep = log(6.4) / 27.0
            return m >= minLogMel ? minLogHertz * exp(logstep * (m - minLogMel)) : 200.0 * m / 3.0
        }
    }

    /// numpy's `linspace(start, stop, num)` (endpoint included; `start + i * step`, last = stop).
    static func linspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
        guard num > 1 else { return num == 1 ? [start] : [] }
        let step = (stop - start) / Double(num - 1)
        var v = (0..<num).map { start + Double($0) * step }
        v[num - 1] = stop
        return v
    }
}
