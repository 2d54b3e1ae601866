import Conversation
import DialogicalEmotionDecoder
import Foundation
import ConversationTestSupport
import Testing
@testable import EmotionService

/// Routes, JSON shapes and error codes, through the transport-independent API.
@Suite struct EmotionAPITests {
    let api: EmotionAPI

    init() throws {
        let engine = try ConversationEngine(classifier: try makeClassifier(), encoder: FakeEncoder(),
                                            ded: try DEDParameters(p0: 0.2, alpha: 1, beamWidth: 5))
        api = EmotionAPI(engine: engine, modelDescription: ["name": "test"], readiness: { true })
    }

    func call(_ method: String, _ path: String, _ body: String? = nil, headers: [(name: String, value: String)] = [])
        async -> (status: Int, json: [String: Any], response: APIResponse) {
        let response = await api.handle(APIRequest(method: method, path: path, headers: headers,
                                                   body: Data((body ?? "").utf8), requestId: "req-1"))
        let json = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any] ?? [:]
        return (response.status, json, response)
    }

    func errorCode(_ json: [String: Any]) -> String? { (json["error"] as? [String: Any])?["code"] as? String }

    @Test func postTurnsThenReadTheSession() async throws {
        let audio = Data([1, 2, 3, 4]).base64EncodedString()
        let first = await call("POST", "/v1/sessions/call-7/turns",
                               #"{"speaker": "agent", "transcript": "Hello, how can I help?", "audio": "\#(audio)", "turn_id": "t1"}"#)
        #expect(first.status == 200)
        #expect(first.json["session_id"] as? String == "call-7")
        let turn = try #require(first.json["turn"] as? [String: Any])
        #expect(turn["index"] as? Int == 0 && turn["turn_id"] as? String == "t1" && turn["speaker"] as? String == "agent")
        let probabilities = try #require(turn["probabilities"] as? [String: Double])
        #expect(Set(probabilities.keys) == ["ang", "hap", "neu", "sad"])
        #expect(abs(probabilities.values.reduce(0, +) - 1) < 1e-5)
        #expect(probabilities[turn["emotion"] as? String ?? ""] == probabilities.values.max())
        let gates = try #require(turn["gates"] as? [String: Double])
        #expect(gates.count == 12 && gates["t.speaker.audio"] == 1)
        #expect((first.json["decoded"] as? [[String: Any]])?.count == 1)
        #expect(first.json["timings_ms"] is [String: Any])
        #expect(first.response.headers.contains { $0.name == "X-Request-Id" && $0.value == "req-1" })

        let second = await call("POST", "/v1/sessions/call-7/turns", #"{"speaker": "caller", "transcript": "I am upset."}"#)
        #expect(second.status == 200)
        let decoded = try #require(second.json["decoded"] as? [[String: Any]])
        #expect(decoded.map { $0["index"] as? Int } == [0, 1])
        #expect(decoded.allSatisfy { $0["revised"] is Bool && $0["emotion"] is String })

        let session = await call("GET", "/v1/sessions/call-7")
        #expect(session.status == 200)
        let turns = try #require(session.json["turns"] as? [[String: Any]])
        #expect(turns.count == 2)
        for key in ["index", "turn_id", "speaker", "transcript", "emotion", "probabilities", "gates", "decoded_emotion"] {
            #expect(turns.allSatisfy { $0[key] != nil }, "missing \(key)")
        }
        #expect((session.json["speakers"] as? [[String: Any]])?.map { $0["speaker"] as? String } == ["agent", "caller"])

        #expect(await call("DELETE", "/v1/sessions/call-7").status == 204)
        let gone = await call("GET", "/v1/sessions/call-7")
        #expect(gone.status == 404 && errorCode(gone.json) == "session_not_found")
    }

    @Test func retryWithTheSameTurnIdIsIdempotent() async throws {
        let body = #"{"speaker": "A", "transcript": "same", "turn_id": "x"}"#
        let a = await call("POST", "/v1/sessions/s/turns", body)
        let b = await call("POST", "/v1/sessions/s/turns", body)
        #expect(a.status == 200 && b.status == 200)
        #expect(b.json["replayed"] as? Bool == true)
        #expect((b.json["turn"] as? [String: Any])?["index"] as? Int == 0)
        let conflict = await call("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "other", "turn_id": "x"}"#)
        #expect(conflict.status == 409 && errorCode(conflict.json) == "turn_id_conflict")
    }

    @Test func analyzeDecodesAWholeDialogue() async throws {
        let body = #"{"turns": [{"speaker": "A", "transcript": "hi"}, {"speaker": "B", "transcript": "hello"}, {"speaker": "A", "transcript": "bye"}]}"#
        let r = await call("POST", "/v1/dialogues/analyze", body)
        #expect(r.status == 200)
        #expect((r.json["turns"] as? [[String: Any]])?.count == 3)
        #expect((r.json["decoded"] as? [String])?.count == 3)
    }

    @Test(arguments: [
        ("POST", "/v1/sessions/s/turns", "{not json", 400, "malformed_json"),
        ("POST", "/v1/sessions/s/turns", "[1, 2]", 400, "malformed_json"),
        ("POST", "/v1/sessions/s/turns", "", 400, "malformed_json"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "x", "mood": "bad"}"#, 422, "unknown_field"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": 7, "transcript": "x"}"#, 422, "invalid_field"),
        ("POST", "/v1/sessions/s/turns", #"{"transcript": "x"}"#, 422, "missing_field"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "audio": "%%%not base64"}"#, 422, "invalid_base64"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "  "}"#, 422, "empty_turn"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "\u00a0\ufeff\u2028"}"#, 422, "empty_turn"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "x", "timestamp": null}"#, 422, "invalid_field"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": null, "transcript": "x"}"#, 422, "invalid_field"),
        ("POST", "/v1/dialogues/analyze", #"{"turns": [{"speaker": "A", "transcript": "x", "audio": null}]}"#, 422, "invalid_field"),
        ("POST", "/v1/dialogues/analyze", #"{"turns": null}"#, 422, "invalid_field"),
        ("POST", "/v1/sessions/call:1/turns", #"{"speaker": "A", "transcript": "x"}"#, 400, "invalid_session_id"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "audio": "/w=="}"#, 422, "unreadable_audio"),
        ("POST", "/v1/sessions/bad%20id/turns", #"{"speaker": "A", "transcript": "x"}"#, 400, "invalid_session_id"),
        ("GET", "/v1/sessions/s/turns", "", 405, "method_not_allowed"),
        ("PUT", "/v1/model", "", 405, "method_not_allowed"),
        ("GET", "/v1/nothing", "", 404, "not_found"),
        ("GET", "/v1/sessions/unknown", "", 404, "session_not_found"),
        ("POST", "/v1/dialogues/analyze", #"{"turns": []}"#, 422, "empty_dialogue"),
        ("POST", "/v1/dialogues/analyze", #"{"turns": [{"speaker": "A", "transcript": "x", "turn_id": "no"}]}"#, 422, "unknown_field"),
        ("POST", "/v1/dialogues/analyze", #"{"turns": [1]}"#, 422, "invalid_field"),
        ("POST", "/v1/dialogues/analyze", #"{"turns": [], "repeat_twice": 1}"#, 422, "invalid_field"),
        ("POST", "/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "x", "speaker": "B"}"#, 422, "duplicate_field"),
        ("POST", "/v1/dialogues/analyze", #"{"turns": [{"speaker": "A", "transcript": "x", "mood": 01}]}"#, 400, "malformed_json"),
    ])
    func errorsHaveStableCodes(_ method: String, _ path: String, _ body: String, _ status: Int, _ code: String) async {
        let r = await call(method, path, body)
        #expect(r.status == status, "\(method) \(path) \(body)")
        #expect(errorCode(r.json) == code, "\(r.json)")
        #expect((r.json["error"] as? [String: Any])?["message"] is String)
    }

    @Test func probesAndMetrics() async throws {
        #expect(await call("GET", "/healthz").status == 200)
        #expect(await call("GET", "/readyz").status == 200)
        #expect(await call("GET", "/v1/model").json["name"] as? String == "test")
        _ = await call("POST", "/v1/sessions/secret-call-id/turns", #"{"speaker": "A", "transcript": "x"}"#)
        let metrics = await api.handle(APIRequest(method: "GET", path: "/metrics"))
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(text.contains(#"emotion_http_requests_total{route="/v1/sessions/{session_id}/turns",method="POST",status="200"} 1"#))
        #expect(text.contains("emotion_stage_duration_seconds_bucket{stage=\"classify\""))
        #expect(text.contains("emotion_sessions 1"))
        #expect(!text.contains("secret-call-id"))
    }

    @Test func apiKeysAreRequiredWhenConfigured() async throws {
        let engine = try ConversationEngine(classifier: try makeClassifier(), encoder: FakeEncoder(),
                                            ded: try DEDParameters(p0: 0.2))
        let guarded = EmotionAPI(engine: engine, modelDescription: ["name": "test"], apiKeys: try APIKeys(["k1", "secret-2"]),
                                 readiness: { true })
        func status(_ auth: String?) async -> Int {
            await guarded.handle(APIRequest(method: "GET", path: "/v1/model",
                                            headers: auth.map { [("Authorization", $0)] } ?? [])).status
        }
        #expect(await status(nil) == 401)
        #expect(await status("Bearer wrong") == 401)
        #expect(await status("Basic k1") == 401)
        #expect(await status("Bearer k1") == 200)
        #expect(await status("bearer secret-2") == 200)
        // Probes stay open.
        #expect(await guarded.handle(APIRequest(method: "GET", path: "/healthz")).status == 200)
        #expect(APIKeys.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!APIKeys.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
    }
}
