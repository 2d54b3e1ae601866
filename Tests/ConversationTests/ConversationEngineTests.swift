import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM
import ConversationTestSupport
import Testing
import TestSupport
@testable import Conversation

@Suite struct ConversationEngineTests {
    let classifier: GatedXLSTMClassifier
    let ded: DEDParameters

    init() throws {
        classifier = try makeClassifier()
        ded = try DEDParameters(p0: 0.2, alpha: 1, beamWidth: 5)
    }

    func engine(_ encoder: FakeEncoder = FakeEncoder(), configure: (inout ConversationConfiguration) -> Void = { _ in })
        throws -> ConversationEngine {
        try makeEngine(encoder, configure: configure)
    }

    let script: [TurnInput] = [
        TurnInput(turnId: "a", speaker: "agent", transcript: "Thank you for calling, how can I help?", audio: Data([1, 2, 3])),
        TurnInput(turnId: "b", speaker: "caller", transcript: "My order never arrived!", audio: Data([4, 5])),
        TurnInput(turnId: "c", speaker: "caller", transcript: "", audio: Data([9, 9, 9])),
        TurnInput(turnId: "d", speaker: "agent", transcript: "I am sorry to hear that."),
        TurnInput(turnId: "e", speaker: "supervisor", transcript: "Let me take over.", audio: Data([7])),
    ]

    /// Work ahead between turns: each next turn's context stacks run on the idle worker once a
    /// turn is answered, the next turn uses them, and every answer equals the classifier's on
    /// the whole streams (the same dialogue without work ahead).
    @Test func contextRunAheadBetweenTurnsGivesTheSameAnswers() async throws {
        let ahead = try engine()
        let plain = try engine { $0.prepareContext = false }
        for (i, turn) in script.enumerated() {
            let a = try await ahead.submit(sessionId: "call-1", turn: turn)
            let b = try await plain.submit(sessionId: "call-1", turn: turn)
            #expect(zip(a.turn.logits, b.turn.logits).allSatisfy { abs($0 - $1) <= 1e-5 }, "turn \(i)")
            #expect(a.decoded == b.decoded, "turn \(i)")
            // The client's pause: the work ahead of the next turn is done.
            for _ in 0..<500 where ahead.counters.preparedContexts < i + 1 { try await Task.sleep(for: .milliseconds(2)) }
            #expect(ahead.counters.preparedContexts == i + 1)
        }
        #expect(ahead.counters.preparedContextsUsed == script.count - 1)
        #expect(plain.counters.preparedContexts == 0 && plain.counters.preparedContextsUsed == 0)
        // The ready context is charged to the session's memory (8 stacks x width 16 x 4 bytes),
        // and dropped with the session.
        let slot = try #require(ahead.sessions[SessionKey(id: "call-1")])
        #expect(ahead.sessions.memory == slot.state.memoryBytes + 8 * 16 * 4)
        #expect(ahead.deleteSession("call-1"))
        #expect(ahead.sessions.memory == 0)
    }

    /// Turns of different sessions waiting together go through the audio encoder in one call,
    /// and each gets the answer it gets alone (a bad clip fails alone).
    @Test func turnsOfDifferentSessionsAreEncodedTogether() async throws {
        let gate = DispatchSemaphore(value: 0)
        let encoder = FakeEncoder(gate: gate)
        let engine = try engine(encoder)
        let collector = Collector()
        let clips: [Data] = [Data([1]), Data([2, 3]), Data([0xFF]), Data([4, 5, 6]), Data([7])]
        for (i, clip) in clips.enumerated() {
            engine.submit(sessionId: "s\(i)", turn: TurnInput(speaker: "A", transcript: "turn \(i)", audio: clip),
                          completion: collector.callback(i))
        }
        for _ in 0..<100 { gate.signal() }
        #expect(try await eventually { (0..<clips.count).allSatisfy { collector[$0] != nil } })
        #expect(encoder.audioBatches.max() ?? 0 >= 2, "\(encoder.audioBatches)")
        #expect(encoder.audioBatches.reduce(0, +) == clips.count)
        let alone = try self.engine()
        for (i, clip) in clips.enumerated() {
            let turn = TurnInput(speaker: "A", transcript: "turn \(i)", audio: clip)
            if clip == Data([0xFF]) {
                #expect(collector[i]?.error?.code == "unreadable_audio")
                continue
            }
            let single = try await alone.submit(sessionId: "s\(i)", turn: turn)
            let batched = try #require(collector[i]?.value)
            #expect(zip(single.turn.logits, batched.turn.logits).allSatisfy { abs($0 - $1) <= 1e-5 }, "turn \(i)")
        }
    }

    @Test func turnsAreClassifiedFromTheirStreamsAndDecodedOnline() async throws {
        let encoder = FakeEncoder()
        let engine = try engine(encoder)
        var history: [TurnEmbeddings] = []
        var reference = try OnlineDecoder(labelCount: 4, parameters: ded)
        for (i, turn) in script.enumerated() {
            let outcome = try await engine.submit(sessionId: "call-1", turn: turn)
            #expect(outcome.turn.index == i && outcome.turn.turnId == turn.turnId && !outcome.replayed)
            // Independent path: the same embeddings assembled and classified directly.
            history.append(TurnEmbeddings(speaker: turn.speaker,
                                          audio: try turn.audio.map { try encoder.embed(audio: $0) },
                                          text: turn.transcript.isEmpty ? nil : try encoder.embed(text: turn.transcript)))
            let direct = try classifier.classify([StreamAssembler.streams(for: i, in: history, dimension: 64)])[0]
            #expect(outcome.turn.logits == direct.logits)
            #expect(outcome.turn.gates == direct.gates)
            let previous = reference.bestPath
            let path = try reference.append(DialogueTurn(speaker: turn.speaker, logits: direct.logits.map(Double.init)))
            #expect(outcome.decoded == path)
            #expect(outcome.revised == zip(previous, path).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset))
        }
        let state = try #require(engine.session("call-1"))
        #expect(state.turns.map(\.turnId) == script.map(\.turnId))
        #expect(state.turns[3].audioEmbedding == nil && state.turns[2].textEmbedding == nil)
    }

    /// Each turn's logits reach DED times the emission scale of its modality mix (script: both,
    /// both, audio only, text only, both), in sessions, offline analysis and online replay alike.
    @Test func emissionScaleFollowsEachTurnsModalities() async throws {
        let scale = DEDParameters.EmissionScale(text: 0.5, audio: 7, both: 2)
        let scaled = try DEDParameters(p0: 0.2, alpha: 1, beamWidth: 5, emissionScale: scale)
        let encoder = FakeEncoder()
        let engine = try ConversationEngine(classifier: classifier, encoder: encoder, ded: scaled,
                                            configuration: ConversationConfiguration())
        var reference = try OnlineDecoder(labelCount: 4, parameters: scaled)
        let factors = [2.0, 2, 7, 0.5, 2]
        for (i, turn) in script.enumerated() {
            let outcome = try await engine.submit(sessionId: "scaled", turn: turn)
            let path = try reference.append(DialogueTurn(speaker: turn.speaker,
                                                         logits: outcome.turn.logits.map { Double($0) * factors[i] }))
            #expect(outcome.decoded == path, "turn \(i)")
        }
        let history = try script.map { try engine.pipeline.embeddings(of: $0) }
        let classifications = try engine.pipeline.classify(dialogue: history)
        #expect(try engine.pipeline.decodeOnline(history, classifications: classifications) == reference.bestPath)
        let turns = script.indices.map { i in
            DialogueTurn(speaker: script[i].speaker, logits: classifications[i].logits.map { Double($0) * factors[i] })
        }
        let offline = try OfflineDecoder.decode(turns, parameters: scaled, labelCount: 4, repeatTwice: true)
        #expect(try engine.pipeline.decodeOffline(history, classifications: classifications, repeatTwice: true) == offline)
        let analysis = try await engine.analyze(script, repeatTwice: true)
        #expect(analysis.decoded == offline)
    }

    @Test func retriedTurnIdReturnsTheStoredAnswer() async throws {
        let engine = try engine()
        let first = try await engine.submit(sessionId: "s", turn: script[0])
        _ = try await engine.submit(sessionId: "s", turn: script[1])
        let again = try await engine.submit(sessionId: "s", turn: script[0])
        #expect(again.replayed && again.turn == first.turn)
        #expect(engine.session("s")?.turns.count == 2)
        var changed = script[0]
        changed.transcript = "something else"
        await #expect(throws: ConversationError.self) { _ = try await engine.submit(sessionId: "s", turn: changed) }
        do {
            _ = try await engine.submit(sessionId: "s", turn: changed)
        } catch {
            #expect(error.code == "turn_id_conflict" && error.kind == .conflict)
        }
    }

    @Test func retryWhileTheFirstAttemptIsRunningGetsTheSameAnswer() throws {
        let gate = DispatchSemaphore(value: 0)
        let engine = try engine(FakeEncoder(gate: gate))
        let collector = Collector()
        engine.submit(sessionId: "s", turn: script[1], completion: collector.callback(0))
        engine.submit(sessionId: "s", turn: script[1], completion: collector.callback(1))
        for _ in 0..<2 { gate.signal() }  // audio and text of the one real attempt
        #expect(collector.wait())
        let a = try #require(collector[0]?.value), b = try #require(collector[1]?.value)
        #expect(a.turn == b.turn)
        #expect(engine.session("s")?.turns.count == 1)
    }

    @Test func turnsOfOneSessionRunInSubmissionOrder() throws {
        let engine = try engine { $0.queueCapacity = 500 }
        let collector = Collector()
        for i in 0..<40 {
            engine.submit(sessionId: "ordered", turn: TurnInput(speaker: i % 3 == 0 ? "A" : "B", transcript: "turn \(i)"),
                          completion: collector.callback(i))
        }
        #expect(collector.wait())
        for i in 0..<40 { #expect(collector[i]?.value?.turn.index == i) }
        #expect(engine.session("ordered")?.turns.map(\.transcript) == (0..<40).map { "turn \($0)" })
    }

    @Test func sessionsRunConcurrentlyAndStayApart() throws {
        let engine = try engine { $0.queueCapacity = 500 }
        let collector = Collector()
        DispatchQueue.concurrentPerform(iterations: 8) { s in
            for t in 0..<6 {
                engine.submit(sessionId: "session-\(s)", turn: TurnInput(speaker: t % 2 == 0 ? "A" : "B", transcript: "s\(s) t\(t)"),
                              completion: collector.callback(s * 100 + t))
            }
        }
        #expect(collector.wait())
        for s in 0..<8 {
            let state = try #require(engine.session("session-\(s)"))
            #expect(state.turns.map(\.transcript) == (0..<6).map { "s\(s) t\($0)" })
            #expect(state.decoded.count == 6)
        }
    }

    @Test func fullQueueIsRefusedNotGrown() throws {
        let gate = DispatchSemaphore(value: 0)
        let engine = try engine(FakeEncoder(gate: gate)) { $0.queueCapacity = 3 }
        let collector = Collector()
        for i in 0..<5 {
            engine.submit(sessionId: "s\(i)", turn: TurnInput(speaker: "A", transcript: "hello \(i)"),
                          completion: collector.callback(i))
        }
        // Turns 3 and 4 are refused at once while 0...2 wait.
        #expect(collector[3]?.error?.code == "queue_full")
        #expect(collector[4]?.error?.kind == .overloaded)
        #expect(engine.statistics.rejected == 2)
        for _ in 0..<3 { gate.signal() }
        #expect(collector.wait())
        for i in 0..<3 { #expect(collector[i]?.value != nil) }
    }

    @Test func invalidTurnsAreRefusedWithCodes() async throws {
        let engine = try engine()
        let cases: [(TurnInput, String)] = [
            (TurnInput(speaker: "A", transcript: "  "), "empty_turn"),
            (TurnInput(speaker: "", transcript: "hi"), "invalid_speaker"),
            (TurnInput(speaker: "A", transcript: String(repeating: "x", count: StorageLimits().transcriptBytes + 1)),
             "transcript_too_long"),
            (TurnInput(turnId: "", speaker: "A", transcript: "hi"), "invalid_turn_id"),
            (TurnInput(speaker: "A", transcript: "hi", audio: Data([0xFF, 0])), "unreadable_audio"),
        ]
        for (turn, code) in cases {
            do {
                _ = try await engine.submit(sessionId: "s", turn: turn)
                Issue.record("accepted a turn that should fail with \(code)")
            } catch {
                #expect(error.code == code && error.kind == .invalidInput)
            }
        }
        // A failed turn leaves no trace, and the session goes on.
        let ok = try await engine.submit(sessionId: "s", turn: script[0])
        #expect(ok.turn.index == 0)
    }

    /// One letter and 100,000 combining marks is one Character but 200,001 bytes.
    static let heavyLetter = "a" + String(repeating: "\u{0301}", count: 100_000)

    @Test func everyStoredStringHasAByteLimit() async throws {
        #expect(Self.heavyLetter.count == 1)
        let engine = try engine()
        let cases: [(TurnInput, String)] = [
            (TurnInput(speaker: Self.heavyLetter, transcript: "hi"), "speaker_too_long"),
            (TurnInput(speaker: "A", transcript: Self.heavyLetter), "transcript_too_long"),
            (TurnInput(speaker: "A", transcript: "hi", clientTimestamp: Self.heavyLetter), "timestamp_too_long"),
            (TurnInput(speaker: "A", transcript: "hi", clientTimestamp: String(repeating: "9", count: 5_000_000)),
             "timestamp_too_long"),
            (TurnInput(turnId: Self.heavyLetter, speaker: "A", transcript: "hi"), "turn_id_too_long"),
        ]
        for (turn, code) in cases {
            let submit = await #expect(throws: ConversationError.self) { _ = try await engine.submit(sessionId: "s", turn: turn) }
            #expect(submit?.code == code && submit?.kind == .invalidInput)
            let analyze = await #expect(throws: ConversationError.self) { _ = try await engine.analyze([turn]) }
            #expect(analyze?.code == code && analyze?.kind == .invalidInput)
        }
        let longId = await #expect(throws: ConversationError.self) {
            _ = try await engine.submit(sessionId: String(repeating: "é", count: 65), turn: self.script[0])
        }
        #expect(longId?.code == "invalid_session_id")
        #expect(engine.statistics.sessions == 0)
    }

    @Test func sessionsHaveAByteBudgetAndATurnCap() async throws {
        let engine = try engine { $0.limits.sessionBytes = 100; $0.maxTurnsPerSession = 3 }
        let words = TurnInput(speaker: "A", transcript: String(repeating: "w", count: 40))
        _ = try await engine.submit(sessionId: "s", turn: words)  // 1 + 36 (generated turn id) + 1 + 40 bytes
        let over = await #expect(throws: ConversationError.self) { _ = try await engine.submit(sessionId: "s", turn: words) }
        #expect(over?.code == "session_budget_exceeded" && over?.kind == .conflict)
        // A refused turn takes nothing from the budget: a small one still fits.
        let small = TurnInput(turnId: "t", speaker: "B", transcript: "ok")
        _ = try await engine.submit(sessionId: "s", turn: small)
        #expect(engine.session("s")?.turns.count == 2)
        // The cap counts turns.
        let capped = try self.engine { $0.maxTurnsPerSession = 2 }
        for i in 0..<2 { _ = try await capped.submit(sessionId: "c", turn: TurnInput(speaker: "A", transcript: "\(i)")) }
        let full = await #expect(throws: ConversationError.self) {
            _ = try await capped.submit(sessionId: "c", turn: TurnInput(speaker: "A", transcript: "2"))
        }
        #expect(full?.code == "session_full" && full?.kind == .conflict)
        // A turn refused at admission creates no session.
        let tiny = try self.engine { $0.limits.sessionBytes = 10 }
        let refused = await #expect(throws: ConversationError.self) { _ = try await tiny.submit(sessionId: "new", turn: words) }
        #expect(refused?.code == "session_budget_exceeded")
        #expect(tiny.session("new") == nil)
        // A whole dialogue has a byte budget and a turn cap of its own, as invalid input.
        let shortDialogues = try self.engine { $0.maxDialogueTurns = 2 }
        let long = await #expect(throws: ConversationError.self) { _ = try await shortDialogues.analyze([words, words, words]) }
        #expect(long?.code == "dialogue_too_long")
        let large = await #expect(throws: ConversationError.self) { _ = try await engine.analyze([words, words, words]) }
        #expect(large?.code == "dialogue_too_large" && large?.kind == .invalidInput)
    }

    @Test func namespacesKeepOneIdApartInMemoryAndOnDisk() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("namespaces-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try engine()
        _ = try await engine.submit(sessionId: "call-42", namespace: "acme", turn: script[0])
        _ = try await engine.submit(sessionId: "call-42", namespace: "globex", turn: script[1])
        _ = try await engine.submit(sessionId: "call-42", namespace: "globex", turn: script[3])
        #expect(engine.session("call-42") == nil)
        #expect(engine.session("call-42", namespace: "acme")?.turns.map(\.turnId) == ["a"])
        #expect(engine.session("call-42", namespace: "globex")?.turns.map(\.turnId) == ["b", "d"])
        #expect(!engine.deleteSession("call-42"))
        #expect(!engine.deleteSession("call-42", namespace: "initech"))
        try SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: engine)).write(engine)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(Set(names) == [SessionSnapshotStore.fileName(for: SessionKey(namespace: "acme", id: "call-42")),
                               SessionSnapshotStore.fileName(for: SessionKey(namespace: "globex", id: "call-42"))])
        let restarted = try self.engine()
        restarted.restore(SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: restarted)).read().sessions)
        #expect(restarted.session("call-42", namespace: "acme") == engine.session("call-42", namespace: "acme"))
        #expect(restarted.session("call-42", namespace: "globex") == engine.session("call-42", namespace: "globex"))
    }

    @Test func deleteDropsTheSessionAndItsWaitingTurns() throws {
        let gate = DispatchSemaphore(value: 0)
        let engine = try engine(FakeEncoder(gate: gate))
        let collector = Collector()
        engine.submit(sessionId: "gone", turn: TurnInput(speaker: "A", transcript: "one"), completion: collector.callback(0))
        engine.submit(sessionId: "gone", turn: TurnInput(speaker: "A", transcript: "two"), completion: collector.callback(1))
        #expect(engine.deleteSession("gone"))
        #expect(collector[1]?.error?.code == "session_deleted")
        gate.signal()
        #expect(collector.wait())
        #expect(engine.session("gone") == nil)
        #expect(!engine.deleteSession("gone"))
    }

    @Test func idleSessionsExpireAndCapacityIsBounded() async throws {
        let engine = try engine { $0.maxSessions = 2; $0.sessionTTL = 3600 }
        _ = try await engine.submit(sessionId: "one", turn: script[0])
        _ = try await engine.submit(sessionId: "two", turn: script[0])
        do {
            _ = try await engine.submit(sessionId: "three", turn: script[0])
            Issue.record("a third session was accepted")
        } catch {
            #expect(error.code == "too_many_sessions")
        }
        #expect(engine.expireIdleSessions(now: Date().addingTimeInterval(1800)) == 0)
        #expect(engine.expireIdleSessions(now: Date().addingTimeInterval(3601)) == 2)
        _ = try await engine.submit(sessionId: "three", turn: script[0])
        #expect(engine.statistics.sessions == 1)
    }

    @Test func drainFinishesAcceptedTurnsAndRefusesNewOnes() throws {
        let gate = DispatchSemaphore(value: 0)
        let engine = try engine(FakeEncoder(gate: gate))
        let collector = Collector()
        engine.submit(sessionId: "s", turn: TurnInput(speaker: "A", transcript: "in flight"), completion: collector.callback(0))
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { gate.signal() }
        #expect(engine.drain(deadline: Date().addingTimeInterval(10)))
        #expect(collector[0]?.value != nil)
        engine.submit(sessionId: "s", turn: TurnInput(speaker: "A", transcript: "late"), completion: collector.callback(1))
        #expect(collector[1]?.error?.code == "shutting_down")
        #expect(collector.wait())
    }

    @Test func snapshotsRestoreSessionsThatContinueIdentically() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("snapshots-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        // The engine takes any id within its byte limit (the API allows fewer characters).
        let wide: (inout ConversationConfiguration) -> Void = { $0.limits.sessionIdBytes = 1024 }
        let first = try engine(configure: wide), uninterrupted = try engine(configure: wide)
        let store = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: first))
        let longId = String(repeating: "call/ü/", count: 40)
        for id in ["call-1", longId] {
            for turn in script.prefix(3) {
                _ = try await first.submit(sessionId: id, turn: turn)
                _ = try await uninterrupted.submit(sessionId: id, turn: turn)
            }
        }
        #expect(try store.write(first) == 2)
        #expect(try store.write(first) == 0)  // nothing changed

        // A new process: read back, restore, continue.
        let restarted = try engine(configure: wide)
        let (sessions, problems) = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: restarted)).read()
        #expect(problems.isEmpty && sessions.count == 2)
        restarted.restore(sessions)
        #expect(restarted.session(longId) == first.session(longId))
        for turn in script.dropFirst(3) {
            let a = try await restarted.submit(sessionId: longId, turn: turn)
            let b = try await uninterrupted.submit(sessionId: longId, turn: turn)
            #expect(a.turn.logits == b.turn.logits && a.decoded == b.decoded)
        }
        // A retried id from before the restart is still recognised.
        #expect(try await restarted.submit(sessionId: "call-1", turn: script[1]).replayed)

        // Deleted sessions lose their file on the next write; corrupt files are reported, not fatal.
        #expect(first.deleteSession("call-1"))
        try store.write(first)
        try Data("{not json".utf8).write(to: directory.appendingPathComponent("00.session.json"))
        let after = SessionSnapshotStore(directory: directory, model: SnapshotModel(engine: first)).read()
        #expect(after.sessions.map(\.id) == [longId])
        #expect(after.problems.count == 1)
    }
}
