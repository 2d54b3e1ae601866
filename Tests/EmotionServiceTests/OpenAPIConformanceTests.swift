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

    /// Names of the headers a declared response requires (lower case).
    func requiredHeaders(path: String, method: String, status: Int) throws -> [String] {
        let paths = try #require(root["paths"] as? [String: Any])
        let operation = try #require((paths[path] as? [String: Any])?[method.lowercased()] as? [String: Any])
        guard let raw = (operation["responses"] as? [String: Any])?[String(status)] as? [String: Any] else { return [] }
        let headers = (try resolve(raw)["headers"] as? [String: Any]) ?? [:]
        return try headers.compactMap { name, node in
            try resolve(try #require(node as? [String: Any]))["required"] as? Bool == true ? name.lowercased() : nil
        }
    }

    /// JSON `true`/`false` as JSONSerialization gives them: NSNumbers whose objCType is "c".
    static func isBoolean(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
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
                case "boolean": return Self.isBoolean(value)
                case "integer": return (value as? NSNumber).map { !Self.isBoolean(value) && $0.doubleValue == $0.doubleValue.rounded() } ?? false
                case "number": return value is NSNumber && !Self.isBoolean(value)
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

/// Every route and every error status over a real loopback socket, each answer checked against
/// openapi.yaml (status declared for the operation, body valid against its schema).
@Suite(.serialized) struct OpenAPIConformanceTests {
    let spec: OpenAPISpec

    init() throws { spec = try OpenAPISpec() }

    func host(apiKeys: [String] = []) throws -> ServiceHost {
        var options = ServiceHost.Options()
        options.http.port = 0
        options.http.limits.lengthRequiredMethods = ["POST"]
        options.http.limits.maxBodyBytes = 64 * 1024
        options.http.limits.maxRequestLineBytes = 1024
        options.conversation.maxSessions = 3
        options.apiKeys = try APIKeys(apiKeys)
        let engine = try ConversationEngine(classifier: try makeClassifier(), encoder: FakeEncoder(),
                                            ded: try DEDParameters(p0: 0.2), configuration: options.conversation)
        return try ServiceHost(engine: engine, description: ["name": "spec-test"], options: options,
                               logger: JSONLogger(output: FileHandle(forWritingAtPath: "/dev/null") ?? .standardError))
    }

    /// Sends raw bytes on a new connection and checks the answer against the spec.
    func check(_ port: Int, _ raw: String, _ method: String, _ template: String, expect status: Int,
               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let client = try LoopbackClient(port: port)
        client.send(raw)
        let response = client.readResponse()
        #expect(response.status == status, "\(raw.prefix(60))", sourceLocation: sourceLocation)
        let (declared, schema) = try spec.schema(path: template, method: method, status: response.status)
        #expect(declared, "\(method) \(template) answered \(response.status), which openapi.yaml does not declare",
                sourceLocation: sourceLocation)
        if let schema {
            let json = try JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed])
            let problems = try spec.validate(json, schema)
            #expect(problems.isEmpty, "\(method) \(template) \(response.status): \(problems)", sourceLocation: sourceLocation)
        }
        if status == 503 { #expect(response.headers["retry-after"] != nil, sourceLocation: sourceLocation) }
        for header in try spec.requiredHeaders(path: template, method: method, status: response.status) {
            #expect(response.headers[header] != nil, "\(method) \(template) \(response.status) lacks \(header)",
                    sourceLocation: sourceLocation)
        }
    }

    func post(_ path: String, _ body: String, contentType: String = "application/json", auth: String? = nil) -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: \(contentType)\r\n" + (auth.map { "Authorization: \($0)\r\n" } ?? "")
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    func get(_ method: String, _ path: String) -> String { "\(method) \(path) HTTP/1.1\r\nHost: x\r\n\r\n" }

    @Test func everyRouteAndErrorConformsToTheContract() async throws {
        let h = try host()
        let port = try h.start().port
        let turns = "/v1/sessions/{session_id}/turns", session = "/v1/sessions/{session_id}", analyze = "/v1/dialogues/analyze"
        try check(port, post("/v1/sessions/c1/turns", #"{"speaker": "A", "transcript": "hi", "turn_id": "x", "timestamp": "2026-11-25T12:00:00Z"}"#), "POST", turns, expect: 200)
        try check(port, post("/v1/sessions/c1/turns", #"{"speaker": "B", "audio": "AQID"}"#), "POST", turns, expect: 200)
        try check(port, post("/v1/sessions/c1/turns", #"{"speaker": "A", "transcript": "hi", "turn_id": "x", "timestamp": "2026-11-25T12:00:00Z"}"#), "POST", turns, expect: 200)
        try check(port, post("/v1/sessions/c1/turns", #"{"speaker": "A", "transcript": "other", "turn_id": "x"}"#), "POST", turns, expect: 409)
        try check(port, post("/v1/sessions/c1/turns", "{"), "POST", turns, expect: 400)
        try check(port, post("/v1/sessions/c1/turns", #"{"speaker": "A", "extra": 1}"#), "POST", turns, expect: 422)
        try check(port, post("/v1/sessions/c1/turns", #"{"speaker": "A", "audio": "/w=="}"#), "POST", turns, expect: 422)
        try check(port, post("/v1/sessions/bad%20id/turns", #"{"speaker": "A", "transcript": "x"}"#), "POST", turns, expect: 400)
        try check(port, post("/v1/sessions/c1/turns", "a=b", contentType: "application/x-www-form-urlencoded"), "POST", turns, expect: 415)
        try check(port, "POST /v1/sessions/c1/turns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n", "POST", turns, expect: 411)
        try check(port, "POST /v1/sessions/c1/turns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", "POST", turns, expect: 413)
        try check(port, get("GET", "/v1/sessions/c1/turns"), "POST", turns, expect: 405)
        try check(port, get("PUT", "/v1/sessions/c1"), "GET", session, expect: 405)
        try check(port, get("GET", "/v1/dialogues/analyze"), "POST", analyze, expect: 405)
        try check(port, post("/v1/model", "{}"), "GET", "/v1/model", expect: 405)
        try check(port, post("/healthz", "{}"), "GET", "/healthz", expect: 405)
        try check(port, post("/v1/sessions/c1/turns", #"{"speaker": "A", "transcript": "hi", "timestamp": "\#(String(repeating: "1", count: 65))"}"#), "POST", turns, expect: 422)
        try check(port, get("GET", "/v1/sessions/c%2D1"), "GET", session, expect: 400)
        try check(port, get("GET", "/v1/sessions/c1"), "GET", session, expect: 200)
        try check(port, get("GET", "/v1/sessions/missing"), "GET", session, expect: 404)
        try check(port, get("DELETE", "/v1/sessions/c1"), "DELETE", session, expect: 204)
        try check(port, get("DELETE", "/v1/sessions/c1"), "DELETE", session, expect: 404)
        for i in 0..<3 {
            try check(port, post("/v1/sessions/full-\(i)/turns", #"{"speaker": "A", "transcript": "x"}"#), "POST", turns, expect: 200)
        }
        try check(port, post("/v1/sessions/one-too-many/turns", #"{"speaker": "A", "transcript": "x"}"#), "POST", turns, expect: 503)
        try check(port, post("/v1/dialogues/analyze", #"{"turns": [{"speaker": "A", "transcript": "hi"}, {"speaker": "B", "audio": "AQID"}]}"#), "POST", analyze, expect: 200)
        try check(port, post("/v1/dialogues/analyze", #"{"turns": []}"#), "POST", analyze, expect: 422)
        try check(port, post("/v1/dialogues/analyze", "[]"), "POST", analyze, expect: 400)
        try check(port, get("GET", "/v1/model"), "GET", "/v1/model", expect: 200)
        try check(port, get("GET", "/healthz"), "GET", "/healthz", expect: 200)
        try check(port, get("GET", "/readyz"), "GET", "/readyz", expect: 200)
        try check(port, get("GET", "/metrics"), "GET", "/metrics", expect: 200)
        // 414: a request line longer than the limit (answered by the HTTP layer in the same JSON form).
        let long = try LoopbackClient(port: port)
        long.send("GET /v1/sessions/" + String(repeating: "a", count: 2000) + " HTTP/1.1\r\nHost: x\r\n\r\n")
        let r414 = long.readResponse()
        #expect(r414.status == 414)
        let body414 = try JSONSerialization.jsonObject(with: Data(r414.body)) as? [String: Any]
        #expect(((body414?["error"] as? [String: Any])?["code"] as? String) == "uri_too_long")
        _ = await h.shutdown()
    }

    @Test func unauthorizedAnswersConform() async throws {
        let h = try host(apiKeys: ["secret", "admin:root"])
        let port = try h.start().port
        try check(port, get("GET", "/v1/model"), "GET", "/v1/model", expect: 401)
        try check(port, post("/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "x"}"#, auth: "Bearer nope"), "POST",
                  "/v1/sessions/{session_id}/turns", expect: 401)
        try check(port, post("/v1/sessions/s/turns", #"{"speaker": "A", "transcript": "x"}"#, auth: "Bearer secret"), "POST",
                  "/v1/sessions/{session_id}/turns", expect: 200)
        try check(port, get("GET", "/healthz"), "GET", "/healthz", expect: 200)
        let asOther = "GET /v1/sessions/s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nX-Tenant: admin\r\n\r\n"
        try check(port, asOther, "GET", "/v1/sessions/{session_id}", expect: 403)
        let asAdmin = "GET /v1/sessions/s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer root\r\n\r\n"
        try check(port, asAdmin, "GET", "/v1/sessions/{session_id}", expect: 404)
        _ = await h.shutdown()
    }

    @Test func theValidatorCanFail() throws {
        let schema = try #require(((spec.root["components"] as? [String: Any])?["schemas"] as? [String: Any])?["DecodedTurn"] as? [String: Any])
        #expect(try spec.validate(["index": 0, "emotion": "neu", "revised": false], schema).isEmpty)
        #expect(!(try spec.validate(["index": "0", "emotion": "neu", "revised": false], schema)).isEmpty)
        #expect(!(try spec.validate(["index": 0, "emotion": "neu"], schema)).isEmpty)
    }
}
