import Conversation
import DialogicalEmotionDecoder
import Foundation
import ConversationTestSupport
import Testing
@testable import EmotionService

/// Runs blocking work (socket I/O, waiting for a process) on a thread of its own and awaits it,
/// so that a test never holds one of the cooperative pool's threads (two on a 2-core machine).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A state directory the current user cannot write: a read-only directory, or (as root, whom
/// permissions do not stop) a path under a regular file. `how` says which was used.
func unwritableStateDirectory(in base: URL) throws -> (url: URL, how: String) {
    let readOnly = base.appendingPathComponent("read-only")
    try FileManager.default.createDirectory(at: readOnly, withIntermediateDirectories: true)
    chmod(readOnly.path, 0o500)
    let probe = readOnly.appendingPathComponent("probe")
    if FileManager.default.createFile(atPath: probe.path, contents: Data()) {
        try? FileManager.default.removeItem(at: probe)
        let file = base.appendingPathComponent("not-a-directory")
        try Data("x".utf8).write(to: file)
        return (file.appendingPathComponent("state"), "a path under a regular file")
    }
    return (readOnly.appendingPathComponent("state"), "a read-only directory")
}

/// Issue #11, durability over real sockets.
@Suite(.serialized) struct DurabilityTests {
    static let turn = #"{"speaker": "A", "transcript": "hello"}"#

    @Test func anUnwritableStateDirectoryKeepsServingAndSaysWhatIsWrong() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("unwritable-\(UUID())")
        defer {
            chmod(base.appendingPathComponent("read-only").path, 0o700)
            try? FileManager.default.removeItem(at: base)
        }
        let (state, how) = try unwritableStateDirectory(in: base)
        let service = try LoggedHost(stateDirectory: state)
        let port = service.port
        let before = try await offPool { () -> [Int] in
            let client = try LoopbackClient(port: port)
            return (0..<3).map { _ in client.request("POST", "/v1/sessions/call-1/turns", json: Self.turn).status }
        }
        #expect(before == [200, 200, 200], "\(how)")
        #expect(!service.host.writeSnapshot(), "\(how)")
        let (status, problems, metrics, after) = try await offPool { () -> (String?, [String], String, Int) in
            let client = try LoopbackClient(port: port)
            let ready = client.request("GET", "/readyz")
            client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let metrics = String(decoding: client.readResponse().body, as: UTF8.self)
            let after = client.request("POST", "/v1/sessions/call-1/turns", json: Self.turn).status
            return (ready.body["status"] as? String, ready.body["problems"] as? [String] ?? [], metrics, after)
        }
        #expect(status == "degraded", "\(how)")
        #expect(problems.count == 1 && problems[0].contains("snapshot failed"), "\(how): \(problems)")
        #expect(metrics.contains("\nemotion_snapshot_failures_total 1\n"), "\(how)")
        #expect(metrics.contains("\nemotion_snapshot_files_skipped_total 0\n"))
        #expect(after == 200)
        let log = await service.stop()
        #expect(log.contains("state directory unusable"), "\(how)")
    }

    @Test func deleteRemovesTheSessionFileBeforeAnswering() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("delete-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let service = try LoggedHost(stateDirectory: state)
        let port = service.port
        _ = try await offPool { () -> Int in
            let client = try LoopbackClient(port: port)
            _ = client.request("POST", "/v1/sessions/gone/turns", json: Self.turn)
            return client.request("POST", "/v1/sessions/kept/turns", json: Self.turn).status
        }
        #expect(service.host.writeSnapshot())
        #expect(try FileManager.default.contentsOfDirectory(atPath: state.path).count == 2)
        let status = try await offPool { try LoopbackClient(port: port).request("DELETE", "/v1/sessions/gone").status }
        #expect(status == 204)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state.path)
                == [SessionSnapshotStore.fileName(for: SessionKey(id: "kept"))])
        await service.stop()
    }

    /// A turn being processed when its session is deleted is answered 404 `session_deleted`,
    /// never 200, and does not bring the session back.
    @Test func aTurnInFlightWhenItsSessionIsDeletedIsAnswered404() async throws {
        let gate = DispatchSemaphore(value: 0)
        let service = try LoggedHost(encoder: FakeEncoder(gate: gate))
        let port = service.port, engine = service.host.engine
        gate.signal()  // the first turn's one pass through the encoder
        let opened = try await offPool {
            try LoopbackClient(port: port).request("POST", "/v1/sessions/call-9/turns", json: #"{"speaker": "A", "transcript": "first"}"#).status
        }
        #expect(opened == 200)
        let inFlight = Task { try await offPool { () -> (Int, String?) in
            let r = try LoopbackClient(port: port).request("POST", "/v1/sessions/call-9/turns", json: Self.turn)
            return (r.status, errorCode(r.body))
        } }
        // Wait (without a deadline of our own) until the turn is inside the encoder.
        while engine.statistics.running == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        let deleted = try await offPool { try LoopbackClient(port: port).request("DELETE", "/v1/sessions/call-9").status }
        #expect(deleted == 204)
        gate.signal()
        let (status, code) = try await inFlight.value
        #expect(status == 404 && code == "session_deleted", "\(status) \(code ?? "")")
        let after = try await offPool { try LoopbackClient(port: port).request("GET", "/v1/sessions/call-9").status }
        #expect(after == 404)
        await service.stop()
    }
}
