import Conversation
import Foundation
import Testing
@testable import EmotionService

/// The request bodies' JSON contract (openapi.yaml `TurnRequest`, `DialogueRequest`): status,
/// code and the exact message of every refusal, field paths included, as `TurnRequest` and
/// `DialogueRequest` decode them.
@Suite struct StrictJSONTests {
    enum Route { case turn, dialogue }

    static func refusal(_ route: Route, _ body: Data) -> APIError? {
        do throws(APIError) {
            switch route {
            case .turn: _ = try EmotionAPI.parseTurn(body)
            case .dialogue: _ = try EmotionAPI.parseDialogue(body)
            }
            return nil
        } catch {
            return error
        }
    }

    static let turnFields = "allowed: audio, speaker, timestamp, transcript, turn_id"
    static let dialogueTurnFields = "allowed: audio, speaker, timestamp, transcript"

    @Test(arguments: [
        // 400: not a JSON object.
        (Route.turn, "", 400, "malformed_json", "the request body is empty; a JSON object is expected"),
        (.turn, "{not json", 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x"} trailing"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "\ud800"}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x", "timestamp": "\ud800"}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x\q"}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, "{\"speaker\": \"A\", \"transcript\": \"a raw\ttab\"}", 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        // Values JSONDecoder only checks when it decodes them (never an unknown field's, nor after
        // an earlier error): 400 all the same, as with JSONSerialization.
        (.turn, #"{"speaker": "A", "transcript": "x", "foo": "\udc00"}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": 5, "transcript": "\q"}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x", "foo": "\u12G4"}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x", "foo": 01}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x", "foo": 1.}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x", "foo": -}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x", "foo": 1e}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": "A", "transcript": "x", "foo": 1.5.2}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, #"{"speaker": 1e400, "transcript": "x"}"#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
        (.turn, "{\"speaker\": \"A\", \"transcript\": \"x\", \"foo\": \"\u{1}\"}", 400, "malformed_json",
         "the body is not valid JSON (or not UTF-8)"),
        // Numbers JSON allows are no syntax error (but no string either).
        (.turn, #"{"speaker": -0.5e+10, "transcript": "x"}"#, 422, "invalid_field", "speaker: must be a string"),
        (.turn, #"{"speaker": 1E-400, "transcript": "x"}"#, 422, "invalid_field", "speaker: must be a string"),
        (.turn, #"{"speaker": 0, "transcript": "x", "foo": [-0, 10, 2.50]}"#, 422, "unknown_field", "unknown field 'foo'; \(turnFields)"),
        (.turn, #"[{"speaker": "A", "transcript": "x"}]"#, 400, "malformed_json", "the body must be a JSON object"),
        (.dialogue, #"[{"turns": []}]"#, 400, "malformed_json", "the body must be a JSON object"),
        (.turn, #""speaker""#, 400, "malformed_json", "the body must be a JSON object"),
        (.turn, "null", 400, "malformed_json", "the body must be a JSON object"),
        (.turn, "7", 400, "malformed_json", "the body must be a JSON object"),
        // Unknown fields, named with their path, the first in sorted order.
        (.turn, #"{"speaker": "A", "transcript": "x", "mood": "bad", "color": 1}"#, 422, "unknown_field",
         "unknown field 'color'; \(turnFields)"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}], "extra": true}"#, 422, "unknown_field",
         "unknown field 'extra'; allowed: repeat_twice, turns"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}, {"speaker": "B", "transcript": "y"}, {"speaker": "A", "transcript": "z", "foo": 1}]}"#,
         422, "unknown_field", "unknown field 'turns[2].foo'; \(dialogueTurnFields)"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x", "turn_id": "t1"}]}"#, 422, "unknown_field",
         "unknown field 'turns[0].turn_id'; \(dialogueTurnFields)"),
        // Unknown fields are refused before the types of the known ones are looked at.
        (.turn, #"{"speaker": 7, "mood": "bad"}"#, 422, "unknown_field", "unknown field 'mood'; \(turnFields)"),
        // Wrong types: a number or a boolean is not a string.
        (.turn, #"{"speaker": 7, "transcript": "x"}"#, 422, "invalid_field", "speaker: must be a string"),
        (.turn, #"{"speaker": true, "transcript": "x"}"#, 422, "invalid_field", "speaker: must be a string"),
        (.turn, #"{"speaker": "A", "transcript": 12.5}"#, 422, "invalid_field", "transcript: must be a string"),
        (.turn, #"{"speaker": "A", "transcript": ["x"]}"#, 422, "invalid_field", "transcript: must be a string"),
        (.turn, #"{"speaker": "A", "audio": {"b64": "AQID"}}"#, 422, "invalid_field", "audio: must be a string"),
        (.turn, #"{"speaker": "A", "transcript": "x", "turn_id": 5}"#, 422, "invalid_field", "turn_id: must be a string"),
        (.turn, #"{"speaker": "A", "transcript": "x", "timestamp": 1700000000}"#, 422, "invalid_field", "timestamp: must be a string"),
        (.dialogue, #"{"turns": [{"speaker": 0, "transcript": "x"}]}"#, 422, "invalid_field", "turns[0].speaker: must be a string"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}, {"speaker": "B", "transcript": false}]}"#, 422, "invalid_field",
         "turns[1].transcript: must be a string"),
        (.dialogue, #"{"turns": {"speaker": "A"}}"#, 422, "invalid_field", "turns: must be an array"),
        (.dialogue, #"{"turns": "A"}"#, 422, "invalid_field", "turns: must be an array"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}, 1]}"#, 422, "invalid_field", "turns[1]: must be an object"),
        (.dialogue, #"{"turns": [["A", "x"]]}"#, 422, "invalid_field", "turns[0]: must be an object"),
        (.dialogue, #"{"turns": [null]}"#, 422, "invalid_field", "turns[0]: must be an object"),
        // repeat_twice is a real boolean: not 0/1, not "true", not null.
        (.dialogue, #"{"turns": [], "repeat_twice": 1}"#, 422, "invalid_field", "repeat_twice: must be true or false"),
        (.dialogue, #"{"turns": [], "repeat_twice": 0}"#, 422, "invalid_field", "repeat_twice: must be true or false"),
        (.dialogue, #"{"turns": [], "repeat_twice": "true"}"#, 422, "invalid_field", "repeat_twice: must be true or false"),
        (.dialogue, #"{"turns": [], "repeat_twice": null}"#, 422, "invalid_field", "repeat_twice: must be true or false"),
        // null is a wrong type, for optional fields too (omit them instead).
        (.turn, #"{"speaker": "A", "transcript": "x", "timestamp": null}"#, 422, "invalid_field",
         "timestamp: must be a string, not null (omit an optional field)"),
        (.turn, #"{"speaker": null, "transcript": "x"}"#, 422, "invalid_field",
         "speaker: must be a string, not null (omit an optional field)"),
        (.turn, #"{"speaker": "A", "transcript": null, "audio": "AQID"}"#, 422, "invalid_field",
         "transcript: must be a string, not null (omit an optional field)"),
        (.dialogue, #"{"turns": null}"#, 422, "invalid_field", "turns: must be an array, not null (omit an optional field)"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x", "audio": null}]}"#, 422, "invalid_field",
         "turns[0].audio: must be a string, not null (omit an optional field)"),
        // Missing required fields.
        (.turn, #"{"transcript": "x"}"#, 422, "missing_field", "'speaker' is required"),
        (.turn, "{}", 422, "missing_field", "'speaker' is required"),
        (.dialogue, "{}", 422, "missing_field", "'turns' is required"),
        (.dialogue, #"{"repeat_twice": false}"#, 422, "missing_field", "'turns' is required"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}, {"transcript": "y"}]}"#, 422, "missing_field",
         "'turns[1].speaker' is required"),
        // Audio and the empty-turn rule.
        (.turn, #"{"speaker": "A", "audio": "%%%not base64"}"#, 422, "invalid_base64", "'audio' is not valid base64"),
        (.turn, #"{"speaker": "A", "audio": "AQIDBA"}"#, 422, "invalid_base64", "'audio' is not valid base64"),
        (.turn, #"{"speaker": "A", "audio": "AQID\u00e9BA=="}"#, 422, "invalid_base64", "'audio' is not valid base64"),
        (.turn, #"{"speaker": "A", "audio": ""}"#, 422, "empty_audio", "'audio' decodes to zero bytes"),
        (.turn, #"{"speaker": "A", "audio": "-_-_"}"#, 422, "empty_audio", "'audio' decodes to zero bytes"),
        (.dialogue, #"{"turns": [{"speaker": "A", "audio": "!!"}]}"#, 422, "invalid_base64", "'audio' is not valid base64"),
        (.turn, #"{"speaker": "A"}"#, 422, "empty_turn", "a turn needs 'audio', a non-empty 'transcript', or both"),
        (.turn, #"{"speaker": "A", "transcript": " \t\n"}"#, 422, "empty_turn", "a turn needs 'audio', a non-empty 'transcript', or both"),
        (.turn, #"{"speaker": "A", "transcript": "\u00a0\ufeff\u2028"}"#, 422, "empty_turn",
         "a turn needs 'audio', a non-empty 'transcript', or both"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}, {"speaker": "B", "transcript": ""}]}"#, 422, "empty_turn",
         "a turn needs 'audio', a non-empty 'transcript', or both"),
        // The order of the checks: audio and the empty-turn rule come before turn_id and timestamp,
        // and every turn before repeat_twice.
        (.turn, #"{"speaker": "A", "transcript": " ", "turn_id": 5}"#, 422, "empty_turn",
         "a turn needs 'audio', a non-empty 'transcript', or both"),
        (.turn, #"{"speaker": "A", "audio": "%", "timestamp": null}"#, 422, "invalid_base64", "'audio' is not valid base64"),
        (.dialogue, #"{"repeat_twice": 1, "turns": [{"speaker": 2}]}"#, 422, "invalid_field", "turns[0].speaker: must be a string"),
        // A name twice in one object is refused (JSONSerialization kept the last value, JSONDecoder
        // keeps the first), named by its path, also when spelled with escapes; syntax errors come first.
        (.turn, #"{"speaker": "A", "transcript": "x", "speaker": "B"}"#, 422, "duplicate_field",
         "field 'speaker' occurs more than once; each name may occur once per object"),
        (.turn, #"{"speaker": 5, "transcript": "x", "speaker": "B"}"#, 422, "duplicate_field",
         "field 'speaker' occurs more than once; each name may occur once per object"),
        (.turn, #"{"speaker": "A", "transcript": "x", "sp\u0065aker": "B"}"#, 422, "duplicate_field",
         "field 'speaker' occurs more than once; each name may occur once per object"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}, {"speaker": "B", "transcript": "y", "transcript": ""}]}"#, 422,
         "duplicate_field", "field 'turns[1].transcript' occurs more than once; each name may occur once per object"),
        (.dialogue, #"{"turns": [{"speaker": "A", "transcript": "x"}], "repeat_twice": true, "turns": []}"#, 422,
         "duplicate_field", "field 'turns' occurs more than once; each name may occur once per object"),
        (.turn, #"{"speaker": "A", "speaker": "B""#, 400, "malformed_json", "the body is not valid JSON (or not UTF-8)"),
    ] as [(Route, String, Int, String, String)])
    func refusals(_ route: Route, _ body: String, _ status: Int, _ code: String, _ message: String) {
        let error = Self.refusal(route, Data(body.utf8))
        #expect(error?.status == status, "\(body)")
        #expect(error?.code == code, "\(body)")
        #expect(error?.message == message, "\(body)")
    }

    @Test func validBodiesDecode() throws {
        let turn = try EmotionAPI.parseTurn(Data(#"{"timestamp": "12:00", "turn_id": "t-1", "audio": "AQ ID\nBA==", "transcript": "hi", "speaker": "agent"}"#.utf8))
        #expect(turn.speaker == "agent" && turn.transcript == "hi" && turn.turnId == "t-1" && turn.clientTimestamp == "12:00")
        #expect(turn.audio == Data([1, 2, 3, 4]))
        let audioOnly = try EmotionAPI.parseTurn(Data(#"{"speaker": "A", "audio": "/w=="}"#.utf8))
        #expect(audioOnly.audio == Data([255]) && audioOnly.transcript == "" && audioOnly.turnId == nil)

        let (turns, repeatTwice) = try EmotionAPI.parseDialogue(Data(
            #"{"repeat_twice": false, "turns": [{"speaker": "A", "transcript": "x"}, {"speaker": "B", "audio": "AQID", "timestamp": "t"}]}"#.utf8))
        #expect(!repeatTwice)
        #expect(turns.map(\.speaker) == ["A", "B"] && turns[1].audio == Data([1, 2, 3]) && turns[1].clientTimestamp == "t")
        #expect(try EmotionAPI.parseDialogue(Data(#"{"turns": []}"#.utf8)).1)
        // The same name in different objects is no duplicate.
        #expect(try EmotionAPI.parseDialogue(Data(#"{"turns": [{"speaker": "A", "transcript": "x"}, {"speaker": "A", "transcript": "x"}]}"#.utf8)).0.count == 2)
        // A trailing comma is accepted, as JSONSerialization (on Linux) accepted it: pinned, so
        // that refusing it one day is a decision.
        #expect(try EmotionAPI.parseTurn(Data(#"{"speaker": "A", "transcript": "x",}"#.utf8)).transcript == "x")
        // A UTF-8 byte-order mark is skipped, as JSONSerialization did.
        #expect(try EmotionAPI.parseTurn(Data([0xEF, 0xBB, 0xBF]) + Data(#"{"speaker": "A", "transcript": "x"}"#.utf8)).speaker == "A")
    }

    /// Ill-formed UTF-8 in a string whose value is never decoded (an unknown field's).
    @Test(arguments: [[0xC3, 0x28], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xFF]] as [[UInt8]])
    func illFormedUTF8IsMalformed(_ sequence: [UInt8]) {
        let body = Data(#"{"speaker": "A", "transcript": "x", "foo": "a"#.utf8) + Data(sequence) + Data(#"b"}"#.utf8)
        let error = Self.refusal(.turn, body)
        #expect(error?.status == 400 && error?.code == "malformed_json")
        // Well-formed sequences of every length are fine, escaped or not.
        let fine = Data(#"{"speaker": "A", "transcript": "é € 𝄞 \u00e9 \ud834\udd1e"}"#.utf8)
        #expect((try? EmotionAPI.parseTurn(fine))?.transcript == "é € 𝄞 é 𝄞")
    }

    @Test func bodiesThatAreNotUTF8AreMalformed() {
        let text = #"{"speaker": "A", "transcript": "x"}"#
        var invalid = Data(#"{"speaker": "A", "transcript": "x"#.utf8)
        invalid.append(contentsOf: [0xFF, 0xFE, 0x22, 0x7D])
        let bodies: [Data] = [
            invalid,
            text.data(using: .utf16LittleEndian) ?? Data(),
            text.data(using: .utf16BigEndian) ?? Data(),
            text.data(using: .utf16) ?? Data(),  // with a byte-order mark
            text.data(using: .utf32LittleEndian) ?? Data(),
            Data(#"{"speaker": "A", "transcript": "x"#.utf8) + Data([0]) + Data(#""}"#.utf8),
        ]
        for body in bodies {
            let error = Self.refusal(.turn, body)
            #expect(error?.status == 400 && error?.code == "malformed_json", "\([UInt8](body.prefix(8)))")
            #expect(error?.message == "the body is not valid JSON (or not UTF-8)")
        }
    }

    /// What was 400 with JSONSerialization is 400 now, and nothing else is: thousands of
    /// mutations (seeded) of valid bodies, a byte replaced, inserted or deleted. Bodies with a NUL
    /// byte are left out: JSONSerialization guessed UTF-16 or UTF-32 from them, which is refused now.
    @Test func malformedIsWhatJSONSerializationRefused() {
        let seeds = [
            #"{"speaker": "agent", "transcript": "Hi \"you\" \u00e9\ud834\udd1e\n", "audio": "AQIDBA==", "turn_id": "t-1", "timestamp": "12:00"}"#,
            #"{"turns": [{"speaker": "A", "transcript": "x"}, {"speaker": "B", "audio": "/w==", "timestamp": "t"}], "repeat_twice": false}"#,
            #"{"speaker": "A", "transcript": "x", "n": [0, -1.5e+3, 10, 2.25E-2, true, null, {"k": "v"}]}"#,
            #"{"turns": [], "repeat_twice": true, "x": {"a": [1, [2, {"b": "é"}]], "c": -0}}"#,
        ]
        let alphabet: [UInt8] = Array(#"{}[],:"\/ubfnrt0123456789-+.eE aluse"#.utf8) + [0x09, 0x0A, 0x0B, 0x1F, 0x7F, 0x80, 0xA0, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xFF]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
        var disagreements: [String] = []
        var malformed = 0
        for round in 0..<6000 {
            var bytes = Array(seeds[round % seeds.count].utf8)
            for _ in 0...next(3) {
                let at = next(bytes.count)
                switch next(3) {
                case 0: bytes[at] = alphabet[next(alphabet.count)]
                case 1: bytes.insert(alphabet[next(alphabet.count)], at: at)
                default: if bytes.count > 1 { bytes.remove(at: at) }
                }
            }
            guard !bytes.contains(0) else { continue }
            let body = Data(bytes)
            let before = ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) == nil
            let now = [Route.turn, .dialogue].map { Self.refusal($0, body)?.code == "malformed_json" }
            if before { malformed += 1 }
            if now != [before, before] {
                disagreements.append("\(before ? "was" : "was not") malformed, now \(now): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count): \(disagreements.prefix(10).joined(separator: "\n"))")
        #expect(malformed > 1000)  // the mutations do break bodies
    }

    @Test func deepNestingIsMalformedNotAMemoryProblem() {
        let depth = 100_000
        let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        for body in [#"{"speaker": "A", "transcript": "x", "deep": \#(nested)}"#, nested] {
            let error = Self.refusal(.turn, Data(body.utf8))
            #expect(error?.status == 400 && error?.code == "malformed_json")
        }
    }

    @Test func largeAudioDecodesIntact() throws {
        let audio = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let body = Data(#"{"speaker": "A", "audio": "\#(audio.base64EncodedString(options: .lineLength76Characters))"}"#
            .replacingOccurrences(of: "\r\n", with: "\\r\\n").utf8)
        #expect(try EmotionAPI.parseTurn(body).audio == audio)
    }

    /// Base64 without escapes is decoded in place from the body (the scan finds each turn's
    /// `audio` value); with escapes (`\/`, `\r\n`, `\u0041`) through the decoded string: the same
    /// bytes either way, and the same refusals.
    @Test func audioIsDecodedFromTheBodyInPlaceWithEscapesTheSame() throws {
        let audio = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) })
        let plain = audio.base64EncodedString()
        #expect(plain.contains("/"))
        let escaped = plain.replacingOccurrences(of: "/", with: #"\/"#).replacingOccurrences(of: "A", with: #"A"#)
        let turnBody = Data(#"{"speaker": "A", "audio": "\#(plain)", "transcript": "audio"}"#.utf8)
        let scan = BodyScan(turnBody)
        let range = try #require(scan.audioRanges["audio"])
        #expect(turnBody[range] == Data(plain.utf8), "the range is the value between its quotes")
        #expect(try EmotionAPI.parseTurn(turnBody).audio == audio)
        #expect(try EmotionAPI.parseTurn(Data(#"{"speaker": "A", "audio": "\#(escaped)"}"#.utf8)).audio == audio)
        #expect(BodyScan(Data(#"{"speaker": "A", "audio": "\#(escaped)"}"#.utf8)).audioRanges.isEmpty)

        let dialogue = Data(#"{"turns": [{"speaker": "A", "transcript": "audio"}, {"speaker": "B", "audio": "\#(plain)"}, {"speaker": "A", "audio": "\#(escaped)"}, {"audio": "AQID", "speaker": "B"}]}"#.utf8)
        #expect(Set(BodyScan(dialogue).audioRanges.keys) == ["turns[1].audio", "turns[3].audio"])
        let turns = try EmotionAPI.parseDialogue(dialogue).0
        #expect(turns.map(\.audio) == [nil, audio, audio, Data([1, 2, 3])])
        // Refusals in place are those of the string path (the same text with its first
        // character escaped as \u00XX).
        for (text, code) in [("é", "invalid_base64"), ("", "empty_audio"), ("  ", "invalid_base64"), ("@@@", "invalid_base64"),
                             ("AQI", "invalid_base64"), ("A===", "invalid_base64")] {
            let inPlace = Self.refusal(.turn, Data(#"{"speaker": "A", "audio": "\#(text)"}"#.utf8))
            #expect(inPlace?.code == code, "'\(text)': \(String(describing: inPlace))")
            guard let first = text.unicodeScalars.first else { continue }
            let hex = String(first.value, radix: 16)
            let escapedText = #"\u"# + String(repeating: "0", count: 4 - hex.count) + hex + String(text.unicodeScalars.dropFirst())
            let throughString = Self.refusal(.turn, Data(#"{"speaker": "A", "audio": "\#(escapedText)"}"#.utf8))
            #expect(throughString == inPlace, "'\(text)'")
        }
        for value in ["3", "null", "[]"] {
            #expect(Self.refusal(.turn, Data(#"{"speaker": "A", "audio": \#(value)}"#.utf8))?.code == "invalid_field")
        }
    }

    /// Many names in one object: each is remembered once (no copy of the set per name).
    @Test func manyNamesInOneObjectAreCheap() {
        let names = (0..<50_000).map { #""f\#($0)": 0"# }.joined(separator: ", ")
        let start = ContinuousClock.now
        let error = Self.refusal(.turn, Data(#"{"speaker": "A", \#(names), "f7": 1}"#.utf8))
        #expect(error?.code == "duplicate_field" && error?.message.hasPrefix("field 'f7' occurs") == true)
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
