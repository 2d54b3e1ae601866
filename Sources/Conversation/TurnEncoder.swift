import Foundation

/// Turns a dialogue turn's raw inputs into the classifier's embeddings (the turn embedder through
/// ServingPipeline's `TurnEmbedder`, or a stand-in in tests). Implementations are
/// thread-safe and throw `CodedError`s of kind `.invalidInput` for unusable inputs (undecodable
/// audio, audio too long, ...); other errors are internal.
public protocol TurnEncoder: Sendable {
    /// Length of every embedding.
    var dimension: Int { get }
    /// Embedding of an encoded audio clip (WAV, FLAC, ...).
    func embed(audio: Data) throws -> [Float]
    /// Embedding of a transcript (non-empty).
    func embed(text: String) throws -> [Float]
    /// An upper bound of a clip's duration in seconds, from its header alone (no decoding), so
    /// that a dialogue's audio is counted before any heavy work: the length the header states,
    /// or the encoder's per-clip limit when it states none. Throws like `embed(audio:)` for
    /// an unreadable header. Default: 0 (an encoder that cannot tell counts no audio time).
    func audioSeconds(of audio: Data) throws -> Double
    /// Embeddings of several clips, each as `embed(audio:)` gives it (default: one by one).
    func embed(audios: [Data]) -> [Result<[Float], any Error>]
    /// Embeddings of several transcripts, each as `embed(text:)` gives it (default: one by one).
    func embed(texts: [String]) -> [Result<[Float], any Error>]
}

extension TurnEncoder {
    public func audioSeconds(of audio: Data) throws -> Double { 0 }

    /// Embeddings of several clips (the turns of one batch, from different sessions), each as
    /// `embed(audio:)` gives it; an encoder that can run them together overrides this.
    public func embed(audios: [Data]) -> [Result<[Float], any Error>] {
        audios.map { clip in Result { try embed(audio: clip) } }
    }

    /// Embeddings of several transcripts, each as `embed(text:)` gives it; likewise.
    public func embed(texts: [String]) -> [Result<[Float], any Error>] {
        texts.map { text in Result { try embed(text: text) } }
    }
}

/// One turn as a client posts it.
public struct TurnInput: Sendable, Equatable {
    /// Client-chosen id; a retry with the same id returns the stored answer.
    public var turnId: String?
    public var speaker: String
    /// May be empty when audio is given.
    public var transcript: String
    /// Encoded audio bytes; nil when the turn has only a transcript.
    public var audio: Data?
    /// Opaque client timestamp, stored and returned.
    public var clientTimestamp: String?

    public init(turnId: String? = nil, speaker: String, transcript: String, audio: Data? = nil,
                clientTimestamp: String? = nil) {
        self.turnId = turnId
        self.speaker = speaker
        self.transcript = transcript
        self.audio = audio
        self.clientTimestamp = clientTimestamp
    }

    /// True when the transcript is not blank (a blank transcript is no text modality).
    public var hasTranscript: Bool {
        !transcript.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }

    /// A stable digest of the content (FNV-1a, 64-bit), to tell an honest retry from a
    /// different turn reusing an id, also across restarts.
    var fingerprint: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        }
        mix(speaker.utf8); mix([0xff])
        mix(transcript.utf8); mix([0xff])
        if let audio { mix(audio) } else { mix([0xfe]) }
        return h
    }
}
