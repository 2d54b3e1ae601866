import Conversation
import DialogicalEmotionDecoder
import Foundation
import ConversationTestSupport
import HTTPServer
import Testing
import TestSupport
@testable import EmotionService

/// Issue #11, durability over real sockets.
@Suite(.serialized) struct DurabilityTests {
    static let turn = #"{"speaker": "A", "transcript": "hello"}"#

    @Test func anUnwritableStateDirectoryKeepsServingAndSaysWhatIsWrong() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("unwritable-\(UUID())")
        defer {
            chmod(base.appendingPathComponent("read-only").path, 0o700)
            try? FileManager.default.removeItem(at: base)
        }
        let (state, how) = try unwritableDirectory(in: base)
        let service = try LoggedHost(stateDirectory: state)
        let port = service.port
        let before = try await offPool { () -> [Int] in
            let client = try LoopbackClient(port: port)
            return (0..<3).map { _ in client.request("POST", "/v1/sessions/call-1/turns", json: Self.turn).status }
        }
        #expect(before == [200, 200, 200], "\(how)")
        let host = service.host
        #expect(try await !offPool { host.writeSnapshot() }, "\(how)")
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
        let host = service.host
        #expect(try await offPool { host.writeSnapshot() })
        func sessionFiles() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: state.path).filter { $0.hasSuffix(".session.json") }
        }
        #expect(try sessionFiles().count == 2)
        let status = try await offPool { try LoopbackClient(port: port).request("DELETE", "/v1/sessions/gone").status }
        #expect(status == 204)
        #expect(try sessionFiles() == [SessionSnapshotStore.fileName(for: SessionKey(id: "kept"))])
        await service.stop()
    }

    /// With the journal, DELETE is answered once the deletion is in the journal on disk (a crash
    /// right after the 204 cannot bring the session back), also when syncs are gathered.
    @Test func deleteIsAnsweredOnceTheJournalHoldsIt() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("delete-journal-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let service = try LoggedHost(stateDirectory: state) { $0.journal = true; $0.journalCommitInterval = 0.3 }
        let port = service.port
        let (posted, deleted) = try await offPool { () -> (Int, Int) in
            let client = try LoopbackClient(port: port)
            let posted = client.request("POST", "/v1/sessions/gone/turns", json: Self.turn).status
            return (posted, client.request("DELETE", "/v1/sessions/gone").status)
        }
        #expect(posted == 200 && deleted == 204)
        let journal = try #require(service.host.journal)
        let records = TurnJournal.read(directory: state, model: journal.model).records
        #expect(records.contains(.end(namespace: SessionKey.defaultNamespace, id: "gone")), "\(records.count) records")
        await service.stop()
    }

    /// A full disk under the journal (a real, tiny tmpfs): the turn is refused with 503
    /// `storage_unavailable` and not stored, `/readyz` says why, the failure is counted; with
    /// room again the retried turn is stored.
    @Test(.enabled(if: canMountTinyFilesystem, "mounting a tmpfs needs privileges this run lacks"))
    func aFullDiskUnderTheJournalRefusesTurnsWith503() async throws {
        let point = try #require(mountTinyFilesystem(kilobytes: 512))
        defer { unmount(point) }
        let state = point.appendingPathComponent("state")
        let service = try LoggedHost(stateDirectory: state) { $0.journal = true }
        let port = service.port
        let words = String(repeating: "words ", count: 2_000)  // a record larger than a page
        @Sendable func turn(_ id: String) -> String { #"{"speaker": "A", "transcript": "\#(words)", "turn_id": "\#(id)"}"# }
        let first = try await offPool { try LoopbackClient(port: port).request("POST", "/v1/sessions/s/turns", json: turn("t0")).status }
        #expect(first == 200)
        let filler = point.appendingPathComponent("filler")
        fill(filler)
        let (status, code, ready, problems, metrics) = try await offPool { () -> (Int, String?, String?, [String], String) in
            let client = try LoopbackClient(port: port)
            let r = client.request("POST", "/v1/sessions/s/turns", json: turn("t1"))
            let ready = client.request("GET", "/readyz")
            client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let metrics = String(decoding: client.readResponse().body, as: UTF8.self)
            return (r.status, errorCode(r.body), ready.body["status"] as? String, ready.body["problems"] as? [String] ?? [], metrics)
        }
        #expect(status == 503 && code == "storage_unavailable")
        #expect(ready == "degraded" && problems.contains { $0.contains("No space left") }, "\(problems)")
        #expect(metrics.contains("\nemotion_journal_failures_total 1\n"))
        try FileManager.default.removeItem(at: filler)
        let (retry, turns, readyAgain) = try await offPool { () -> (Int, Int, String?) in
            let client = try LoopbackClient(port: port)
            let retry = client.request("POST", "/v1/sessions/s/turns", json: turn("t1")).status
            let turns = (client.request("GET", "/v1/sessions/s").body["turns"] as? [Any])?.count ?? -1
            return (retry, turns, client.request("GET", "/readyz").body["status"] as? String)
        }
        #expect(retry == 200 && turns == 2 && readyAgain == "ready")
        // The journal holds exactly the turns answered 200: the failed write was cut off again.
        let journal = try #require(service.host.journal)
        let ids = TurnJournal.read(directory: state, model: journal.model).records.compactMap { record -> String? in
            if case .turn(_, _, _, let turn) = record { return turn.turnId } else { return nil }
        }
        #expect(ids == ["t0", "t1"])
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
        // Wait (without a deadline of our own) until the turn is accepted: it is then the
        // session's turn in flight (queued for or inside the gated encoder), not a waiting one.
        while engine.statistics.waiting == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
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

/// Issue #11: logging can never kill or stall the server.
@Suite(.serialized) struct LoggingTests {
    /// Lines to a pipe nobody reads are queued, then dropped and counted; once the reader is
    /// gone the stuck write fails with EPIPE and is counted; `log` never blocks meanwhile.
    @Test func aStuckOrClosedOutputDropsAndCountsLines() async throws {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let logger = JSONLogger(fileDescriptor: fds[1], capacity: 16)
        let filler = String(repeating: "x", count: 4096)
        // 64 KiB fills a Linux pipe; 200 lines of 4 KiB are far more than it and the queue hold.
        try await offPool { for i in 0..<200 { logger.info("line", ["i": i, "filler": filler]) } }
        #expect(logger.droppedLines > 0)
        close(fds[0])
        #expect(await logger.flush(timeout: 30))
        #expect(logger.writeFailures > 0)
        logger.info("after")
        #expect(await logger.flush(timeout: 30))
        close(fds[1])
    }

    /// The real `emotion-server` with its stderr a pipe whose reader is gone keeps answering
    /// (before: SIGPIPE, or the trap in `FileHandle.write`, killed it at the first request log).
    @Test func aServerWhoseStderrIsAClosedPipeKeepsAnswering() async throws {
        let process = Process()
        process.executableURL = try ServerProcessTests.binary()
        process.arguments = ["--model", EndToEndTests.model.path, "--port", "0"]
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("EMOTION_") }
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = stderr
        try process.run()
        let port = try await offPool { () -> Int in
            var log = Data()
            while true {
                let chunk = stderr.fileHandleForReading.availableData
                if chunk.isEmpty { return 0 }
                log.append(chunk)
                for line in String(decoding: log, as: UTF8.self).split(separator: "\n") where line.contains("\"listening\"") {
                    if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                       let address = object["address"] as? String, let p = Int(address.split(separator: ":").last ?? "") {
                        return p
                    }
                }
            }
        }
        #expect(port > 0)
        try stderr.fileHandleForReading.close()
        let (statuses, metrics) = try await offPool { () -> ([Int], String) in
            let client = try LoopbackClient(port: port)
            var statuses: [Int] = []
            for i in 0..<20 {
                statuses.append(client.request("POST", "/v1/sessions/c/turns",
                                               json: #"{"speaker": "A", "transcript": "turn \#(i)"}"#).status)
                statuses.append(client.request("GET", "/healthz").status)
            }
            client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            return (statuses, String(decoding: client.readResponse().body, as: UTF8.self))
        }
        #expect(statuses == [Int](repeating: 200, count: 40), "\(statuses)")
        let failures = metrics.split(separator: "\n").first { $0.hasPrefix("emotion_log_write_failures_total ") }
        #expect((failures?.split(separator: " ").last).flatMap { Int($0) } ?? 0 > 0, "\(failures ?? "no metric")")
        #expect(process.isRunning)
        process.terminate()
        let status = try await offPool { () -> Int32 in
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 0)
    }
}

/// Issue #11: the liveness probe answers while every API handler queue is busy.
@Suite(.serialized) struct LivenessTests {
    final class Occupancy: @unchecked Sendable {
        let lock = NSLock()
        var running = 0
        func started() { lock.lock(); running += 1; lock.unlock() }
        var count: Int { lock.lock(); defer { lock.unlock() }; return running }
    }

    /// The service's one handler queue is held by a blocked job (as by a 16 MiB body being
    /// parsed); `/healthz` is still answered, `/readyz` (an API request) once the queue is free.
    /// (A server of its own queue, so that other tests' servers are not held up.)
    @Test func healthzAnswersWhileEveryHandlerQueueIsBusy() async throws {
        let service = try LoggedHost { $0.handlerQueues = 1 }
        let port = service.port
        let gate = DispatchSemaphore(value: 0)
        let occupancy = Occupancy()
        let blocker = Task(executorPreference: service.host.handlerExecutor) {
            occupancy.started()
            gate.wait()
        }
        while occupancy.count == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        let health = try await offPool { try LoopbackClient(port: port).request("GET", "/healthz").status }
        gate.signal()
        await blocker.value
        #expect(health == 200)
        let ready = try await offPool { try LoopbackClient(port: port).request("GET", "/readyz").status }
        #expect(ready == 200)
        await service.stop()
    }
}
