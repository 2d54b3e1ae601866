import Conversation
import Foundation

/// JSON shapes of the API (see openapi.yaml). Field names are part of the contract.
enum APIModels {
    struct Turn: Encodable {
        let index: Int
        let turnId: String
        let speaker: String
        let emotion: String
        let probabilities: [String: Float]
        let gates: [String: Float]
        let clientTimestamp: String?

        enum CodingKeys: String, CodingKey {
            case index, turnId = "turn_id", speaker, emotion, probabilities, gates, clientTimestamp = "client_timestamp"
        }
    }

    struct DecodedTurn: Encodable {
        let index: Int
        let emotion: String
        let revised: Bool
    }

    struct Timings: Encodable {
        let queue, audio, text, classify, ded, total: Double
    }

    struct TurnAnswer: Encodable {
        let sessionId: String
        let turn: Turn
        let decoded: [DecodedTurn]
        let timingsMs: Timings
        let replayed: Bool

        enum CodingKeys: String, CodingKey {
            case sessionId = "session_id", turn, decoded, timingsMs = "timings_ms", replayed
        }
    }

    struct SessionTurn: Encodable {
        let index: Int
        let turnId: String
        let speaker: String
        let transcript: String
        let hasAudio: Bool
        let emotion: String
        let probabilities: [String: Float]
        let gates: [String: Float]
        let decodedEmotion: String
        let clientTimestamp: String?
        let receivedAt: Date

        enum CodingKeys: String, CodingKey {
            case index, turnId = "turn_id", speaker, transcript, hasAudio = "has_audio", emotion, probabilities, gates
            case decodedEmotion = "decoded_emotion", clientTimestamp = "client_timestamp", receivedAt = "received_at"
        }
    }

    struct SpeakerSummary: Encodable {
        let speaker: String
        let turns: [Int]
        let emotions: [String]
        let decodedEmotions: [String]

        enum CodingKeys: String, CodingKey {
            case speaker, turns, emotions, decodedEmotions = "decoded_emotions"
        }
    }

    struct Session: Encodable {
        let sessionId: String
        let createdAt: Date
        let lastActivity: Date
        let turns: [SessionTurn]
        let speakers: [SpeakerSummary]

        enum CodingKeys: String, CodingKey {
            case sessionId = "session_id", createdAt = "created_at", lastActivity = "last_activity", turns, speakers
        }
    }

    struct AnalyzedTurn: Encodable {
        let index: Int
        let speaker: String
        let emotion: String
        let probabilities: [String: Float]
        let gates: [String: Float]
        let decodedEmotion: String

        enum CodingKeys: String, CodingKey {
            case index, speaker, emotion, probabilities, gates, decodedEmotion = "decoded_emotion"
        }
    }

    struct Analysis: Encodable {
        let turns: [AnalyzedTurn]
        let decoded: [String]
        let timingsMs: [String: Double]

        enum CodingKeys: String, CodingKey { case turns, decoded, timingsMs = "timings_ms" }
    }

    struct Status: Encodable {
        let status: String
        /// What is wrong while `status` is `degraded` (state directory unusable, journal failing).
        var problems: [String]? = nil
    }
}
