import Conversation
import DialogicalEmotionDecoder
import Foundation
import ConversationTestSupport
import ModelPackage
import Testing
@testable import EmotionService

/// An encoder that fails with a detail no client may see.
struct ExplodingEncoder: TurnEncoder {
    static let secret = "libfoo.so: segment 0x7f3a overwritten at /srv/models/secret-path"
    let dimension = 64
    func embed(audio: Data) throws -> [Float] { throw NSError(domain: Self.secret, code: 7) }
    func embed(text: String) throws -> [Float] { throw NSError(domain: Self.secret, code: 7) }
}

/// A service on loopback whose log lines are kept in a file, for the attack tests.
struct LoggedHost {
    let host: ServiceHost
    let port: Int
    let logFile: URL

    init(encoder: TurnEncoder = FakeEncoder(), stateDirectory: URL? = nil,
         configure: (inout ServiceHost.Options) -> Void = { _ in }) throws {
        var options = ServiceHost.Options.loopback(maxBodyBytes: 256 * 1024, stateDirectory: stateDirectory)
        configure(&options)
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("hardening-\(UUID()).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: logFile)
        let engine = try ConversationEngine(classifier: try makeClassifier(), encoder: encoder,
                                            ded: try DEDParameters(p0: 0.2), configuration: options.conversation)
        host = try ServiceHost(engine: engine, description: ["name": "hardening-test"], options: options,
                               logger: JSONLogger(output: output))
        port = try host.start().port
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Shuts the service down and returns everything it logged.
    @discardableResult
    func stop() async -> String {
        _ = await host.shutdown()
        let text = log
        try? FileManager.default.removeItem(at: logFile)
        return text
    }
}

func errorCode(_ body: [String: Any]) -> String? { (body["error"] as? [String: Any])?["code"] as? String }
func errorMessage(_ body: [String: Any]) -> String? { (body["error"] as? [String: Any])?["message"] as? String }

/// Issue #11: hostile clients and operators' mistakes, each over a real socket.
@Suite(.serialized) struct HardeningTests {
    @Test func methodTokensDoNotMintMetricSeriesOrLogValues() async throws {
        let service = try LoggedHost()
        let client = try LoopbackClient(port: service.port)
        for i in 1...5 {
            #expect(client.request("MX\(i)", "/healthz").status == 405)
            #expect(client.request("MX\(i)", "/no/such/route/\(i)").status == 404)
        }
        _ = client.request("GET", "/healthz")
        client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let text = String(decoding: client.readResponse().body, as: UTF8.self)
        let series = text.split(separator: "\n").filter { $0.hasPrefix("emotion_http_requests_total{") }
        #expect(!text.contains("MX"), "\(series)")
        #expect(series.contains(#"emotion_http_requests_total{route="/healthz",method="other",status="405"} 5"#), "\(series)")
        #expect(series.contains(#"emotion_http_requests_total{route="unmatched",method="other",status="404"} 5"#), "\(series)")
        let methods: Set<String> = ["GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "other"]
        for line in series {
            let method = line.split(separator: "method=\"").last?.split(separator: "\"").first.map(String.init) ?? ""
            #expect(methods.contains(method), "\(line)")
        }
        let log = await service.stop()
        #expect(!log.contains("MX"), "the request log carries a client-made method token")
        #expect(!log.contains("/no/such/route"), "the request log carries a client-made path")
    }

    @Test(arguments: [
        ("GET", "/v1/sessions/c1/turns", "POST"),
        ("PUT", "/v1/model", "GET, HEAD"),
        ("POST", "/v1/sessions/c1", "GET, DELETE, HEAD"),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
        ("GET", "/v1/dialogues/analyze", "POST"),
    ])
    func methodNotAllowedCarriesAllow(_ method: String, _ path: String, _ allow: String) async throws {
        let service = try LoggedHost()
        let client = try LoopbackClient(port: service.port)
        let r = client.request(method, path, json: method == "GET" || method == "DELETE" ? nil : "{}")
        #expect(r.status == 405)
        #expect(r.headers["allow"] == allow, "\(method) \(path): \(r.headers)")
        #expect(errorCode(r.body) == "method_not_allowed")
        await service.stop()
    }

    @Test func internalErrorTextsStayInTheLog() async throws {
        let service = try LoggedHost(encoder: ExplodingEncoder())
        let client = try LoopbackClient(port: service.port)
        let requests = [("boom-turn", "/v1/sessions/c1/turns", #"{"speaker": "A", "transcript": "hello"}"#),
                        ("boom-dialogue", "/v1/dialogues/analyze", #"{"turns": [{"speaker": "A", "transcript": "hello"}]}"#)]
        for (id, path, json) in requests {
            let r = client.request("POST", path, json: json, headers: ["X-Request-Id: \(id)"])
            #expect(r.status == 500)
            #expect(errorCode(r.body) == "internal_error")
            #expect(errorMessage(r.body)?.contains(id) == true, "\(r.body)")
            let raw = try JSONSerialization.data(withJSONObject: r.body)
            #expect(!String(decoding: raw, as: UTF8.self).contains("secret-path"), "\(r.body)")
            #expect(!String(decoding: raw, as: UTF8.self).contains("encoder_failed"), "\(r.body)")
        }
        let log = await service.stop()
        let lines = log.split(separator: "\n").filter { $0.contains("secret-path") }
        for (id, _, _) in requests {
            #expect(lines.contains { $0.contains(#""request_id":"\#(id)""#) }, "the detail is logged with the request id: \(log)")
        }
    }

    @Test func everyStoredStringHasAByteLimitOverHTTP() async throws {
        let service = try LoggedHost {
            $0.conversation.limits.sessionBytes = 2_000; $0.conversation.maxTurnsPerSession = 3; $0.conversation.maxDialogueTurns = 3
        }
        let client = try LoopbackClient(port: service.port)
        // One Character each, but 2,001 and 40,001 UTF-8 bytes.
        let heavy = "a" + String(repeating: "\u{0301}", count: 1_000)
        let heavier = "a" + String(repeating: "\u{0301}", count: 20_000)
        let refused: [(String, String)] = [
            (#"{"speaker": "\#(heavy)", "transcript": "hi"}"#, "speaker_too_long"),
            (#"{"speaker": "A", "transcript": "\#(heavier)"}"#, "transcript_too_long"),
            (#"{"speaker": "A", "transcript": "hi", "turn_id": "\#(heavy)"}"#, "turn_id_too_long"),
            (#"{"speaker": "A", "transcript": "hi", "timestamp": "\#(String(repeating: "9", count: 100_000))"}"#, "timestamp_too_long"),
        ]
        for (json, code) in refused {
            let turn = client.request("POST", "/v1/sessions/limits/turns", json: json)
            #expect(turn.status == 422 && errorCode(turn.body) == code, "\(code): \(turn.status) \(turn.body)")
            let dialogue = client.request("POST", "/v1/dialogues/analyze",
                                          json: #"{"turns": [\#(json.replacingOccurrences(of: #", "turn_id": "\#(heavy)""#, with: ""))]}"#)
            if code != "turn_id_too_long" {
                #expect(dialogue.status == 422 && errorCode(dialogue.body) == code, "analyze \(code): \(dialogue.status) \(dialogue.body)")
            }
        }
        #expect(client.request("GET", "/v1/sessions/limits").status == 404, "a refused turn created the session")

        // Session ids: bytes, and one spelling only.
        #expect(client.request("POST", "/v1/sessions/call-42/turns", json: #"{"speaker": "A", "transcript": "hi"}"#).status == 200)
        for id in ["call%2D42", "call%2d42", "%63all-42", "call:42", "agent@x", "agent%40x", String(repeating: "x", count: 129)] {
            let get = client.request("GET", "/v1/sessions/\(id)")
            #expect(get.status == 400 && errorCode(get.body) == "invalid_session_id", "\(id): \(get.status)")
            let post = client.request("POST", "/v1/sessions/\(id)/turns", json: #"{"speaker": "A", "transcript": "hi"}"#)
            #expect(post.status == 400 && errorCode(post.body) == "invalid_session_id", "\(id): \(post.status)")
        }
        #expect(client.request("GET", "/v1/sessions/" + String(repeating: "x", count: 128)).status == 404)

        // The session's byte budget and turn cap: 409, and nothing is stored.
        let words = String(repeating: "w", count: 900)
        for expected in [200, 200, 409] {
            let r = client.request("POST", "/v1/sessions/budget/turns", json: #"{"speaker": "A", "transcript": "\#(words)"}"#)
            #expect(r.status == expected, "\(r.body)")
            if expected == 409 { #expect(errorCode(r.body) == "session_budget_exceeded") }
        }
        #expect((client.request("GET", "/v1/sessions/budget").body["turns"] as? [Any])?.count == 2)
        for expected in [200, 200, 200, 409] {
            let r = client.request("POST", "/v1/sessions/cap/turns", json: #"{"speaker": "A", "transcript": "hi"}"#)
            #expect(r.status == expected, "\(r.body)")
            if expected == 409 { #expect(errorCode(r.body) == "session_full") }
        }
        // A whole dialogue has a byte budget and a turn cap (`maxDialogueTurns`), refused as unusable content.
        let big = Array(repeating: #"{"speaker": "A", "transcript": "\#(words)"}"#, count: 3).joined(separator: ",")
        let large = client.request("POST", "/v1/dialogues/analyze", json: #"{"turns": [\#(big)]}"#)
        #expect(large.status == 422 && errorCode(large.body) == "dialogue_too_large", "\(large.body)")
        let many = Array(repeating: #"{"speaker": "A", "transcript": "hi"}"#, count: 4).joined(separator: ",")
        let long = client.request("POST", "/v1/dialogues/analyze", json: #"{"turns": [\#(many)]}"#)
        #expect(long.status == 422 && errorCode(long.body) == "dialogue_too_long", "\(long.body)")
        await service.stop()
    }

    static let keys = ["plain-key-1", "acme:acme-key", "acme:acme-key-2", "globex:globex-key", "admin:root-key"]

    func session(_ client: LoopbackClient, _ id: String, key: String, tenant: String? = nil, method: String = "GET")
        -> (status: Int, headers: [String: String], body: [String: Any]) {
        client.request(method, "/v1/sessions/\(id)", headers: ["Authorization: Bearer \(key)"] + (tenant.map { ["X-Tenant: \($0)"] } ?? []))
    }

    func post(_ client: LoopbackClient, _ id: String, key: String, _ text: String, tenant: String? = nil) -> Int {
        client.request("POST", "/v1/sessions/\(id)/turns", json: #"{"speaker": "A", "transcript": "\#(text)"}"#,
                       headers: ["Authorization: Bearer \(key)"] + (tenant.map { ["X-Tenant: \($0)"] } ?? [])).status
    }

    func transcripts(_ r: (status: Int, headers: [String: String], body: [String: Any])) -> [String] {
        (r.body["turns"] as? [[String: Any]])?.compactMap { $0["transcript"] as? String } ?? []
    }

    @Test func aKeySeesPostsToAndDeletesOnlyItsTenantsSessions() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("tenants-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let keys = try APIKeys(Self.keys)
        let first = try LoggedHost(stateDirectory: state) { $0.apiKeys = keys }
        let client = try LoopbackClient(port: first.port)
        let missing = session(client, "call-42", key: "globex-key")
        #expect(post(client, "call-42", key: "acme-key", "acme's words") == 200)
        // Another tenant's session is answered exactly as a missing one, for every method.
        let foreign = session(client, "call-42", key: "globex-key")
        #expect(foreign.status == 404 && NSDictionary(dictionary: foreign.body).isEqual(to: missing.body), "\(foreign.body)")
        #expect(session(client, "call-42", key: "plain-key-1").status == 404)
        #expect(session(client, "call-42", key: "globex-key", method: "DELETE").status == 404)
        #expect(transcripts(session(client, "call-42", key: "acme-key-2")) == ["acme's words"], "a second key of the tenant")
        // The same id posted by another tenant is another session.
        #expect(post(client, "call-42", key: "globex-key", "globex's words") == 200)
        #expect(transcripts(session(client, "call-42", key: "globex-key")) == ["globex's words"])
        #expect(transcripts(session(client, "call-42", key: "acme-key")) == ["acme's words"])
        // X-Tenant: refused for a tenant key, honoured for an admin key.
        let forbidden = session(client, "call-42", key: "acme-key", tenant: "globex")
        #expect(forbidden.status == 403 && errorCode(forbidden.body) == "tenant_forbidden")
        #expect(session(client, "call-42", key: "acme-key", tenant: "acme").status == 200)
        #expect(session(client, "call-42", key: "root-key").status == 404, "the admin's own namespace")
        #expect(transcripts(session(client, "call-42", key: "root-key", tenant: "acme")) == ["acme's words"])
        #expect(session(client, "call-42", key: "root-key", tenant: "bad/name").status == 400)
        #expect(post(client, "other", key: "plain-key-1", "plain words") == 200)
        let plainTenant = "key-" + SHA256Digest.hex(of: Data("plain-key-1".utf8)).prefix(12)
        #expect(transcripts(session(client, "other", key: "root-key", tenant: plainTenant)) == ["plain words"])
        _ = await first.stop()

        // Snapshot files do not collide and carry no ids in their names; each session restores
        // into its own namespace.
        let files = try FileManager.default.contentsOfDirectory(atPath: state.path).filter { $0.hasSuffix(".session.json") }
        #expect(files.count == 3, "\(files)")
        #expect(files.allSatisfy { $0.count == 64 + ".session.json".count && !$0.contains("call") })
        let second = try LoggedHost(stateDirectory: state) { $0.apiKeys = keys }
        let client2 = try LoopbackClient(port: second.port)
        #expect(transcripts(session(client2, "call-42", key: "acme-key")) == ["acme's words"])
        #expect(transcripts(session(client2, "call-42", key: "globex-key")) == ["globex's words"])
        #expect(session(client2, "other", key: "acme-key").status == 404)
        #expect(session(client2, "call-42", key: "acme-key", method: "DELETE").status == 204)
        #expect(transcripts(session(client2, "call-42", key: "globex-key")) == ["globex's words"])
        await second.stop()
    }

    /// Every refusal that needs no body is answered from the head: before `100 Continue`, before
    /// a byte of the body is read, whatever the declared length.
    @Test func refusalsThatNeedNoBodyComeBeforeTheBody() async throws {
        let service = try LoggedHost {
            $0.apiKeys = try! APIKeys(Self.keys)
            $0.conversation.maxSessionsPerTenant = 1
        }
        let declared = 200_000
        func head(_ method: String, _ path: String, _ fields: [String]) -> String {
            "\(method) \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: \(declared)\r\n" + fields.map { $0 + "\r\n" }.joined() + "\r\n"
        }
        let json = "Content-Type: application/json"
        let cases: [(String, String, [String], Int, String)] = [
            ("POST", "/v1/sessions/c1/turns", [json, "Expect: 100-continue", "Authorization: Bearer wrong"], 401, "unauthorized"),
            ("POST", "/v1/sessions/c1/turns", [json], 401, "unauthorized"),
            ("POST", "/v1/sessions/c1/turns", ["Content-Type: text/plain", "Authorization: Bearer acme-key"], 415, "unsupported_media_type"),
            ("PUT", "/v1/sessions/c1/turns", [json, "Authorization: Bearer acme-key"], 405, "method_not_allowed"),
            ("POST", "/v1/sessions/bad%3Aid/turns", [json, "Authorization: Bearer acme-key"], 400, "invalid_session_id"),
            ("POST", "/v1/sessions/c1/turns", [json, "Authorization: Bearer acme-key", "X-Tenant: globex"], 403, "tenant_forbidden"),
            ("POST", "/v1/no/such/route", [json, "Expect: 100-continue"], 404, "not_found"),
            ("POST", "/healthz", [json], 405, "method_not_allowed"),
        ]
        for (method, path, fields, status, code) in cases {
            let client = try LoopbackClient(port: service.port)
            client.send(head(method, path, fields))  // and never the body
            let r = client.readResponse()
            let body = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
            #expect(r.status == status && errorCode(body) == code, "\(method) \(path) \(fields): \(r.status) \(body)")
            #expect(r.headers["connection"] == "close")
            if status == 405 { #expect(r.headers["allow"] != nil) }
        }
        // A new session beyond its tenant's quota is refused from the head as well (429), while
        // a turn for a session the tenant holds is admitted.
        #expect(post(try LoopbackClient(port: service.port), "held", key: "acme-key", "hello") == 200)
        let quota = try LoopbackClient(port: service.port)
        quota.send(head("POST", "/v1/sessions/another/turns", [json, "Authorization: Bearer acme-key", "Expect: 100-continue"]))
        let overQuota = quota.readResponse()
        let quotaBody = (try? JSONSerialization.jsonObject(with: Data(overQuota.body))) as? [String: Any] ?? [:]
        #expect(overQuota.status == 429 && errorCode(quotaBody) == "tenant_session_quota" && overQuota.headers["retry-after"] != nil,
                "\(overQuota.status) \(quotaBody)")
        #expect(post(try LoopbackClient(port: service.port), "held", key: "acme-key", "again") == 200)
        // A draining server refuses new work before reading it too (503 + Retry-After).
        _ = service.host.engine.drain(deadline: Date())
        let client = try LoopbackClient(port: service.port)
        client.send(head("POST", "/v1/dialogues/analyze", [json, "Authorization: Bearer acme-key", "Expect: 100-continue"]))
        let draining = client.readResponse()
        let body = (try? JSONSerialization.jsonObject(with: Data(draining.body))) as? [String: Any] ?? [:]
        #expect(draining.status == 503 && errorCode(body) == "shutting_down" && draining.headers["retry-after"] != nil, "\(body)")
        // The refusals are in the request metrics like any answer.
        let metrics = try LoopbackClient(port: service.port)
        metrics.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let text = String(decoding: metrics.readResponse().body, as: UTF8.self)
        #expect(text.contains(#"emotion_http_requests_total{route="/v1/sessions/{session_id}/turns",method="POST",status="401"} 2"#), "\(text)")
        #expect(text.contains("emotion_http_body_bytes_buffered 0"))
        await service.stop()
    }

    @Test func preNamespaceSnapshotFilesRestoreIntoTheDefaultNamespace() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("legacy-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let first = try LoggedHost(stateDirectory: state)
        let client = try LoopbackClient(port: first.port)
        #expect(client.request("POST", "/v1/sessions/call-7/turns", json: #"{"speaker": "A", "transcript": "old words"}"#).status == 200)
        await first.stop()
        // Turn the file into what the previous release wrote: named by the id's hex, no namespace inside.
        let written = try #require(try FileManager.default.contentsOfDirectory(atPath: state.path).first { $0.hasSuffix(".session.json") })
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: state.appendingPathComponent(written))) as? [String: Any])
        object["namespace"] = nil
        try FileManager.default.removeItem(at: state.appendingPathComponent(written))
        let legacy = Array("call-7".utf8).map { String(format: "%02x", $0) }.joined() + ".session.json"
        try JSONSerialization.data(withJSONObject: object).write(to: state.appendingPathComponent(legacy))

        // Without keys, as before; the file is migrated to its new name.
        let second = try LoggedHost(stateDirectory: state)
        let client2 = try LoopbackClient(port: second.port)
        #expect(transcripts(client2.request("GET", "/v1/sessions/call-7")) == ["old words"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: state.path).filter { $0.hasSuffix(".session.json") } == [written])
        await second.stop()
        // With keys, the tenant named `default` owns it.
        let legacyKeys = try APIKeys(["default:old-clients", "other-key"])
        let third = try LoggedHost(stateDirectory: state) { $0.apiKeys = legacyKeys }
        let client3 = try LoopbackClient(port: third.port)
        #expect(transcripts(session(client3, "call-7", key: "old-clients")) == ["old words"])
        #expect(session(client3, "call-7", key: "other-key").status == 404)
        await third.stop()
    }
}

/// The real `emotion-server`: configured API keys that yield no key stop it at start.
@Suite(.serialized) struct AuthFailsClosedTests {
    /// Runs the server; its exit status (nil if it was still running after `seconds`) and log.
    func run(_ arguments: [String], environment extra: [String: String] = [:], seconds: Double = 30) throws -> (status: Int32?, log: String) {
        let process = Process()
        process.executableURL = try ServerProcessTests.binary()
        process.arguments = ["--model", EndToEndTests.model.path, "--port", "0"] + arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("EMOTION_") }
        environment.merge(extra) { $1 }
        process.environment = environment
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let running = process.isRunning
        if running { process.terminate() }
        process.waitUntilExit()
        let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (running ? nil : process.terminationStatus, log)
    }

    @Test func unusableKeysStopTheServerAtStart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = directory.appendingPathComponent("empty"), comments = directory.appendingPathComponent("comments")
        try Data().write(to: empty)
        try Data("# keys go here\n\n   \n".utf8).write(to: comments)
        let cases: [(arguments: [String], environment: [String: String], says: String)] = [
            (["--api-keys-file", directory.appendingPathComponent("missing").path], [:], "cannot read"),
            (["--api-keys-file", directory.path], [:], "cannot read"),  // a directory: unreadable as a file
            (["--api-keys-file", empty.path], [:], "holds no keys"),
            ([], ["EMOTION_API_KEYS_FILE": comments.path], "holds no keys"),
            ([], ["EMOTION_API_KEYS_FILE": ""], "empty"),
            ([], ["EMOTION_API_KEYS": ""], "holds no keys"),
            ([], ["EMOTION_API_KEYS": " , "], "holds no keys"),
        ]
        for c in cases {
            let (status, log) = try run(c.arguments, environment: c.environment)
            #expect(status != nil && status != 0, "\(c.arguments) \(c.environment) kept running or exited 0: \(log)")
            #expect(log.contains("refusing to start") && log.contains(c.says), "\(c.arguments) \(c.environment): \(log)")
            #expect(!log.contains("\"listening\""), "\(log)")
        }
    }
}
