import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM
import ConversationTestSupport
import Testing
import TestSupport
@testable import Conversation

/// Issue #11, durability of snapshots: fsynced, private files; deletes at once; every field of
/// a restored session validated; an unusable directory reported, not fatal.
@Suite struct SnapshotDurabilityTests {
    func engine() throws -> ConversationEngine { try makeEngine() }

    func temporaryDirectory(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID())")
    }

    func mode(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func filesArePrivateAndNoTemporaryFileIsLeft() async throws {
        let base = temporaryDirectory("modes")
        defer { try? FileManager.default.removeItem(at: base) }
        let directory = base.appendingPathComponent("state")
        let engine = try engine()
        _ = try await engine.submit(sessionId: "call-1", turn: TurnInput(speaker: "A", transcript: "hello"))
        let store = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine))
        #expect(try store.write(engine) == 1)
        #expect(try mode(directory) == 0o700)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(names == [SessionSnapshotStore.fileName(for: SessionKey(id: "call-1"))])
        #expect(try mode(directory.appendingPathComponent(names[0])) == 0o600)
        #expect(store.problem == nil && store.failedPasses == 0)
    }

    @Test func deleteRemovesTheFileAtOnce() async throws {
        let directory = temporaryDirectory("delete")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        _ = try await engine.submit(sessionId: "gone", turn: TurnInput(speaker: "A", transcript: "hello"))
        _ = try await engine.submit(sessionId: "kept", turn: TurnInput(speaker: "A", transcript: "hello"))
        let store = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine))
        try store.write(engine)
        #expect(store.delete(SessionKey(id: "gone"), in: engine))
        #expect(!store.delete(SessionKey(id: "gone"), in: engine))
        // No pass has run since: the file is gone all the same, the other one stays.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path)
                == [SessionSnapshotStore.fileName(for: SessionKey(id: "kept"))])
        #expect(try store.write(engine) == 0)
    }

    /// A session whose rewrite failed and which then expired loses its file at the next pass
    /// (it must not come back at a restart). The failure: a directory where the temporary file
    /// goes, which stops root as well.
    @Test func aFailedRewriteThenExpiryStillRemovesTheFile() async throws {
        let directory = temporaryDirectory("failed-rewrite")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        _ = try await engine.submit(sessionId: "s", turn: TurnInput(speaker: "A", transcript: "one"))
        let store = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine))
        try store.write(engine)
        let name = SessionSnapshotStore.fileName(for: SessionKey(id: "s"))
        _ = try await engine.submit(sessionId: "s", turn: TurnInput(speaker: "A", transcript: "two"))
        let blocker = directory.appendingPathComponent(".\(name).tmp")
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        #expect(throws: StorageError.self) { try store.write(engine) }
        #expect(store.failedPasses == 1 && store.problem != nil)
        try FileManager.default.removeItem(at: blocker)
        #expect(engine.expireIdleSessions(now: Date().addingTimeInterval(10 * 3600)) == 1)
        try store.write(engine)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        #expect(store.problem == nil)
    }

    /// A full disk (the temporary file is /dev/full, which fails every write with ENOSPC): the
    /// pass fails with the reason and is counted; the next pass, with room again, succeeds.
    @Test func aFullDiskFailsThePassAndTheNextOneRecovers() async throws {
        let directory = temporaryDirectory("full")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        _ = try await engine.submit(sessionId: "s", turn: TurnInput(speaker: "A", transcript: "one"))
        let store = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine))
        let name = SessionSnapshotStore.fileName(for: SessionKey(id: "s"))
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent(".\(name).tmp").path,
                                                   withDestinationPath: "/dev/full")
        let error = #expect(throws: StorageError.self) { try store.write(engine) }
        #expect(error?.errno == ENOSPC, "\(String(describing: error))")
        #expect(store.failedPasses == 1 && store.problem?.contains("No space left") == true, "\(store.problem ?? "")")
        #expect(try store.write(engine) == 1)
        #expect(store.problem == nil)
        #expect(store.read().sessions.count == 1)
    }

    /// Every kind of damage is skipped with its reason; the intact file is restored.
    @Test func restoreValidatesEveryFieldAndSkipsBadFiles() async throws {
        let directory = temporaryDirectory("validate")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        for turn in ["one", "two"] {
            _ = try await engine.submit(sessionId: "good", turn: TurnInput(speaker: "A", transcript: turn, audio: Data([1])))
        }
        let store = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine))
        try store.write(engine)
        let goodFile = directory.appendingPathComponent(SessionSnapshotStore.fileName(for: SessionKey(id: "good")))
        let original = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: goodFile)) as? [String: Any])
        #expect(original["model"] as? String == store.model.identity)

        func floats(_ values: [Float]) -> String {
            var data = Data()
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            return data.base64EncodedString()
        }
        typealias Edit = (inout [String: Any]) -> Void
        func turnEdit(_ body: @escaping (inout [String: Any]) -> Void) -> Edit {
            { file in
                var session = file["session"] as? [String: Any] ?? [:]
                var turns = session["turns"] as? [[String: Any]] ?? []
                body(&turns[1])
                session["turns"] = turns
                file["session"] = session
            }
        }
        let damage: [(name: String, reason: String, edit: Edit)] = [
            ("label", "label 7 out of range", turnEdit { $0["label"] = 7 }),
            ("negative-label", "label -1 out of range", turnEdit { $0["label"] = -1 }),
            ("embedding-size", "text embedding of 3 values", turnEdit { $0["text_embedding"] = floats([1, 2, 3]) }),
            ("nan-embedding", "audio embedding holds a non-finite number",
             turnEdit { $0["audio_embedding"] = floats([Float](repeating: .nan, count: 64)) }),
            ("logits", "3 logits for 4 labels", turnEdit { $0["logits"] = [0.1, 0.2, 0.3] }),
            ("gates", "11 gates", turnEdit { $0["gates"] = [Double](repeating: 0.5, count: 11) }),
            ("index", "index 5 at position 1", turnEdit { $0["index"] = 5 }),
            ("decoded", "decoded label 9 out of range", { file in
                var session = file["session"] as? [String: Any] ?? [:]
                session["decoded"] = [0, 9]
                file["session"] = session
            }),
            ("decoded-count", "1 decoded labels for 2 turns", { file in
                var session = file["session"] as? [String: Any] ?? [:]
                session["decoded"] = [0]
                file["session"] = session
            }),
            ("model", "written by model 'weights-sha256:0000'", { $0["model"] = "weights-sha256:0000" }),
            ("format", "unknown format 99", { $0["format"] = 99 }),
        ]
        for d in damage {
            var file = original
            d.edit(&file)
            try JSONSerialization.data(withJSONObject: file).write(to: directory.appendingPathComponent("\(d.name).session.json"))
        }
        try Data("{\"format\": 2, \"model\": ".utf8).write(to: directory.appendingPathComponent("torn.session.json"))

        let restarted = try self.engine()
        let reader = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: restarted))
        let (sessions, problems) = reader.read()
        #expect(sessions.map(\.id) == ["good"])
        #expect(reader.skippedFiles == damage.count + 1)
        for d in damage {
            let line = problems.first { $0.hasPrefix("\(d.name).session.json:") }
            #expect(line?.contains(d.reason) == true, "\(d.name): \(line ?? "not reported") in \(problems)")
        }
        #expect(problems.contains { $0.hasPrefix("torn.session.json:") })
        restarted.restore(sessions)
        #expect(restarted.session("good") == engine.session("good"))
    }

    /// A stamp of another model skips the file even when every size matches (here: another
    /// identity of the very same engine).
    @Test func anotherModelsSnapshotIsSkipped() async throws {
        let directory = temporaryDirectory("stamp")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        _ = try await engine.submit(sessionId: "call", turn: TurnInput(speaker: "A", transcript: "hello"))
        try SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine, identity: "model-a")).write(engine)
        let b = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine, identity: "model-b"))
        let read = b.read()
        #expect(read.sessions.isEmpty && b.skippedFiles == 1)
        #expect(read.problems.first?.contains("written by model 'model-a', this server runs 'model-b'") == true, "\(read.problems)")
        #expect(SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine, identity: "model-a")).read().sessions.count == 1)
    }

    @Test func anUnwritableDirectoryIsReportedAndCountedNotFatal() async throws {
        let base = temporaryDirectory("unwritable")
        defer {
            chmod(base.appendingPathComponent("read-only").path, 0o700)
            try? FileManager.default.removeItem(at: base)
        }
        let (directory, how) = try unwritableDirectory(in: base)
        let engine = try engine()
        let store = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine))
        #expect(store.problem != nil, "\(how)")
        _ = try await engine.submit(sessionId: "call", turn: TurnInput(speaker: "A", transcript: "hello"))
        #expect(throws: StorageError.self, "\(how)") { try store.write(engine) }
        #expect(throws: StorageError.self, "\(how)") { try store.write(engine) }
        #expect(store.failedPasses == 2, "\(how)")
        #expect(store.problem?.contains("snapshot failed") == true, "\(how): \(store.problem ?? "")")
        #expect(store.read().sessions.isEmpty)
    }
}
