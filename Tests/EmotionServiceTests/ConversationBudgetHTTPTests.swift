import Conversation
import Foundation
import ConversationTestSupport
import Testing
import TestSupport
@testable import EmotionService

/// Issue #11: the session table's quotas and eviction, and whole-dialogue budgets, over real
/// sockets. Blocking socket work runs off the cooperative pool.
@Suite(.serialized) struct ConversationBudgetHTTPTests {
    static let keys = ["acme:acme-key", "globex:globex-key"]

    /// An answer's status, error code and Retry-After (Sendable, to leave `offPool`).
    struct Answer: Sendable {
        var status: Int
        var code: String?
        var retryAfter: String?
        init(_ r: (status: Int, headers: [String: String], body: [String: Any])) {
            status = r.status
            code = errorCode(r.body)
            retryAfter = r.headers["retry-after"]
        }
    }

    static func post(_ client: LoopbackClient, _ id: String, key: String) -> Answer {
        Answer(client.request("POST", "/v1/sessions/\(id)/turns", json: #"{"speaker": "A", "transcript": "hello \#(id)"}"#,
                              headers: ["Authorization: Bearer \(key)"]))
    }

    static func files(_ state: URL) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: state.path).filter { $0.hasSuffix(".session.json") })
    }

    static func get(_ client: LoopbackClient, _ id: String, key: String) -> Int {
        client.request("GET", "/v1/sessions/\(id)", headers: ["Authorization: Bearer \(key)"]).status
    }

    static func metrics(_ port: Int) throws -> String {
        let client = try LoopbackClient(port: port)
        client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        return String(decoding: client.readResponse().body, as: UTF8.self)
    }

    @Test func aTableFullOfOneTenantsSessionsStillTakesAnotherTenantsCall() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("evict-http-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let keys = try APIKeys(Self.keys)
        let configure: (inout ServiceHost.Options) -> Void = {
            $0.apiKeys = keys
            $0.journal = true
            $0.conversation.maxSessions = 3
            $0.conversation.evictionMinimumIdle = 0
        }
        let first = try LoggedHost(stateDirectory: state, configure: configure)
        let host = first.host, port = first.port
        let evictedFile = SessionSnapshotStore.fileName(for: SessionKey(namespace: "acme", id: "a1"))
        let (statuses, afterFill) = try await offPool {
            let client = try LoopbackClient(port: port)
            let statuses = ["a1", "a2", "a3"].map { Self.post(client, $0, key: "acme-key").status }
            host.writeSnapshot()
            return (statuses, try Self.files(state))
        }
        #expect(statuses == [200, 200, 200])
        #expect(afterFill.contains(evictedFile) && afterFill.count == 3)
        // Today's code answers 503 too_many_sessions here, for an hour.
        let (other, evicted, kept, text) = try await offPool {
            let client = try LoopbackClient(port: port)
            let other = Self.post(client, "b1", key: "globex-key")
            return (other, Self.get(client, "a1", key: "acme-key"), Self.get(client, "a2", key: "acme-key"), try Self.metrics(port))
        }
        #expect(other.status == 200, "\(other.code ?? "")")
        #expect(evicted == 404 && kept == 200)
        #expect(text.contains("\nemotion_evicted_sessions_total 1\n"), "\(text)")
        // The next snapshot pass removes the evicted session's file.
        let afterEviction = try await offPool { host.writeSnapshot(); return try Self.files(state) }
        #expect(!afterEviction.contains(evictedFile) && afterEviction.count == 3)
        await first.stop()

        // After a restart (snapshots and journal) the evicted session stays gone.
        let second = try LoggedHost(stateDirectory: state, configure: configure)
        let secondPort = second.port
        let restored = try await offPool {
            let client = try LoopbackClient(port: secondPort)
            return [Self.get(client, "a1", key: "acme-key"), Self.get(client, "a2", key: "acme-key"),
                    Self.get(client, "a3", key: "acme-key"), Self.get(client, "b1", key: "globex-key")]
        }
        #expect(restored == [404, 200, 200, 200])
        await second.stop()
    }

    @Test func aTenantBeyondItsQuotaIsRefused429WithRetryAfter() async throws {
        let keys = try APIKeys(Self.keys)
        let service = try LoggedHost {
            $0.apiKeys = keys
            $0.conversation.maxSessions = 10
            $0.conversation.maxSessionsPerTenant = 2
        }
        let port = service.port
        let (answers, refused, again, other, text) = try await offPool {
            let client = try LoopbackClient(port: port)
            let answers = ["a1", "a2"].map { Self.post(client, $0, key: "acme-key").status }
            let refused = Self.post(client, "a3", key: "acme-key")
            let again = Self.post(client, "a1", key: "acme-key").status
            let other = Self.post(client, "b1", key: "globex-key").status
            return (answers, refused, again, other, try Self.metrics(port))
        }
        #expect(answers == [200, 200])
        #expect(refused.status == 429 && refused.code == "tenant_session_quota", "\(refused)")
        #expect((Int(refused.retryAfter ?? "") ?? 0) >= 1, "\(refused)")
        #expect(again == 200, "the tenant's existing sessions go on")
        #expect(other == 200, "another tenant is served")
        #expect(text.contains("\nemotion_tenant_quota_refusals_total 1\n"))
        await service.stop()
    }

    /// Reset, or only a FIN (a proxy in front closes its upstream connection gracefully when its
    /// client leaves): either way the analysis stops at its next step.
    @Test(arguments: [true, false])
    func aClientThatLeavesStopsItsAnalysis(reset: Bool) async throws {
        let gate = DispatchSemaphore(value: 0)
        let encoder = FakeEncoder(gate: gate)
        let service = try LoggedHost(encoder: encoder) { $0.conversation.maxBatch = 1 }
        let engine = service.host.engine, host = service.host, port = service.port
        let turns = (0..<30).map { #"{"speaker": "\#($0 % 2 == 0 ? "A" : "B")", "transcript": "turn \#($0)"}"# }
        let body = #"{"turns": [\#(turns.joined(separator: ","))]}"#
        let client = try LoopbackClient(port: port)
        // A small request: it fits the socket buffer, the send does not block.
        client.send("POST /v1/dialogues/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
        // The only worker is in the analysis's first step; the client gives up.
        #expect(try await eventually { encoder.callCount >= 1 })
        if reset {
            client.abort()
            #expect(try await eventually { host.openConnectionCount == 0 })
        } else {
            client.shutdownWrite()
            try await Task.sleep(for: .milliseconds(500))  // the FIN reaches the server (loopback: at once)
        }
        for _ in 0..<100 { gate.signal() }
        #expect(try await eventually { engine.statistics.waiting == 0 })
        #expect(encoder.callCount == 1, "the steps after the client left were skipped")
        #expect(engine.counters.abandonedAnalyses == 1 && engine.counters.skippedAnalysisTurns == 29)
        let text = try await offPool { try Self.metrics(port) }
        #expect(text.contains("\nemotion_abandoned_analyses_total 1\n") && text.contains("\nemotion_analysis_turns_skipped_total 29\n"))
        await service.stop()
    }

    @Test func dialogueBudgetsOverHTTP() async throws {
        let service = try LoggedHost {
            $0.conversation.maxDialogueTurns = 3
            $0.conversation.maxDialogueAudioSeconds = 0.005  // the fake clips last 1 ms per byte
        }
        let port = service.port
        let audio = Data(repeating: 7, count: 4).base64EncodedString()
        let (long, loud, fits) = try await offPool {
            let client = try LoopbackClient(port: port)
            let turn = #"{"speaker": "A", "transcript": "hi"}"#
            let clip = #"{"speaker": "A", "transcript": "hi", "audio": "\#(audio)"}"#
            func analyze(_ turns: [String]) -> Answer {
                Answer(client.request("POST", "/v1/dialogues/analyze", json: #"{"turns": [\#(turns.joined(separator: ","))]}"#))
            }
            return (analyze([turn, turn, turn, turn]), analyze([clip, clip]), analyze([clip, turn, turn]))
        }
        #expect(long.status == 422 && long.code == "dialogue_too_long", "\(long)")
        #expect(loud.status == 422 && loud.code == "dialogue_audio_too_long", "\(loud)")
        #expect(fits.status == 200, "\(fits)")
        await service.stop()
    }
}
