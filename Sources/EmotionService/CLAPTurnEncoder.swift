import CLAP
import Conversation
import Foundation

/// The CLAP encoder as the conversation layer's `TurnEncoder`: stage errors caused by the
/// client's input (undecodable or too long audio, ...) become `invalid_input` with the stage's
/// stable code; anything else is an internal error.
public struct CLAPTurnEncoder: TurnEncoder {
    public let encoder: CLAPEncoder

    public init(_ encoder: CLAPEncoder) { self.encoder = encoder }

    public var dimension: Int { encoder.dimension }

    /// Codes that describe the client's audio, not a fault of the service.
    static let clientAudioCodes: Set<String> = [
        "empty_audio", "audio_too_short", "unreadable_audio", "unsupported_encoding", "audio_too_long", "invalid_sample_rate",
        "invalid_channel_count", "non_finite_samples",
    ]

    public func embed(audio: Data) throws -> [Float] {
        do {
            return try encoder.embed(audio: audio)
        } catch let error as CLAPEncoderError where Self.clientAudioCodes.contains(error.code) {
            throw ConversationError(.invalidInput, code: error.code, error.message)
        } catch {
            throw ConversationError(.internal, code: "audio_encoder_failed", "\(error)")
        }
    }

    public func embed(text: String) throws -> [Float] {
        do {
            return try encoder.embed(text: text)
        } catch {
            throw ConversationError(.internal, code: "text_encoder_failed", "\(error)")
        }
    }
}
