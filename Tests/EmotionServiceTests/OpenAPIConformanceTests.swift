import Conversation
import DialogicalEmotionDecoder
import Foundation
import ConversationTestSupport
import Testing
import Yams
@testable import EmotionService

/// Responses of every route checked against openapi.yaml: the status is declared for the
/// operation, and a JSON body validates against the declared schema (the subset of JSON Schema
/// the file uses: $ref, type, required, properties, additionalProperties, items, minimum,
/// minLength, maxLength).
struct OpenAPISpec {
    let root: [String: Any]

    init() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../openapi.yaml")
        let text = try String(contentsOf: url.standardized, encoding: .utf8)
        root = try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    func resolve(_ node: [String: Any]) throws -> [String: Any] {
        guard let ref = node["$ref"] as? String else { return node }
        var current: Any = root
        for part in ref.dropFirst(2).split(separator: "/") {
            current = try #require((current as? [String: Any])?[String(part)], "unresolved \(ref)")
        }
        return try resolve(try #require(current as? [String: Any]))
    }

    /// The response schema for an operation and status (nil: no body declared).
    func schema(path: String, method: String, status: Int) throws -> (declared: Bool, schema: [String: Any]?) {
        let paths = try #require(root["paths"] as? [String: Any])
        let operation = try #require((paths[path] as? [String: Any])?[method.lowercased()] as? [String: Any], "\(method) \(path) not in openapi.yaml")
        let responses = try #require(operation["responses"] as? [String: Any])
        guard let raw = responses[String(status)] as? [String: Any] else { return (false, nil) }
        let response = try resolve(raw)
        let content = response["content"] as? [String: Any]
        let json = content?["application/json"] as? [String: Any]
        return (true, try json.map { try resolve(try #require($0["schema"] as? [String: Any])) })
    }

    /// Problems of `value` against `schema` (empty when valid).
    func validate(_ value: Any, _ schemaNode: [String: Any], at path: String = "$") throws -> [String] {
        let schema = try resolve(schemaNode)
        var problems: [String] = []
        let types: [String] = (schema["type"] as? [String]) ?? ((schema["type"] as? String).map { [$0] } ?? [])
        if !types.isEmpty {
            let ok = types.contains { t in
                switch t {
                case "null": return value is NSNull
                case "string": return value is String
                case "boolean": return JSONBody.isBoolean(value)
                case "integer": return (value as? NSNumber).map { !JSONBody.isBoolean(value) && $0.doubleValue == $0.doubleValue.rounded() } ?? false
                case "number": return value is NSNumber && !JSONBody.isBoolean(value)
                case "array": return value is [Any]
                case "object": return value is [String: Any]
                default: return false
                }
            }
            if !ok { return ["\(path): expected \(types), got \(type(of: value))"] }
        }
        if let object = value as? [String: Any] {
            for key in (schema["required"] as? [String]) ?? [] where object[key] == nil {
                problems.append("\(path): missing required '\(key)'")
            }
            let properties = (schema["properties"] as? [String: Any]) ?? [:]
            for (key, item) in object {
                if let sub = properties[key] as? [String: Any] {
                    problems += try validate(item, sub, at: "\(path).\(key)")
                } else if let additional = schema["additionalProperties"] as? [String: Any] {
                    problems += try validate(item, additional, at: "\(path).\(key)")
                } else if (schema["additionalProperties"] as? Bool) == false {
                    problems.append("\(path): unexpected '\(key)'")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (i, item) in array.enumerated() { problems += try validate(item, items, at: "\(path)[\(i)]") }
        }
        if let minimum = schema["minimum"] as? Double, let n = value as? NSNumber, n.doubleValue < minimum {
            problems.append("\(path): below minimum \(minimum)")
        }
        if let s = value as? String {
            if let min = schema["minLength"] as? Int, s.count < min { problems.append("\(path): shorter than \(min)") }
            if let max = schema["maxLength"] as? Int, s.count > max { problems.append("\(path): longer than \(max)") }
        }
        return problems
    }
}

@Suite struct OpenAPIConformanceTests {
    let spec: OpenAPISpec
    let api: EmotionAPI

    init() throws {
        spec = try OpenAPISpec()
        let engine = try ConversationEngine(classifier: try makeClassifier(), encoder: FakeEncoder(),
                                            ded: try DEDParameters(p0: 0.2), configuration: {
                                                var c = ConversationConfiguration(); c.maxSessions = 3; return c }())
        api = EmotionAPI(engine: engine, modelDescription: ["name": "spec-test"], readiness: { true })
    }

    func check(_ method: String, _ path: String, _ template: String, body: String? = nil,
               expect status: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let response = await api.handle(APIRequest(method: method, path: path, headers: [("Content-Type", "application/json")],
                                                   body: Data((body ?? "").utf8)))
        #expect(response.status == status, "\(method) \(path)", sourceLocation: sourceLocation)
        let (declared, schema) = try spec.schema(path: template, method: method, status: response.status)
        #expect(declared, "\(method) \(template) answered \(response.status), which openapi.yaml does not declare",
                sourceLocation: sourceLocation)
        if let schema {
            let json = try JSONSerialization.jsonObject(with: response.body, options: [.fragmentsAllowed])
            let problems = try spec.validate(json, schema)
            #expect(problems.isEmpty, "\(method) \(path) \(response.status): \(problems)", sourceLocation: sourceLocation)
        }
    }

    @Test func everyRouteAndErrorConformsToTheContract() async throws {
        let turns = "/v1/sessions/{session_id}/turns", session = "/v1/sessions/{session_id}"
        try await check("POST", "/v1/sessions/c1/turns", turns, body: #"{"speaker": "A", "transcript": "hi", "turn_id": "x", "timestamp": "2026-11-25T12:00:00Z"}"#, expect: 200)
        try await check("POST", "/v1/sessions/c1/turns", turns, body: #"{"speaker": "B", "audio": "AQID"}"#, expect: 200)
        try await check("POST", "/v1/sessions/c1/turns", turns, body: #"{"speaker": "A", "transcript": "hi", "turn_id": "x", "timestamp": "2026-11-25T12:00:00Z"}"#, expect: 200)
        try await check("POST", "/v1/sessions/c1/turns", turns, body: #"{"speaker": "A", "transcript": "other", "turn_id": "x"}"#, expect: 409)
        try await check("POST", "/v1/sessions/c1/turns", turns, body: "{", expect: 400)
        try await check("POST", "/v1/sessions/c1/turns", turns, body: #"{"speaker": "A", "extra": 1}"#, expect: 422)
        try await check("POST", "/v1/sessions/c1/turns", turns, body: #"{"speaker": "A", "audio": "/w=="}"#, expect: 422)
        try await check("POST", "/v1/sessions/bad%20id/turns", turns, body: #"{"speaker": "A", "transcript": "x"}"#, expect: 400)
        try await check("GET", "/v1/sessions/c1", session, expect: 200)
        try await check("GET", "/v1/sessions/missing", session, expect: 404)
        try await check("DELETE", "/v1/sessions/c1", session, expect: 204)
        try await check("DELETE", "/v1/sessions/c1", session, expect: 404)
        for i in 0..<3 {
            try await check("POST", "/v1/sessions/full-\(i)/turns", turns, body: #"{"speaker": "A", "transcript": "x"}"#, expect: 200)
        }
        try await check("POST", "/v1/sessions/one-too-many/turns", turns, body: #"{"speaker": "A", "transcript": "x"}"#, expect: 503)
        try await check("POST", "/v1/dialogues/analyze", "/v1/dialogues/analyze",
                        body: #"{"turns": [{"speaker": "A", "transcript": "hi"}, {"speaker": "B", "audio": "AQID"}]}"#, expect: 200)
        try await check("POST", "/v1/dialogues/analyze", "/v1/dialogues/analyze", body: #"{"turns": []}"#, expect: 422)
        try await check("GET", "/v1/model", "/v1/model", expect: 200)
        try await check("GET", "/healthz", "/healthz", expect: 200)
        try await check("GET", "/readyz", "/readyz", expect: 200)
        try await check("GET", "/metrics", "/metrics", expect: 200)
    }

    @Test func theSpecValidatesItsOwnExamplesStrictly() throws {
        // The validator itself can fail: a wrong type and a missing field are reported.
        let schema = try #require(((spec.root["components"] as? [String: Any])?["schemas"] as? [String: Any])?["DecodedTurn"] as? [String: Any])
        #expect(try spec.validate(["index": 0, "emotion": "neu", "revised": false], schema).isEmpty)
        #expect(!(try spec.validate(["index": "0", "emotion": "neu", "revised": false], schema)).isEmpty)
        #expect(!(try spec.validate(["index": 0, "emotion": "neu"], schema)).isEmpty)
    }
}
