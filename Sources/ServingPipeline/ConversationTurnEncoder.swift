import AudioTowers
import Conversation
import Foundation

/// The turn embedder as the conversation layer's `TurnEncoder`: audio errors caused by the
/// client's input (undecodable or too long audio, ...) become `invalid_input` with the stage's
/// stable code; anything else is an internal error.
public struct ConversationTurnEncoder: TurnEncoder {
    public let embedder: TurnEmbedder

    public init(_ embedder: TurnEmbedder) { self.embedder = embedder }

    public var dimension: Int { embedder.dimension }

    /// Codes that describe the client's audio, not a fault of the service.
    static let clientAudioCodes: Set<String> = [
        "empty_audio", "audio_too_short", "unreadable_audio", "unsupported_encoding", "audio_too_long", "invalid_sample_rate",
        "invalid_channel_count", "non_finite_samples",
    ]

    public func embed(audio: Data) throws -> [Float] {
        do {
            return try embedder.embed(audio: audio)
        } catch let error as AudioTowerError where Self.clientAudioCodes.contains(error.code) {
            throw ConversationError(.invalidInput, code: error.code, error.message)
        } catch {
            throw ConversationError(.internal, code: "audio_encoder_failed", "\(error)")
        }
    }

    public func audioSeconds(of audio: Data) throws -> Double {
        do {
            return try embedder.audio.durationBound(audio: audio)
        } catch let error as AudioTowerError where Self.clientAudioCodes.contains(error.code) {
            throw ConversationError(.invalidInput, code: error.code, error.message)
        } catch {
            throw ConversationError(.internal, code: "audio_encoder_failed", "\(error)")
        }
    }

    public func embed(text: String) throws -> [Float] {
        do {
            return try embedder.embed(text: text)
        } catch {
            throw ConversationError(.internal, code: "text_encoder_failed", "\(error)")
        }
    }
}
