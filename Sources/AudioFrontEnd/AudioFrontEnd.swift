import Foundation

/// One encoder window of a clip and its log-mel features.
public struct AudioWindowFeatures: Sendable, Equatable {
    /// First sample of the window in the clip (at the model's sample rate).
    public let startSample: Int
    /// Samples of real audio in the window (the rest is padding); `maxLengthSamples` for a full window.
    public let sampleCount: Int
    /// `[framesPerWindow x nMels]`, frame-major.
    public let features: LogMelSpectrogram
}

/// A clip's features: one log-mel matrix per encoder window (one window for clips up to
/// `max_length_s`; see ``AudioFrontEnd`` for longer clips).
public struct AudioFeatures: Sendable, Equatable {
    public let windows: [AudioWindowFeatures]
    /// Samples of the whole clip at the model's sample rate (after resampling).
    public let sampleCount: Int
    /// The model's sample rate.
    public let sampleRate: Int
    /// The decoded file's header facts (nil when the features came from raw samples).
    public let source: AudioInfo?

    public var durationSeconds: Double { Double(sampleCount) / Double(sampleRate) }
}

/// The audio front-end of a CLAP-style encoder: encoded bytes -> mono float32 (libsndfile,
/// mean of channels) -> the model's sample rate (libsoxr HQ, as `librosa.resample`) ->
/// optional level normalisation (``ActiveLevel``) -> encoder windows -> log-mel features (as transformers' `ClapFeatureExtractor`).
///
/// **Windows.** A clip of n samples (at the model rate) and a window of L = `maxLengthSamples`:
/// - n < L: one window, filled per `padding` (CLAP: "repeatpad", the clip tiled floor(L / n)
///   times, then zeros), exactly as ClapFeatureExtractor; with "none" (Whisper) the window
///   holds just the clip's own frames;
/// - n == L: one window, as is;
/// - n > L (ClapFeatureExtractor would take a random crop; we never do): consecutive windows
///   `[0, L), [L, 2L), ...`; a last, partial window is filled like a short clip, and it is
///   dropped when it holds less than `min_tail_s` seconds of audio (default 1 s) since a
///   sliver tiled to 10 s would weigh as much as a full window in the average. The encoder
///   embeds each window and averages the embeddings.
///
/// Thread-safe: one instance serves concurrent requests.
public struct AudioFrontEnd: Sendable {
    public let configuration: AudioFrontEndConfiguration
    public let decoder: AudioDecoder
    public let resampler: Resampler
    public let extractor: LogMelExtractor

    /// Throws `invalid_audio_config`.
    public init(configuration: AudioFrontEndConfiguration = .clapUnfused,
                decodingOptions: AudioDecodingOptions = AudioDecodingOptions()) throws {
        self.configuration = configuration
        self.extractor = try LogMelExtractor(configuration: configuration)
        self.decoder = AudioDecoder(options: decodingOptions)
        self.resampler = Resampler(quality: configuration.resampleQuality)
    }

    /// Features of an encoded file (WAV, FLAC, ...) held in memory. Throws ``AudioError``.
    public func features(encoded data: Data) throws -> AudioFeatures {
        let decoded = try decoder.decode(data)
        return try features(decoded: decoded)
    }

    /// Features of a decoded clip.
    public func features(decoded: DecodedAudio) throws -> AudioFeatures {
        let waveform = try modelRateWaveform(samples: decoded.samples, sampleRate: decoded.sampleRate)
        return try features(modelRate: waveform, source: decoded.info)
    }

    /// Features of mono float samples at `sampleRate`, with the same checks as for files
    /// (empty, sample rate range, duration limit, non-finite samples). Throws ``AudioError``.
    public func features(samples: [Float], sampleRate: Int) throws -> AudioFeatures {
        let options = decoder.options
        guard !samples.isEmpty else { throw AudioError(.emptyAudio, "no samples") }
        guard options.sampleRateRange.contains(sampleRate) else {
            throw AudioError(.invalidSampleRate, "the sample rate \(sampleRate) Hz is outside \(options.sampleRateRange.lowerBound)...\(options.sampleRateRange.upperBound) Hz")
        }
        guard samples.count <= AudioDecoder.maxFrames(seconds: options.maxDurationSeconds, sampleRate: sampleRate) else {
            throw AudioError(.audioTooLong, "the audio lasts \(AudioDecoder.format(Double(samples.count) / Double(sampleRate))) s; the limit is \(AudioDecoder.format(options.maxDurationSeconds)) s")
        }
        var samples = samples
        try AudioDecoder.checkFinite(&samples, policy: options.nonFiniteSamples)
        let waveform = try modelRateWaveform(samples: samples, sampleRate: sampleRate)
        return try features(modelRate: waveform, source: nil)
    }

    /// Resamples to the model's rate (libsoxr, `resample_quality`).
    public func modelRateWaveform(samples: [Float], sampleRate: Int) throws -> [Float] {
        var out = try resampler.resample(samples, from: sampleRate, to: configuration.sampleRate)
        // Finite input can still overflow float32 in the filter (|x| near 3e38).
        try AudioDecoder.checkFinite(&out, policy: decoder.options.nonFiniteSamples)
        return out
    }

    /// Features of a waveform already at the model's rate (level-normalised first when the
    /// configuration sets `active_level_dbfs`).
    public func features(modelRate waveform: [Float], source: AudioInfo? = nil) throws -> AudioFeatures {
        guard !waveform.isEmpty else { throw AudioError(.emptyAudio, "no samples") }
        var waveform = waveform
        if let target = configuration.activeLevelDBFS {
            waveform = ActiveLevel.normalise(waveform, sampleRate: configuration.sampleRate, targetDBFS: target)
        }
        let windows = windowWaveforms(waveform).map { window in
            AudioWindowFeatures(startSample: window.start, sampleCount: window.count,
                                features: extractor.spectrogram(window.samples))
        }
        return AudioFeatures(windows: windows, sampleCount: waveform.count,
                             sampleRate: configuration.sampleRate, source: source)
    }

    /// The encoder windows of a model-rate waveform, each `maxLengthSamples` long and filled
    /// per `padding` (see the type's documentation).
    public func windowWaveforms(_ waveform: [Float]) -> [(start: Int, count: Int, samples: [Float])] {
        let length = configuration.maxLengthSamples
        let minTail = Int((configuration.minTailSeconds * Double(configuration.sampleRate)).rounded())
        return Self.windowRanges(sampleCount: waveform.count, windowLength: length, minimumTail: minTail).map { range in
            let slice = Array(waveform[range])
            return (range.lowerBound, range.count, Self.fill(slice, to: length, padding: configuration.padding))
        }
    }

    /// Consecutive windows `[0, L), [L, 2L), ...` covering `sampleCount` samples; a last partial
    /// window shorter than `minimumTail` is dropped unless it is the only one.
    public static func windowRanges(sampleCount n: Int, windowLength L: Int, minimumTail: Int) -> [Range<Int>] {
        guard n > 0, L > 0 else { return [] }
        var ranges: [Range<Int>] = []
        var start = 0
        while start < n {
            ranges.append(start..<min(start + L, n))
            start += L
        }
        if ranges.count > 1, let last = ranges.last, last.count < L, last.count < minimumTail {
            ranges.removeLast()
        }
        return ranges
    }

    /// ClapFeatureExtractor's short-clip filling: "repeatpad" tiles `floor(L / n)` copies then
    /// pads zeros; "repeat" tiles `floor(L / n) + 1` copies and cuts; "pad" pads zeros.
    public static func fill(_ clip: [Float], to length: Int, padding: AudioFrontEndConfiguration.Padding) -> [Float] {
        let n = clip.count
        guard n < length, n > 0 else { return Array(clip.prefix(length)) }
        var out: [Float] = []
        out.reserveCapacity(length)
        switch padding {
        case .repeatpad:
            for _ in 0..<(length / n) { out.append(contentsOf: clip) }
        case .repeat:
            for _ in 0..<(length / n + 1) { out.append(contentsOf: clip) }
            out.removeLast(out.count - length)
        case .pad:
            out.append(contentsOf: clip)
        case .none:
            return clip
        }
        if out.count < length { out.append(contentsOf: repeatElement(0, count: length - out.count)) }
        return out
    }
}
