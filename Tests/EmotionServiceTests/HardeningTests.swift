import Conversation
import DialogicalEmotionDecoder
import Foundation
import ConversationTestSupport
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
        var options = ServiceHost.Options()
        options.http.port = 0
        options.http.limits.lengthRequiredMethods = ["POST"]
        options.http.limits.maxBodyBytes = 256 * 1024
        options.stateDirectory = stateDirectory
        options.snapshotInterval = 0
        configure(&options)
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("hardening-\(UUID()).log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
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
}
