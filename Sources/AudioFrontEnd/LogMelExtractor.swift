import Foundation

/// A log-mel spectrogram: `frameCount` rows of `melCount` values (dB), row-major, float32.
///
/// This is transformers' `ClapFeatureExtractor` `input_features[0, 0]` for one window:
/// frame-major (time along rows), shape `[1001, 64]` for 10 s at 48 kHz with hop 480.
public struct LogMelSpectrogram: Sendable, Equatable {
    public let frameCount: Int
    public let melCount: Int
    /// `values[frame * melCount + mel]`.
    public var values: [Float]

    public init(frameCount: Int, melCount: Int, values: [Float]) {
        precondition(values.count == frameCount * melCount)
        self.frameCount = frameCount
        self.melCount = melCount
        self.values = values
    }

    public subscript(frame: Int, mel: Int) -> Float { values[frame * melCount + mel] }
}

/// Short-time Fourier transform, power spectrum, mel filter bank and dB conversion, as
/// transformers' `audio_utils.spectrogram(waveform, window_function(n_fft, "hann"), frame_length=n_fft,
/// hop_length=hop, power=2.0, mel_filters=..., log_mel="dB")`:
///
/// 1. the waveform is padded by `n_fft / 2` at both ends (`center`, numpy "reflect" by default);
/// 2. frame t is samples `[t * hop, t * hop + n_fft)` of the padded signal, times the window
///    (periodic Hann by default), in float64;
/// 3. `|rfft|^power` per bin (float64 FFT);
/// 4. mel energies `max(mel_floor, filters^T * spectrum)`;
/// 5. `10 * (log10(max(x, min_value)) - log10(max(min_value, reference)))` (20 for power 1),
///    clipped at `max - top_db` when `top_db` is set; stored as float32.
///
/// For the `whisper` kind (`WhisperFeatureExtractor._np_extract_fbank_features`) step 5 is
/// `log10(max(x, mel_floor))`, the last frame is dropped (not computed), and the values become
/// `(max(x, max - 8) + 4) / 4` with the maximum over the whole spectrogram.
///
/// The plan (window, FFT twiddles, sparse filters) is built once; `spectrogram(_:)` is
/// thread-safe and allocates only its own scratch.
public struct LogMelExtractor: Sendable {
    public let configuration: AudioFrontEndConfiguration
    public let filterBank: MelFilterBank
    /// The analysis window, zero-padded (centred) to n_fft.
    let window: [Double]
    let fft: ComplexFFTPlan
    /// Even n_fft: the real transform is a complex one of n_fft / 2 points plus a split step.
    let halfLength: Bool
    /// `exp(-2 pi i k / n_fft)` for the split step, k in 0...n_fft/2.
    let splitRe: [Double]
    let splitIm: [Double]

    /// Throws `invalid_audio_config`.
    public init(configuration: AudioFrontEndConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        let n = configuration.nFFT
        filterBank = MelFilterBank(frequencyBins: configuration.frequencyBins, melCount: configuration.nMels,
                                   fMin: configuration.fMin, fMax: configuration.fMax,
                                   sampleRate: configuration.sampleRate,
                                   scale: configuration.effectiveMelScale, norm: configuration.effectiveMelNorm)
        window = Self.window(configuration.window, length: configuration.effectiveWindowLength,
                             periodic: configuration.periodicWindow, frameLength: n)
        halfLength = n % 2 == 0
        fft = ComplexFFTPlan(count: halfLength ? n / 2 : n)
        var re: [Double] = [], im: [Double] = []
        for k in 0...(n / 2) {
            let angle = -2.0 * Double.pi * Double(k) / Double(n)
            re.append(cos(angle))
            im.append(sin(angle))
        }
        splitRe = re
        splitIm = im
    }

    /// transformers' `window_function(length, name, periodic, frame_length, center=True)`.
    static func window(_ kind: AudioFrontEndConfiguration.Window, length: Int, periodic: Bool, frameLength: Int) -> [Double] {
        let m = periodic ? length + 1 : length
        var w = [Double](repeating: 1, count: length)
        if m > 1 {
            for i in 0..<length {
                // numpy: 0.5 + 0.5 * cos(pi * n / (M - 1)) with n = 1 - M, 3 - M, ..., M - 1.
                let c = cos(Double.pi * Double(1 - m + 2 * i) / Double(m - 1))
                switch kind {
                case .hann: w[i] = 0.5 + 0.5 * c
                case .hamming: w[i] = 0.54 + 0.46 * c
                case .boxcar: w[i] = 1
                }
            }
        }
        var padded = [Double](repeating: 0, count: frameLength)
        let offset = (frameLength - length) / 2
        for i in 0..<length { padded[offset + i] = w[i] }
        return padded
    }

    /// Frames for a waveform of `samples` samples.
    public func frameCount(samples: Int) -> Int { configuration.frameCount(samples: samples) }

    /// The log-mel spectrogram of exactly `waveform` (no repeat-padding or windowing; see
    /// ``AudioFrontEnd`` for that). Returns 0 frames when the waveform is shorter than a frame.
    public func spectrogram(_ waveform: [Float]) -> LogMelSpectrogram {
        waveform.withUnsafeBufferPointer { spectrogram($0) }
    }

    public func spectrogram(_ waveform: UnsafeBufferPointer<Float>) -> LogMelSpectrogram {
        let c = configuration
        let n = c.nFFT
        let frames = frameCount(samples: waveform.count)
        let mels = c.nMels
        guard frames > 0 else { return LogMelSpectrogram(frameCount: 0, melCount: mels, values: []) }
        let padded = Self.pad(waveform, by: c.center ? n / 2 : 0, mode: c.padMode)
        var out = [Float](repeating: 0, count: frames * mels)
        let lanes = Lanes.scalarCount
        let complexCount = fft.count
        let bins = c.frequencyBins
        let re = UnsafeMutablePointer<Lanes>.allocate(capacity: complexCount)
        let im = UnsafeMutablePointer<Lanes>.allocate(capacity: complexCount)
        let scratchRe = UnsafeMutablePointer<Lanes>.allocate(capacity: complexCount)
        let scratchIm = UnsafeMutablePointer<Lanes>.allocate(capacity: complexCount)
        let spectrum = UnsafeMutablePointer<Lanes>.allocate(capacity: bins)
        defer {
            re.deallocate(); im.deallocate(); scratchRe.deallocate(); scratchIm.deallocate(); spectrum.deallocate()
        }
        let power = c.power
        let whisper = c.kind == .whisper
        // Whisper: plain log10 (its `log_mel="log10"`); CLAP: dB.
        let dbScale = whisper ? 1.0 : (power == 1 ? 20.0 : 10.0)
        let minValue = c.dbMinValue
        let logReference = log10(max(minValue, c.dbReference))
        let melFloor = c.melFloor
        padded.withUnsafeBufferPointer { signal in
        window.withUnsafeBufferPointer { win in
        filterBank.weights.withUnsafeBufferPointer { weights in
        out.withUnsafeMutableBufferPointer { dst in
            var first = 0
            while first < frames {
                let active = min(lanes, frames - first)
                // Gather `active` frames (unused lanes repeat the last frame), windowed, float64.
                var starts = [Int](repeating: 0, count: lanes)
                for l in 0..<lanes { starts[l] = (first + min(l, active - 1)) * c.hopLength }
                if halfLength {
                    for j in 0..<complexCount {
                        let w0 = win[2 * j], w1 = win[2 * j + 1]
                        var vr = Lanes.zero, vi = Lanes.zero
                        for l in 0..<lanes {
                            vr[l] = Double(signal[starts[l] + 2 * j])
                            vi[l] = Double(signal[starts[l] + 2 * j + 1])
                        }
                        re[j] = vr * w0
                        im[j] = vi * w1
                    }
                } else {
                    for j in 0..<complexCount {
                        var vr = Lanes.zero
                        for l in 0..<lanes { vr[l] = Double(signal[starts[l] + j]) }
                        re[j] = vr * win[j]
                        im[j] = .zero
                    }
                }
                fft.forward(re: re, im: im, scratchRe: scratchRe, scratchIm: scratchIm)
                if halfLength {
                    // X[k] = E + W^k O with E = (Z[k] + conj Z[M-k]) / 2, O = (Z[k] - conj Z[M-k]) / 2i;
                    // X[0] and X[M] come from Z[0] alone.
                    let m = complexCount
                    spectrum[0] = (re[0] + im[0]) * (re[0] + im[0])
                    spectrum[m] = (re[0] - im[0]) * (re[0] - im[0])
                    splitRe.withUnsafeBufferPointer { wRe in
                        splitIm.withUnsafeBufferPointer { wIm in
                            for k in 1..<max(1, m) {
                                let zr = re[k], zi = im[k], cr = re[m - k], ci = -im[m - k]
                                let er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci)
                                let or = 0.5 * (zi - ci), oi = -0.5 * (zr - cr)
                                let wr = wRe[k], wi = wIm[k]
                                let xr = er + wr * or - wi * oi
                                let xi = ei + wr * oi + wi * or
                                spectrum[k] = xr * xr + xi * xi
                            }
                        }
                    }
                } else {
                    for k in 0..<bins { spectrum[k] = re[k] * re[k] + im[k] * im[k] }
                }
                if power == 1 {
                    for k in 0..<bins { spectrum[k] = spectrum[k].squareRoot() }
                }
                for mel in 0..<mels {
                    let start = filterBank.starts[mel], length = filterBank.lengths[mel]
                    let w = weights.baseAddress! + filterBank.offsets[mel]
                    var acc = Lanes.zero
                    for i in 0..<length { acc += spectrum[start + i] * w[i] }
                    for l in 0..<active {
                        let energy = max(max(acc[l], melFloor), minValue)
                        // log10f is exact to an ulp of the float32 result for energies that fit a float.
                        let lg = energy < 1e30 ? Double(log10f(Float(energy))) : log10(energy)
                        dst[(first + l) * mels + mel] = Float(dbScale * (lg - logReference))
                    }
                }
                first += active
            }
        }
        }
        }
        }
        if whisper, let peak = out.max() {
            // WhisperFeatureExtractor: max(x, max - 8), then (x + 4) / 4.
            let floorValue = peak - 8
            for i in out.indices { out[i] = (max(out[i], floorValue) + 4) / 4 }
        }
        if let topDB = c.topDB, let peak = out.max() {
            let floorValue = Float(Double(peak) - topDB)
            for i in out.indices where out[i] < floorValue { out[i] = floorValue }
        }
        return LogMelSpectrogram(frameCount: frames, melCount: mels, values: out)
    }

    /// `np.pad(waveform, (by, by), mode)`; reflection repeats with period 2 (n - 1) when `by`
    /// exceeds the signal, as numpy's does.
    static func pad(_ x: UnsafeBufferPointer<Float>, by: Int, mode: AudioFrontEndConfiguration.PadMode) -> [Float] {
        let n = x.count
        guard by > 0 else { return Array(x) }
        var out = [Float](repeating: 0, count: n + 2 * by)
        if let source = x.baseAddress, n > 0 {
            out.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: by).update(from: source, count: n) }
        }
        guard n > 0, mode != .constant else { return out }
        func source(_ i: Int) -> Int {
            switch mode {
            case .edge: return min(max(i, 0), n - 1)
            case .reflect, .constant:
                if n == 1 { return 0 }
                let period = 2 * (n - 1)
                let j = ((i % period) + period) % period
                return j < n ? j : period - j
            }
        }
        for i in 0..<by {
            out[i] = x[source(i - by)]
            out[by + n + i] = x[source(n + i)]
        }
        return out
    }
}
