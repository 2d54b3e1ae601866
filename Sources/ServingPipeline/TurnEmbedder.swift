import AudioTowers
import Conversation
import ErrorVocabulary
import Foundation
import ModelPackage
import TextTower

/// Errors of the turn embedder itself, with stable codes (`invalid_configuration`: the two
/// halves do not fit together). The halves' own errors pass through: the front end's `AudioError`
/// (`unreadable_audio`, `audio_too_long`, ...), ``AudioTowerError`` and the text tower's
/// `TextEncoderError`.
public struct TurnEmbedderError: CodedError, Equatable {
    public let code: String
    public let message: String
    public init(code: String, message: String) { self.code = code; self.message = message }
    /// Internal: a broken model package or a bug, never the service client's input.
    public var kind: ErrorKind { .internal }
}

/// The encoder half of the pipeline: a turn's encoded audio and its transcript to two
/// L2-normalised embeddings of one space, by the same code for the paper's CLAP (HTSAT audio
/// tower) and a Whisper audio tower.
///
/// Audio: ``AudioEmbedder`` (front end -> the audio tower per window -> mean of the window
/// embeddings). Text: ``TextEmbedder`` (tokenizer -> transformer + pooling + projection).
/// Thread-safe.
public final class TurnEmbedder: Sendable {
    public let audio: AudioEmbedder
    public let text: TextEmbedder

    public init(audio: AudioEmbedder, text: TextEmbedder) throws {
        guard audio.dimension == text.dimension else {
            throw TurnEmbedderError(code: "invalid_configuration",
                                    message: "audio embeddings (\(audio.dimension)) and text embeddings (\(text.dimension)) differ in size")
        }
        self.audio = audio
        self.text = text
    }

    /// Builds both halves from a package: `audio` section (front end and audio tower), `text`
    /// section (tower, projection and `tokenizer` files relative to the package).
    /// `maxAudioSeconds`: longer clips are refused (`audio_too_long`) from their header.
    public convenience init(package: ModelPackage, maxAudioSeconds: Double = 120) throws {
        try self.init(audio: AudioEmbedder(package: package, maxAudioSeconds: maxAudioSeconds),
                      text: TextEmbedder(package: package))
    }

    /// Size of both embeddings.
    public var dimension: Int { text.dimension }

    /// The embedding of an encoded clip (WAV, FLAC, ...).
    public func embed(audio data: Data) throws -> [Float] {
        try audio.embed(audio: data)
    }

    /// The embedding of a clip given as samples at any rate.
    public func embed(samples: [Float], sampleRate: Int) throws -> [Float] {
        try audio.embed(samples: samples, sampleRate: sampleRate)
    }

    /// The embedding of a transcript (truncated as the tokenizer truncates).
    public func embed(text transcript: String) throws -> [Float] {
        try text.embed(transcript)
    }
}

/// The turn embedder is the conversation layer's `TurnEncoder`: its errors speak the common
/// vocabulary (the client's audio is `invalid_input` under the stage's code, a broken package
/// internal), so the engine answers them unchanged.
extension TurnEmbedder: TurnEncoder {
    /// An upper bound of an encoded clip's duration from its header (see `AudioEmbedder.durationBound`).
    public func audioSeconds(of data: Data) throws -> Double {
        try audio.durationBound(audio: data)
    }

    /// The clips' windows through the audio tower in one batch.
    public func embed(audios: [Data]) -> [Result<[Float], any Error>] {
        audio.embed(audios: audios)
    }

    /// The transcripts through the text tower in one batch (one by one if the batch fails, so
    /// that each keeps its own error).
    public func embed(texts: [String]) -> [Result<[Float], any Error>] {
        if texts.count > 1, let all = try? text.embed(batch: texts) { return all.map { .success($0) } }
        return texts.map { transcript in Result { try text.embed(transcript) } }
    }
}
