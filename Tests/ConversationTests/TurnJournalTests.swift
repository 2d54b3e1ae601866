import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM
import ConversationTestSupport
import Testing
import TestSupport
@testable import Conversation

/// Issue #11: the turn journal (framing, replay, rotation, failures).
@Suite struct TurnJournalTests {
    func engine() throws -> ConversationEngine { try makeEngine() }

    /// Equal but for `lastActivity` (the time of the answer, which no record carries; a replayed
    /// session's is its last turn's arrival).
    func same(_ a: SessionState?, _ b: SessionState?) -> Bool {
        guard var a, var b else { return a == nil && b == nil }
        a.lastActivity = .distantPast
        b.lastActivity = .distantPast
        return a == b
    }

    func temporaryDirectory(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID())")
    }

    func turn(_ text: String, _ speaker: String = "A", id: String? = nil) -> TurnInput {
        TurnInput(turnId: id, speaker: speaker, transcript: text, audio: text.count % 2 == 0 ? Data([UInt8(text.count)]) : nil)
    }

    @Test func crc32MatchesZlib() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }

    @Test func framesRoundTripAndATornOrCorruptRecordIsDetected() {
        let payloads = [Data("one".utf8), Data(), Data(repeating: 7, count: 1000)]
        let file = payloads.map(JournalFrame.encode).reduce(Data(), +)
        let whole = JournalFrame.decode(file)
        #expect(whole.payloads == payloads && whole.damagedAt == nil)
        let lastStart = file.count - (1000 + 8)
        for cut in [1, 7, 8, 500, 1007] {
            let torn = JournalFrame.decode(file.prefix(file.count - cut))
            #expect(torn.payloads == Array(payloads.prefix(2)) && torn.damagedAt == lastStart, "cut \(cut)")
        }
        var flipped = file
        flipped[lastStart + 8 + 10] ^= 0x01
        #expect(JournalFrame.decode(flipped).payloads == Array(payloads.prefix(2)))
        var huge = file
        huge.replaceSubrange(0..<4, with: [0xFF, 0xFF, 0xFF, 0x7F])
        #expect(JournalFrame.decode(huge).payloads.isEmpty && JournalFrame.decode(huge).damagedAt == 0)
    }

    /// Turns, a delete and a recreated session, journaled and replayed into a fresh engine
    /// with nothing else: the same sessions, decoder state included.
    @Test func replayRebuildsEverySessionExactly() async throws {
        let directory = temporaryDirectory("journal")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        let model = SnapshotModel(engine: engine)
        let journal = TurnJournal(directory: directory, model: model)
        #expect(journal.problem == nil)
        engine.attach(journal: journal)
        for i in 0..<4 {
            _ = try await engine.submit(sessionId: "a", turn: turn("a turn \(i)", i % 2 == 0 ? "A" : "B", id: "a\(i)"))
            _ = try await engine.submit(sessionId: "b", namespace: "acme", turn: turn("b turn \(i)"))
        }
        _ = try await engine.submit(sessionId: "gone", turn: turn("soon deleted"))
        #expect(engine.deleteSession("gone"))
        _ = try await engine.submit(sessionId: "a", turn: turn("a turn 1", "B", id: "a1"))  // a replay: no record
        #expect(engine.deleteSession("b", namespace: "acme"))
        _ = try await engine.submit(sessionId: "b", namespace: "acme", turn: turn("a new b"))
        journal.sync()
        #expect(journal.commitCount >= 1)

        let (records, problems) = TurnJournal.read(directory: directory, model: model)
        #expect(problems.isEmpty, "\(problems)")
        #expect(records.count == 12)  // 4 + 4 turns, gone + its end, the end of b, the new b
        let restarted = try self.engine()
        let (stored, skipped) = restarted.replay(records, model: model)
        #expect(skipped.isEmpty, "\(skipped)")
        #expect(stored == 10)
        #expect(same(restarted.session("a"), engine.session("a")))
        #expect(same(restarted.session("b", namespace: "acme"), engine.session("b", namespace: "acme")))
        #expect(restarted.session("b", namespace: "acme")?.turns.count == 1)
        #expect(restarted.session("gone") == nil)
        // The next turn continues identically.
        let next = turn("after the restart", "B")
        let x = try await restarted.submit(sessionId: "a", turn: next)
        let y = try await engine.submit(sessionId: "a", turn: next)
        #expect(x.turn.logits == y.turn.logits && x.decoded == y.decoded)
    }

    /// A crash mid-write leaves a torn last record: it is skipped, everything before is kept.
    @Test func aTornLastRecordIsSkipped() async throws {
        let directory = temporaryDirectory("torn")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        let model = SnapshotModel(engine: engine)
        let journal = TurnJournal(directory: directory, model: model)
        engine.attach(journal: journal)
        for i in 0..<3 { _ = try await engine.submit(sessionId: "s", turn: turn("turn \(i)")) }
        journal.sync()
        let file = directory.appendingPathComponent(TurnJournal.fileName(generation: journal.currentGeneration))
        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 5).write(to: file)
        let (records, problems) = TurnJournal.read(directory: directory, model: model)
        #expect(records.count == 2)
        #expect(problems.count == 1 && problems[0].contains("torn or corrupt record"), "\(problems)")
        let restarted = try self.engine()
        _ = restarted.replay(records, model: model)
        #expect(restarted.session("s")?.turns.map(\.transcript) == ["turn 0", "turn 1"])
    }

    /// Another model's journal is skipped; a snapshot plus the journal written after it gives
    /// the whole session; discarded generations are gone.
    @Test func rotationSnapshotsAndAnotherModelsJournal() async throws {
        let directory = temporaryDirectory("rotate")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        let model = SnapshotModel(engine: engine)
        let store = SessionSnapshotStore(directory: directory, model: model)
        let journal = TurnJournal(directory: directory, model: model)
        engine.attach(journal: journal)
        for i in 0..<3 { _ = try await engine.submit(sessionId: "s", turn: turn("turn \(i)")) }
        let closed = journal.rotate()
        try store.write(engine)
        journal.discard(through: closed)
        #expect(TurnJournal.generations(in: directory) == [closed + 1])
        for i in 3..<5 { _ = try await engine.submit(sessionId: "s", turn: turn("turn \(i)")) }
        journal.sync()

        let restarted = try self.engine()
        restarted.restore(SessionSnapshotStore(directory: directory, model: model).read().sessions)
        #expect(restarted.session("s")?.turns.count == 3)
        let (records, problems) = TurnJournal.read(directory: directory, model: model)
        #expect(problems.isEmpty)
        #expect(restarted.replay(records, model: model).stored == 2)
        #expect(same(restarted.session("s"), engine.session("s")))

        let other = SnapshotModel(engine: engine, identity: "another-model")
        let foreign = TurnJournal.read(directory: directory, model: other)
        #expect(foreign.records.isEmpty)
        #expect(foreign.problems.first?.contains("written by model") == true, "\(foreign.problems)")
    }

    /// A journal that cannot write refuses the turn with 503 `storage_unavailable`, and the
    /// turn is not stored.
    @Test func aJournalThatCannotWriteRefusesTheTurn() async throws {
        let base = temporaryDirectory("nojournal")
        defer {
            chmod(base.appendingPathComponent("read-only").path, 0o700)
            try? FileManager.default.removeItem(at: base)
        }
        let (directory, how) = try unwritableDirectory(in: base)
        let engine = try engine()
        let journal = TurnJournal(directory: directory, model: SnapshotModel(engine: engine))
        #expect(journal.problem != nil, "\(how)")
        engine.attach(journal: journal)
        let refused = await #expect(throws: ConversationError.self) {
            _ = try await engine.submit(sessionId: "s", turn: turn("lost?"))
        }
        #expect(refused?.code == "storage_unavailable" && refused?.kind == .unavailable, "\(how)")
        #expect(engine.session("s")?.turns.isEmpty ?? true)
        #expect(engine.statistics.waiting == 0)
    }
}
