import Conversation
import Foundation
import Testing
import TestSupport
@testable import EmotionService

/// The real `emotion-server` started with a state directory, its log in a file; every blocking
/// call is made on threads of the caller's (see `offPool`).
final class ServerUnderTest: @unchecked Sendable {
    let process = Process()
    let logFile: URL
    private(set) var port = 0

    /// `environment`: variables added to the test's own (whose `EMOTION_*` ones are dropped).
    init(arguments: [String], environment: [String: String] = [:]) throws {
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("server-\(UUID()).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = try ServerProcessTests.binary()
        process.arguments = ["--model", EndToEndTests.model.path, "--port", "0"] + arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("EMOTION_") }
            .merging(environment) { $1 }
        process.standardError = try FileHandle(forWritingTo: logFile)
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Blocks until the server logs its address (or exits); the port, 0 if it never listened.
    func waitUntilListening() -> Int {
        for _ in 0..<6000 where port == 0 && process.isRunning {
            for line in log.split(separator: "\n") where line.contains("\"listening\"") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let address = object["address"] as? String, let p = Int(address.split(separator: ":").last ?? "") {
                    port = p
                }
            }
            if port == 0 { usleep(10_000) }
        }
        return port
    }

    /// Blocks until the process has exited; its status.
    func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logFile)
    }
}

/// Turns posted by a few clients at once, each on its own connection and session; what each
/// got 200 for is recorded, in order.
final class TurnLoad: @unchecked Sendable {
    private let lock = NSLock()
    private var acknowledged: [String: [String]] = [:]
    private var count = 0
    let sessions: [String]

    init(sessions: [String]) { self.sessions = sessions }

    var answered: Int { lock.lock(); defer { lock.unlock() }; return count }
    var bySession: [String: [String]] { lock.lock(); defer { lock.unlock() }; return acknowledged }

    /// Runs one client per session (on threads of their own) until `limit` turns each or the
    /// server stops answering; returns when all have stopped.
    func run(port: Int, limit: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for session in sessions {
                group.addTask {
                    try await offPool {
                        guard let client = try? LoopbackClient(port: port) else { return }
                        for i in 0..<limit {
                            let id = "\(session)-t\(i)"
                            let r = client.request("POST", "/v1/sessions/\(session)/turns",
                                                   json: #"{"speaker": "\#(i % 2 == 0 ? "A" : "B")", "transcript": "turn \#(i) of \#(session)", "turn_id": "\#(id)"}"#)
                            guard r.status == 200 else { return }
                            self.lock.lock()
                            self.acknowledged[session, default: []].append(id)
                            self.count += 1
                            self.lock.unlock()
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

/// Issue #11: with the journal, every turn answered 200 survives `kill -9`; SIGTERM under load
/// loses nothing, with or without it.
@Suite(.serialized) struct JournalProcessTests {
    static let sessions = ["call-a", "call-b", "call-c", "call-d"]

    func stateDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("journal-state-\(UUID())")
    }

    /// Each session's stored turn ids, read from a new server on `state`.
    func storedTurns(state: URL, arguments: [String]) async throws -> (turns: [String: [String]], log: String, status: Int32) {
        let server = try ServerUnderTest(arguments: ["--state-dir", state.path] + arguments)
        let port = try await offPool { server.waitUntilListening() }
        #expect(port > 0, "\(server.log)")
        let turns = try await offPool { () -> [String: [String]] in
            let client = try LoopbackClient(port: port)
            var turns: [String: [String]] = [:]
            for session in Self.sessions {
                let r = client.request("GET", "/v1/sessions/\(session)")
                turns[session] = (r.body["turns"] as? [[String: Any]] ?? []).compactMap { $0["turn_id"] as? String }
            }
            return turns
        }
        server.process.terminate()
        let status = try await offPool { server.waitForExit() }
        return (turns, server.log, status)
    }

    /// Every acknowledged turn is stored, in order: the acknowledged ids of a session are a
    /// prefix of its stored ones (a turn made durable but not yet answered may follow).
    func expectEveryAcknowledgedTurn(_ acknowledged: [String: [String]], in stored: [String: [String]], _ what: String) {
        for session in Self.sessions {
            let got = stored[session] ?? [], sent = acknowledged[session] ?? []
            #expect(Array(got.prefix(sent.count)) == sent,
                    "\(what) \(session): \(sent.count) answered 200, \(got.count) stored; missing \(Set(sent).subtracting(got).sorted())")
        }
    }

    @Test func everyTurnAnswered200SurvivesKill9() async throws {
        let state = stateDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        let arguments = ["--journal", "--snapshot-interval", "0"]
        let server = try ServerUnderTest(arguments: ["--state-dir", state.path] + arguments)
        let port = try await offPool { server.waitUntilListening() }
        try #require(port > 0, "\(server.log)")
        let load = TurnLoad(sessions: Self.sessions)
        let clients = Task { try await load.run(port: port, limit: 1000) }
        // Under load: kill once enough turns were answered, while the clients keep posting.
        while load.answered < 60 { try await Task.sleep(nanoseconds: 2_000_000) }
        kill(server.process.processIdentifier, SIGKILL)
        try await clients.value
        let status = try await offPool { server.waitForExit() }
        #expect(status == SIGKILL)
        let acknowledged = load.bySession
        #expect(acknowledged.values.map(\.count).reduce(0, +) >= 60)

        let (stored, log, exit) = try await storedTurns(state: state, arguments: arguments)
        expectEveryAcknowledgedTurn(acknowledged, in: stored, "kill -9")
        #expect(log.contains("\"journal replayed\""), "\(log)")
        #expect(exit == 0, "\(log)")
    }

    @Test(arguments: [true, false])
    func sigtermUnderLoadLosesNothing(journal: Bool) async throws {
        let state = stateDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        let arguments = (journal ? ["--journal"] : []) + ["--snapshot-interval", "0"]
        let server = try ServerUnderTest(arguments: ["--state-dir", state.path] + arguments)
        let port = try await offPool { server.waitUntilListening() }
        try #require(port > 0, "\(server.log)")
        let load = TurnLoad(sessions: Self.sessions)
        let clients = Task { try await load.run(port: port, limit: 1000) }
        while load.answered < 40 { try await Task.sleep(nanoseconds: 2_000_000) }
        server.process.terminate()
        try await clients.value
        let status = try await offPool { server.waitForExit() }
        #expect(status == 0, "\(server.log)")
        let (stored, log, exit) = try await storedTurns(state: state, arguments: arguments)
        expectEveryAcknowledgedTurn(load.bySession, in: stored, journal ? "SIGTERM, journal" : "SIGTERM")
        #expect(exit == 0, "\(log)")
    }
}

/// An operator's mistake: a second server on a state directory in use refuses to start (exit
/// 5) and leaves the first one's journal alone.
@Suite(.serialized) struct StateDirectoryLockTests {
    @Test func aSecondServerOnTheSameStateDirectoryRefusesToStart() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("locked-state-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let arguments = ["--state-dir", state.path, "--journal", "--snapshot-interval", "0"]
        let first = try ServerUnderTest(arguments: arguments)
        let port = try await offPool { first.waitUntilListening() }
        try #require(port > 0, "\(first.log)")
        let posted = try await offPool {
            try LoopbackClient(port: port).request("POST", "/v1/sessions/s/turns",
                                                   json: #"{"speaker": "A", "transcript": "kept", "turn_id": "t0"}"#).status
        }
        #expect(posted == 200)
        let journals = TurnJournal.generations(in: state)
        let second = try ServerUnderTest(arguments: arguments)
        // Before: it listened (and had rotated the first one's journal away).
        let listened = try await offPool { second.waitUntilListening() }
        if second.process.isRunning { kill(second.process.processIdentifier, SIGKILL) }
        let status = try await offPool { second.waitForExit() }
        #expect(listened == 0 && status == 5, "\(second.log)")
        #expect(second.log.contains("state_dir_in_use"), "\(second.log)")
        #expect(TurnJournal.generations(in: state) == journals)
        kill(first.process.processIdentifier, SIGKILL)
        _ = try await offPool { first.waitForExit() }
        let third = try ServerUnderTest(arguments: arguments)
        let port3 = try await offPool { third.waitUntilListening() }
        let turns = try await offPool {
            (try LoopbackClient(port: port3).request("GET", "/v1/sessions/s").body["turns"] as? [Any])?.count ?? 0
        }
        #expect(turns == 1)
        third.process.terminate()
        #expect(try await offPool { third.waitForExit() } == 0)
    }
}
