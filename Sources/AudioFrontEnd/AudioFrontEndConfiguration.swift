/// The audio front-end's parameters: the "audio" section of a model package's model.json.
///
/// The defaults are LAION `clap-htsat-unfused` as transformers' `ClapFeatureExtractor` runs it
/// (its preprocessor config: 48 kHz, `fft_window_size` 1024, hop 480, 64 mel bins, 50-14000 Hz,
/// `max_length_s` 10, `padding` "repeatpad", `truncation` "rand_trunc", `top_db` null). Every key
/// is optional in JSON (snake_case, listed in ``CodingKeys``); missing keys take these defaults,
/// so `"audio": {}` is the paper's encoder.
///
/// `"front_end": "whisper"` selects Whisper's log-mel instead (``Kind/whisper``): its defaults
/// become those of transformers' `WhisperFeatureExtractor` (16 kHz, n_fft 400, hop 160, 80 Slaney
/// mel bins over 0-8000 Hz, 30 s windows) and the clip is not padded to the window.
public struct AudioFrontEndConfiguration: Sendable, Equatable, Codable {
    /// Which encoder's features the front end computes.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// CLAP's `ClapFeatureExtractor`: power spectrogram in dB.
        case clap
        /// Whisper's `WhisperFeatureExtractor`: `log10` of the mel energies, the last frame
        /// dropped, floored at the window's maximum minus 8, then `(x + 4) / 4`.
        case whisper
    }

    /// How clips shorter than the window are filled (ClapFeatureExtractor's `padding`).
    public enum Padding: String, Sendable, Codable, CaseIterable {
        /// Tile the clip `floor(max_length / n)` times, then pad with zeros (CLAP's default).
        case repeatpad
        /// Tile the clip `floor(max_length / n) + 1` times and cut to `max_length`.
        case `repeat`
        /// Pad with zeros.
        case pad
        /// Leave a short clip as it is (the window holds only the clip's own frames): Whisper's
        /// encoder reads any length up to its window.
        case none
    }

    /// ClapFeatureExtractor's `truncation`. It only selects the default mel filter bank here:
    /// long clips are always split into consecutive windows (never a random crop), and the
    /// fused model's 4-way stacking is not produced (this front-end serves unfused models).
    public enum Truncation: String, Sendable, Codable, CaseIterable {
        /// Unfused CLAP: Slaney mel scale, Slaney area normalisation (librosa's filters).
        case randTrunc = "rand_trunc"
        /// Fused CLAP: HTK mel scale, no normalisation (torchaudio's filters).
        case fusion
    }

    public enum MelScale: String, Sendable, Codable, CaseIterable {
        case htk, slaney, kaldi
    }

    public enum MelNorm: String, Sendable, Codable, CaseIterable {
        /// Triangles of height 1.
        case none
        /// Each triangle divided by half its width in Hz (constant energy per band).
        case slaney
    }

    public enum Window: String, Sendable, Codable, CaseIterable {
        case hann, hamming, boxcar
    }

    /// How the waveform is extended by `n_fft / 2` samples at each end (`center` true).
    public enum PadMode: String, Sendable, Codable, CaseIterable {
        /// Mirror without repeating the edge sample (numpy's "reflect").
        case reflect
        /// Zeros.
        case constant
        /// Repeat the edge sample.
        case edge
    }

    /// `clap` (default) or `whisper`: the features' log scale and post-processing.
    public var kind: Kind
    /// The model's sample rate (Hz); decoded audio is resampled to it.
    public var sampleRate: Int
    /// FFT size; the spectrum has `n_fft / 2 + 1` bins. Any size >= 2 (fastest for 2^a 3^b 5^c).
    public var nFFT: Int
    /// Window length (<= n_fft, centred and zero-padded to n_fft); nil means n_fft.
    public var windowLength: Int?
    /// Hop between frames (samples).
    public var hopLength: Int
    /// Mel bands.
    public var nMels: Int
    /// Lowest and highest mel filter edges (Hz).
    public var fMin: Double
    public var fMax: Double
    /// The window fed to the encoder, in seconds (`max_length_s`): `round(max_length_s * sample_rate)` samples.
    public var maxLengthSeconds: Double
    public var padding: Padding
    public var truncation: Truncation
    /// nil: Slaney for rand_trunc, HTK for fusion (as ClapFeatureExtractor).
    public var melScale: MelScale?
    /// nil: Slaney for rand_trunc, none for fusion (as ClapFeatureExtractor).
    public var melNorm: MelNorm?
    public var window: Window
    /// Periodic (true, the spectral-analysis convention and transformers' default) or symmetric window.
    public var periodicWindow: Bool
    /// Frame t centred on sample t * hop (the waveform padded by n_fft / 2 at both ends).
    public var center: Bool
    public var padMode: PadMode
    /// Power exponent of the magnitude spectrum (2: power spectrogram; 1: magnitude).
    public var power: Double
    /// Mel energies are floored at this before the logarithm (transformers' `mel_floor`).
    public var melFloor: Double
    /// dB conversion: `multiplier * (log10(max(x, db_min_value)) - log10(max(db_min_value, db_reference)))`,
    /// multiplier 10 for power 2 and 20 for power 1, then clipped at max - top_db when top_db is set.
    public var dbReference: Double
    public var dbMinValue: Double
    public var topDB: Double?
    /// libsoxr recipe used to bring decoded audio to `sample_rate`.
    public var resampleQuality: ResamplerQuality
    /// Long clips: the last window is kept only if it holds at least this many seconds of audio
    /// (unless it is the only window). 0 keeps every tail.
    public var minTailSeconds: Double
    /// When set, the whole clip (at the model's rate, before windowing) is scaled so that its
    /// active level is this many dBFS (see ``ActiveLevel``); nil (CLAP) leaves the level as sent.
    public var activeLevelDBFS: Double?

    public init(kind: Kind = .clap, sampleRate: Int = 48_000, nFFT: Int = 1024, windowLength: Int? = nil, hopLength: Int = 480,
                nMels: Int = 64, fMin: Double = 50, fMax: Double = 14_000, maxLengthSeconds: Double = 10,
                padding: Padding = .repeatpad, truncation: Truncation = .randTrunc,
                melScale: MelScale? = nil, melNorm: MelNorm? = nil, window: Window = .hann,
                periodicWindow: Bool = true, center: Bool = true, padMode: PadMode = .reflect,
                power: Double = 2, melFloor: Double = 1e-10, dbReference: Double = 1,
                dbMinValue: Double = 1e-10, topDB: Double? = nil,
                resampleQuality: ResamplerQuality = .hq, minTailSeconds: Double = 1,
                activeLevelDBFS: Double? = nil) {
        self.kind = kind
        self.sampleRate = sampleRate
        self.nFFT = nFFT
        self.windowLength = windowLength
        self.hopLength = hopLength
        self.nMels = nMels
        self.fMin = fMin
        self.fMax = fMax
        self.maxLengthSeconds = maxLengthSeconds
        self.padding = padding
        self.truncation = truncation
        self.melScale = melScale
        self.melNorm = melNorm
        self.window = window
        self.periodicWindow = periodicWindow
        self.center = center
        self.padMode = padMode
        self.power = power
        self.melFloor = melFloor
        self.dbReference = dbReference
        self.dbMinValue = dbMinValue
        self.topDB = topDB
        self.resampleQuality = resampleQuality
        self.minTailSeconds = minTailSeconds
        self.activeLevelDBFS = activeLevelDBFS
    }

    /// LAION clap-htsat-unfused (the paper's encoder).
    public static let clapUnfused = AudioFrontEndConfiguration()

    /// transformers' `WhisperFeatureExtractor()` (Whisper base, small, ...): 16 kHz, n_fft 400,
    /// hop 160, 80 mel bins with Slaney scale and norm over 0-8000 Hz, periodic Hann, reflect
    /// padding, 30 s windows, short clips left unpadded.
    public static let whisper = AudioFrontEndConfiguration(
        kind: .whisper, sampleRate: 16_000, nFFT: 400, hopLength: 160, nMels: 80, fMin: 0, fMax: 8_000,
        maxLengthSeconds: 30, padding: .none, melScale: .slaney, melNorm: .slaney)

    /// The defaults of a front-end kind (``clapUnfused`` or ``whisper``).
    public static func defaults(for kind: Kind) -> AudioFrontEndConfiguration {
        kind == .whisper ? .whisper : .clapUnfused
    }

    // MARK: Derived values

    /// The mel scale in effect (explicit, or from `truncation`).
    public var effectiveMelScale: MelScale { melScale ?? (truncation == .fusion ? .htk : .slaney) }
    /// The mel normalisation in effect (explicit, or from `truncation`).
    public var effectiveMelNorm: MelNorm { melNorm ?? (truncation == .fusion ? .none : .slaney) }
    public var effectiveWindowLength: Int { windowLength ?? nFFT }
    /// Samples in one encoder window (480000 for CLAP).
    public var maxLengthSamples: Int { Int((maxLengthSeconds * Double(sampleRate)).rounded()) }
    /// Spectrum bins, `n_fft / 2 + 1`.
    public var frequencyBins: Int { nFFT / 2 + 1 }
    /// Frames of a window of `maxLengthSamples` samples (1001 for CLAP, 3000 for Whisper).
    public var framesPerWindow: Int { frameCount(samples: maxLengthSamples) }

    /// Feature frames of `n` samples: the STFT's frames, less the last one for Whisper
    /// (`WhisperFeatureExtractor` drops it).
    public func frameCount(samples n: Int) -> Int {
        let frames = Self.frameCount(samples: n, nFFT: nFFT, hop: hopLength, center: center)
        return kind == .whisper ? max(0, frames - 1) : frames
    }

    /// numpy/transformers' frame count: `1 + floor((n + 2 * (n_fft / 2) - n_fft) / hop)` when
    /// centred, `1 + floor((n - n_fft) / hop)` otherwise (0 when the signal is shorter than a frame).
    public static func frameCount(samples n: Int, nFFT: Int, hop: Int, center: Bool) -> Int {
        let padded = center ? n + 2 * (nFFT / 2) : n
        guard padded >= nFFT else { return 0 }
        return 1 + (padded - nFFT) / hop
    }

    /// Throws `invalid_audio_config` naming the first bad parameter.
    public func validate() throws {
        func bad(_ message: String) -> AudioError { AudioError(.invalidAudioConfig, message) }
        guard sampleRate >= 1, sampleRate <= 1_000_000 else { throw bad("sample_rate must be in 1...1000000, got \(sampleRate)") }
        guard nFFT >= 2, nFFT <= 1 << 16 else { throw bad("n_fft must be in 2...65536, got \(nFFT)") }
        if let w = windowLength, !(1...nFFT).contains(w) { throw bad("win_length must be in 1...n_fft (\(nFFT)), got \(w)") }
        guard hopLength >= 1 else { throw bad("hop_length must be positive, got \(hopLength)") }
        guard nMels >= 1, nMels <= 4096 else { throw bad("n_mels must be in 1...4096, got \(nMels)") }
        guard fMin.isFinite, fMax.isFinite, fMin >= 0, fMin < fMax else {
            throw bad("f_min and f_max must be finite with 0 <= f_min < f_max, got \(fMin) and \(fMax)")
        }
        guard maxLengthSeconds.isFinite, maxLengthSeconds > 0, maxLengthSamples >= 1,
              maxLengthSamples <= 100_000_000 else {
            throw bad("max_length_s must give 1...1e8 samples at \(sampleRate) Hz, got \(maxLengthSeconds) s")
        }
        guard framesPerWindow >= 1 else { throw bad("a window of \(maxLengthSamples) samples is shorter than n_fft (\(nFFT)) with center false") }
        guard power == 1 || power == 2 else { throw bad("power must be 1 or 2, got \(power)") }
        guard melFloor.isFinite, melFloor > 0 else { throw bad("mel_floor must be positive, got \(melFloor)") }
        guard dbReference.isFinite, dbReference > 0 else { throw bad("db_reference must be positive, got \(dbReference)") }
        guard dbMinValue.isFinite, dbMinValue > 0 else { throw bad("db_min_value must be positive, got \(dbMinValue)") }
        if let t = topDB, !(t.isFinite && t > 0) { throw bad("top_db must be positive, got \(t)") }
        guard minTailSeconds.isFinite, minTailSeconds >= 0 else { throw bad("min_tail_s must be >= 0, got \(minTailSeconds)") }
        if let l = activeLevelDBFS, !(l.isFinite && (-80...0).contains(l)) {
            throw bad("active_level_dbfs must be in -80...0, got \(l)")
        }
    }

    // MARK: Coding

    public enum CodingKeys: String, CodingKey {
        case kind = "front_end"
        case sampleRate = "sample_rate", nFFT = "n_fft", windowLength = "win_length", hopLength = "hop_length"
        case nMels = "n_mels", fMin = "f_min", fMax = "f_max", maxLengthSeconds = "max_length_s"
        case padding, truncation, melScale = "mel_scale", melNorm = "mel_norm", window
        case periodicWindow = "periodic_window", center, padMode = "pad_mode", power
        case melFloor = "mel_floor", dbReference = "db_reference", dbMinValue = "db_min_value", topDB = "top_db"
        case resampleQuality = "resample_quality", minTailSeconds = "min_tail_s"
        case activeLevelDBFS = "active_level_dbfs"
    }

    /// Decodes (every key optional) and validates; an invalid value is a `DecodingError`
    /// whose description names the parameter.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .clap
        let d = AudioFrontEndConfiguration.defaults(for: kind)
        self.init(
            kind: kind,
            sampleRate: try c.decodeIfPresent(Int.self, forKey: .sampleRate) ?? d.sampleRate,
            nFFT: try c.decodeIfPresent(Int.self, forKey: .nFFT) ?? d.nFFT,
            windowLength: try c.decodeIfPresent(Int.self, forKey: .windowLength),
            hopLength: try c.decodeIfPresent(Int.self, forKey: .hopLength) ?? d.hopLength,
            nMels: try c.decodeIfPresent(Int.self, forKey: .nMels) ?? d.nMels,
            fMin: try c.decodeIfPresent(Double.self, forKey: .fMin) ?? d.fMin,
            fMax: try c.decodeIfPresent(Double.self, forKey: .fMax) ?? d.fMax,
            maxLengthSeconds: try c.decodeIfPresent(Double.self, forKey: .maxLengthSeconds) ?? d.maxLengthSeconds,
            padding: try c.decodeIfPresent(Padding.self, forKey: .padding) ?? d.padding,
            truncation: try c.decodeIfPresent(Truncation.self, forKey: .truncation) ?? d.truncation,
            melScale: try c.decodeIfPresent(MelScale.self, forKey: .melScale) ?? d.melScale,
            melNorm: try c.decodeIfPresent(MelNorm.self, forKey: .melNorm) ?? d.melNorm,
            window: try c.decodeIfPresent(Window.self, forKey: .window) ?? d.window,
            periodicWindow: try c.decodeIfPresent(Bool.self, forKey: .periodicWindow) ?? d.periodicWindow,
            center: try c.decodeIfPresent(Bool.self, forKey: .center) ?? d.center,
            padMode: try c.decodeIfPresent(PadMode.self, forKey: .padMode) ?? d.padMode,
            power: try c.decodeIfPresent(Double.self, forKey: .power) ?? d.power,
            melFloor: try c.decodeIfPresent(Double.self, forKey: .melFloor) ?? d.melFloor,
            dbReference: try c.decodeIfPresent(Double.self, forKey: .dbReference) ?? d.dbReference,
            dbMinValue: try c.decodeIfPresent(Double.self, forKey: .dbMinValue) ?? d.dbMinValue,
            topDB: try c.decodeIfPresent(Double.self, forKey: .topDB),
            resampleQuality: try c.decodeIfPresent(ResamplerQuality.self, forKey: .resampleQuality) ?? d.resampleQuality,
            minTailSeconds: try c.decodeIfPresent(Double.self, forKey: .minTailSeconds) ?? d.minTailSeconds,
            activeLevelDBFS: try c.decodeIfPresent(Double.self, forKey: .activeLevelDBFS))
        do {
            try validate()
        } catch let error as AudioError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(sampleRate, forKey: .sampleRate)
        try c.encode(nFFT, forKey: .nFFT)
        try c.encodeIfPresent(windowLength, forKey: .windowLength)
        try c.encode(hopLength, forKey: .hopLength)
        try c.encode(nMels, forKey: .nMels)
        try c.encode(fMin, forKey: .fMin)
        try c.encode(fMax, forKey: .fMax)
        try c.encode(maxLengthSeconds, forKey: .maxLengthSeconds)
        try c.encode(padding, forKey: .padding)
        try c.encode(truncation, forKey: .truncation)
        try c.encodeIfPresent(melScale, forKey: .melScale)
        try c.encodeIfPresent(melNorm, forKey: .melNorm)
        try c.encode(window, forKey: .window)
        try c.encode(periodicWindow, forKey: .periodicWindow)
        try c.encode(center, forKey: .center)
        try c.encode(padMode, forKey: .padMode)
        try c.encode(power, forKey: .power)
        try c.encode(melFloor, forKey: .melFloor)
        try c.encode(dbReference, forKey: .dbReference)
        try c.encode(dbMinValue, forKey: .dbMinValue)
        try c.encodeIfPresent(topDB, forKey: .topDB)
        try c.encode(resampleQuality, forKey: .resampleQuality)
        try c.encode(minTailSeconds, forKey: .minTailSeconds)
        try c.encodeIfPresent(activeLevelDBFS, forKey: .activeLevelDBFS)
    }
}
