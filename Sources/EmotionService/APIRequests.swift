import Conversation
import Foundation

/// The body of `POST /v1/sessions/{session_id}/turns` (openapi.yaml `TurnRequest`), decoded
/// strictly by `StrictJSON.decode`: what a client may send, checked field by field in the order
/// the errors are answered (speaker, transcript, audio, the empty-turn rule, turn_id, timestamp).
struct TurnRequest: Decodable {
    static let fields: Set<String> = ["speaker", "transcript", "audio", "turn_id", "timestamp"]

    let turn: TurnInput

    init(from decoder: any Decoder) throws {
        turn = try Self.turn(StrictObject(decoder, allowed: Self.fields), hasTurnId: true)
    }

    /// A turn out of its object, also for the turns of a dialogue (which have no `turn_id`).
    static func turn(_ object: StrictObject, hasTurnId: Bool) throws(APIError) -> TurnInput {
        let speaker = try object.string("speaker", required: true) ?? ""
        let transcript = try object.string("transcript") ?? ""
        // Decoded from the body's bytes: the base64 text is not copied into a string.
        let audio = try object.base64("audio", decode: audioBytes)
        if audio == nil && EmotionAPI.isBlank(transcript) {
            throw APIError(.invalidInput, "empty_turn", "a turn needs 'audio', a non-empty 'transcript', or both")
        }
        return TurnInput(turnId: hasTurnId ? try object.string("turn_id") : nil, speaker: speaker,
                         transcript: transcript, audio: audio, clientTimestamp: try object.string("timestamp"))
    }

    /// Base64 (white space and other non-alphabet ASCII ignored, as Foundation's
    /// `.ignoreUnknownCharacters` does; any non-ASCII refused) out of its UTF-8 bytes, read in
    /// place; zero bytes is `empty_audio`.
    static func audioBytes(_ utf8: UnsafeBufferPointer<UInt8>) throws(APIError) -> Data {
        var decoded: Data?
        if utf8.allSatisfy({ $0 < 0x80 }) {
            if let base = utf8.baseAddress, !utf8.isEmpty {
                let view = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: utf8.count, deallocator: .none)
                decoded = Data(base64Encoded: view, options: [.ignoreUnknownCharacters])
            } else {
                decoded = Data()
            }
        }
        guard let bytes = decoded else { throw APIError(.invalidInput, "invalid_base64", "'audio' is not valid base64") }
        guard !bytes.isEmpty else { throw APIError(.invalidInput, "empty_audio", "'audio' decodes to zero bytes") }
        return bytes
    }
}

/// The body of `POST /v1/dialogues/analyze` (openapi.yaml `DialogueRequest`), decoded strictly
/// by `StrictJSON.decode`: the turns in order (each refused with its index in the path, e.g.
/// `turns[2].speaker`), then `repeat_twice`, a real boolean (default true).
struct DialogueRequest: Decodable {
    static let fields: Set<String> = ["turns", "repeat_twice"]

    let turns: [TurnInput]
    let repeatTwice: Bool

    /// One turn of a dialogue: a `TurnRequest` without `turn_id`.
    struct Turn: Decodable {
        static let fields = TurnRequest.fields.subtracting(["turn_id"])

        let turn: TurnInput

        init(from decoder: any Decoder) throws {
            turn = try TurnRequest.turn(StrictObject(decoder, allowed: Self.fields), hasTurnId: false)
        }
    }

    init(from decoder: any Decoder) throws {
        let object = try StrictObject(decoder, allowed: Self.fields)
        turns = try object.array("turns", of: Turn.self, required: true)?.map(\.turn) ?? []
        repeatTwice = try object.boolean("repeat_twice") ?? true
    }
}
