import ErrorVocabulary

/// An error from the audio front-end, with a stable machine-readable code.
///
/// Every failure caused by caller-supplied bytes or samples is reported with one of these
/// instead of a crash, so a server can map ``code`` straight to a JSON error response
/// (all of them are client errors, HTTP 400/413/415/422, except `invalid_audio_config`, which is
/// a broken model package, and `resampling_failed`, which is internal).
public struct AudioError: CodedError, Equatable {
    /// Stable error codes; the raw values are part of the public contract.
    public enum Code: String, Sendable, CaseIterable {
        /// No bytes, no samples, or a file whose header and data hold zero frames.
        case emptyAudio = "empty_audio"
        /// Not a recognised audio file, a malformed header, a decoder error in the data, or a
        /// truncated file (the data chunk or stream ends before the header says it does).
        case unreadableAudio = "unreadable_audio"
        /// A recognised container whose encoding (or container) this service does not decode.
        case unsupportedEncoding = "unsupported_encoding"
        /// Longer than ``AudioDecodingOptions/maxDurationSeconds``; decided from the header
        /// before the data is decoded whenever the header states the length.
        case audioTooLong = "audio_too_long"
        /// A sample rate outside ``AudioDecodingOptions/sampleRateRange`` (or not positive).
        case invalidSampleRate = "invalid_sample_rate"
        /// Zero channels, or more than ``AudioDecodingOptions/maxChannels``.
        case invalidChannelCount = "invalid_channel_count"
        /// NaN or infinite samples in a floating-point file, with the `.reject` policy.
        case nonFiniteSamples = "non_finite_samples"
        /// The front-end configuration (a model package's "audio" section) is invalid.
        case invalidAudioConfig = "invalid_audio_config"
        /// libsoxr refused to resample (should not happen for valid rates).
        case resamplingFailed = "resampling_failed"
    }

    /// Why, as a case of the stable codes.
    public let reason: Code
    /// A human-readable explanation (not stable; for logs and error messages).
    public let message: String

    public init(_ code: Code, _ message: String) {
        reason = code
        self.message = message
    }

    public var code: String { reason.rawValue }

    /// The client's audio is at fault, except for a broken configuration and a failed resampler.
    public var kind: ErrorKind {
        switch reason {
        case .invalidAudioConfig, .resamplingFailed: return .internal
        default: return .invalidInput
        }
    }
}
