import CSoxr

/// libsoxr quality recipes (linear phase).
public enum ResamplerQuality: String, Sendable, Codable, CaseIterable {
    /// `SOXR_HQ` (20-bit precision), librosa's default `res_type="soxr_hq"`.
    case hq = "soxr_hq"
    /// `SOXR_VHQ` (28-bit precision).
    case vhq = "soxr_vhq"

    var recipe: UInt {
        switch self {
        case .hq: return UInt(SOXR_HQ)
        case .vhq: return UInt(SOXR_VHQ)
        }
    }
}

/// Band-limited sample-rate conversion with libsoxr, one-shot, float32, single channel.
///
/// Reproduces `librosa.resample(y, orig_sr=, target_sr=, res_type="soxr_hq")`: libsoxr with
/// `soxr_quality_spec(SOXR_HQ, 0)` (what PyPI `soxr.resample(..., quality="HQ")` uses), then the
/// output is cut or zero-padded to `ceil(n * target / source)` samples (librosa's `fix_length`).
public struct Resampler: Sendable {
    public var quality: ResamplerQuality

    public init(quality: ResamplerQuality = .hq) {
        self.quality = quality
    }

    /// The output length librosa gives: `int(np.ceil(n * (float(target) / source)))`.
    public static func outputLength(inputLength n: Int, from source: Int, to target: Int) -> Int {
        let ratio = Double(target) / Double(source)
        return Int((Double(n) * ratio).rounded(.up))
    }

    /// Resamples `samples` from `source` Hz to `target` Hz. Returns the input unchanged when the
    /// rates are equal. Throws `invalid_sample_rate` for non-positive rates, `resampling_failed`
    /// if libsoxr reports an error.
    public func resample(_ samples: [Float], from source: Int, to target: Int) throws -> [Float] {
        guard source > 0, target > 0 else {
            throw AudioError(.invalidSampleRate, "cannot resample from \(source) Hz to \(target) Hz")
        }
        if source == target || samples.isEmpty { return samples }
        let outCount = Self.outputLength(inputLength: samples.count, from: source, to: target)
        // Room for everything libsoxr produces (its natural length is within a sample of the ratio).
        let capacity = outCount + 16
        var output = [Float](repeating: 0, count: capacity)
        var produced = 0
        var ioSpec = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
        var qualitySpec = soxr_quality_spec(quality.recipe, 0)
        let error: soxr_error_t? = samples.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                var consumed = 0
                return soxr_oneshot(Double(source), Double(target), 1,
                                    input.baseAddress, input.count, &consumed,
                                    out.baseAddress, capacity, &produced,
                                    &ioSpec, &qualitySpec, nil)
            }
        }
        if let error {
            throw AudioError(.resamplingFailed, "libsoxr: \(String(cString: error))")
        }
        // librosa's fix_length: trim, or pad with zeros, to ceil(n * ratio).
        if produced < outCount {
            for i in produced..<outCount { output[i] = 0 }
        }
        output.removeLast(capacity - outCount)
        return output
    }
}
