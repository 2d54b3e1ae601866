import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM
import ConversationTestSupport
import Testing
import TestSupport
@testable import Conversation

/// Issue #11: budgets of whole-dialogue analyses and of the session table.
@Suite(.serialized) struct ConversationBudgetTests {

    func dialogue(_ count: Int, audioBytes: Int = 0) -> [TurnInput] {
        (0..<count).map { i in
            TurnInput(speaker: i % 2 == 0 ? "agent" : "caller", transcript: "turn \(i)",
                      audio: audioBytes > 0 ? Data(repeating: UInt8(i % 200), count: audioBytes) : nil)
        }
    }

    /// A thread-safe log of which answers came first.
    final class Order: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func append(_ item: String) { lock.withLock { items.append(item) } }
        var all: [String] { lock.withLock { items } }
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set() { lock.withLock { value = true } }
        var isSet: Bool { lock.withLock { value } }
    }

    // MARK: - Analyses

    @Test func anAnalysisIsCappedInTurnsAndInAudioSeconds() async throws {
        // The fake clips last 1 ms per byte: 4 turns of 5 bytes are 20 ms.
        let engine = try makeEngine { $0.maxDialogueTurns = 4; $0.maxTurnsPerSession = 10_000; $0.maxDialogueAudioSeconds = 0.019 }
        let long = await #expect(throws: ConversationError.self) { _ = try await engine.analyze(dialogue(5)) }
        #expect(long?.code == "dialogue_too_long" && long?.kind == .invalidInput)
        let loud = await #expect(throws: ConversationError.self) { _ = try await engine.analyze(dialogue(4, audioBytes: 5)) }
        #expect(loud?.code == "dialogue_audio_too_long" && loud?.kind == .invalidInput)
        #expect(engine.statistics.waiting == 0 && engine.counters.analysisTurnsInFlight == 0)
        let fits = try await engine.analyze(dialogue(4, audioBytes: 4))
        #expect(fits.classifications.count == 4 && fits.decoded.count == 4)
        // The dialogue cap is its own: a session cap below it does not shorten dialogues.
        let sessions = try makeEngine { $0.maxTurnsPerSession = 2 }
        #expect(try await sessions.analyze(dialogue(5)).decoded.count == 5)
    }

    @Test func runningAnalysesAreBoundedByTheAnalysisCapacity() async throws {
        let gate = DispatchSemaphore(value: 0)
        let encoder = FakeEncoder(gate: gate)
        let engine = try makeEngine(encoder) { $0.analysisTurnCapacity = 5; $0.analysisAudioSecondsCapacity = 0.01 }
        let answers = Order()
        engine.analyze(dialogue(4)) { answers.append($0.value == nil ? "first failed" : "first") }
        #expect(try await eventually { encoder.callCount >= 1 })
        #expect(engine.counters.analysisTurnsInFlight == 4)
        // 4 + 2 turns pass the capacity of 5; 4 + 1 do not; audio seconds count the same way.
        let refused = await #expect(throws: ConversationError.self) { _ = try await engine.analyze(dialogue(2)) }
        #expect(refused?.code == "analysis_queue_full" && refused?.kind == .overloaded)
        let loud = await #expect(throws: ConversationError.self) { _ = try await engine.analyze(dialogue(1, audioBytes: 11)) }
        #expect(loud?.code == "analysis_queue_full")
        engine.analyze(dialogue(1)) { answers.append($0.value == nil ? "second failed" : "second") }
        #expect(engine.counters.rejectedAnalyses == 2)
        for _ in 0..<100 { gate.signal() }
        #expect(try await eventually { answers.all.count == 2 })
        #expect(Set(answers.all) == ["first", "second"])
        #expect(engine.counters.analysisTurnsInFlight == 0 && engine.counters.analysisAudioSecondsInFlight == 0)
        // Alone, an analysis bigger than the capacity (but within the per-request caps) runs.
        #expect(try await engine.analyze(dialogue(8)).decoded.count == 8)
        #expect(try await engine.analyze(dialogue(1, audioBytes: 50)).decoded.count == 1)
    }

    @Test func aSessionTurnPostedDuringALongAnalysisIsAnsweredBeforeItEnds() async throws {
        let gate = DispatchSemaphore(value: 0)
        let encoder = FakeEncoder(gate: gate)
        let engine = try makeEngine(encoder) { $0.maxBatch = 2; $0.workers = 1 }
        let order = Order()
        let done = DispatchGroup()
        done.enter()
        engine.analyze(dialogue(40)) { result in
            order.append(result.value == nil ? "analysis failed" : "analysis")
            done.leave()
        }
        // The only worker is inside the analysis's first step.
        #expect(try await eventually { encoder.callCount >= 1 })
        done.enter()
        engine.submit(sessionId: "live", turn: TurnInput(speaker: "A", transcript: "are you there?")) { result in
            order.append(result.value == nil ? "turn failed" : "turn")
            done.leave()
        }
        for _ in 0..<200 { gate.signal() }
        #expect(try await eventually { order.all.count == 2 })
        #expect(order.all == ["turn", "analysis"])
        // In steps, the analysis still gives what the pipeline stages give in one piece.
        let chunked = try await engine.analyze(dialogue(40))
        let history = try dialogue(40).map { try engine.pipeline.embeddings(of: $0) }
        let reference = try engine.pipeline.classify(dialogue: history)
        #expect(chunked.classifications.map(\.logits) == reference.map(\.logits))
        #expect(chunked.decoded == (try engine.pipeline.decodeOffline(history, classifications: reference, repeatTwice: true)))
    }

    @Test func anAnalysisStopsAtItsDeadline() async throws {
        let gate = DispatchSemaphore(value: 0)
        let encoder = FakeEncoder(gate: gate)
        let engine = try makeEngine(encoder) { $0.maxBatch = 2; $0.analyzeTimeout = 0.2 }
        let outcome = Order()
        engine.analyze(dialogue(20)) { outcome.append($0.error?.code ?? "answered") }
        #expect(try await eventually { encoder.callCount >= 1 })
        try await Task.sleep(nanoseconds: 300_000_000)  // past the deadline while the first step runs
        for _ in 0..<100 { gate.signal() }
        #expect(try await eventually { outcome.all.count == 1 })
        #expect(outcome.all == ["analysis_timeout"])
        #expect(encoder.callCount == 2, "only the first step's 2 turns were embedded")
        let counters = engine.counters
        #expect(counters.timedOutAnalyses == 1 && counters.skippedAnalysisTurns == 18 && counters.analysisTurnsInFlight == 0)
        #expect(engine.statistics.waiting == 0)
    }

    @Test func anAnalysisWhoseClientIsGoneStops() async throws {
        let gate = DispatchSemaphore(value: 0)
        let encoder = FakeEncoder(gate: gate)
        let engine = try makeEngine(encoder) { $0.maxBatch = 3 }
        let gone = Flag()
        let outcome = Order()
        engine.analyze(dialogue(30), isCancelled: { gone.isSet }) { outcome.append($0.error?.code ?? "answered") }
        #expect(try await eventually { encoder.callCount >= 1 })
        gone.set()
        for _ in 0..<100 { gate.signal() }
        #expect(try await eventually { outcome.all.count == 1 })
        #expect(outcome.all == ["client_gone"])
        #expect(encoder.callCount == 3)
        #expect(engine.counters.abandonedAnalyses == 1 && engine.counters.skippedAnalysisTurns == 27)
        #expect(engine.statistics.waiting == 0)
    }

    // MARK: - The session table

    func post(_ engine: ConversationEngine, _ id: String, _ namespace: String) async throws(ConversationError) {
        _ = try await engine.submit(sessionId: id, namespace: namespace, turn: TurnInput(speaker: "A", transcript: "hello \(id)"))
    }

    @Test func aFullTableEvictsTheLongestIdleSessionForAnotherTenant() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("evict-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = try makeEngine { $0.maxSessions = 3; $0.evictionMinimumIdle = 0 }
        let model = SnapshotModel(engine: engine)
        let journal = TurnJournal(directory: directory, model: model)
        engine.attach(journal: journal)
        for id in ["a1", "a2", "a3"] { try await post(engine, id, "acme") }
        try await post(engine, "b1", "globex")
        #expect(engine.session("a1", namespace: "acme") == nil, "the longest idle session was evicted")
        #expect(engine.session("a2", namespace: "acme") != nil && engine.session("b1", namespace: "globex") != nil)
        #expect(engine.counters.evictedSessions == 1 && engine.statistics.sessions == 3)
        // Ended as an expired session: journaled, so a replay does not bring it back.
        journal.sync()
        let (records, _) = TurnJournal.read(directory: directory, model: model)
        let replayed = try makeEngine { $0.maxSessions = 3 }
        _ = replayed.replay(records, model: model)
        #expect(replayed.session("a1", namespace: "acme") == nil && replayed.statistics.sessions == 3)
    }

    @Test func aSessionIdleForLessThanTheMinimumOrBusyIsNeverEvicted() async throws {
        let fresh = try makeEngine { $0.maxSessions = 2; $0.evictionMinimumIdle = 3600 }
        for id in ["a1", "a2"] { try await post(fresh, id, "acme") }
        let refused = await #expect(throws: ConversationError.self) { try await post(fresh, "b1", "globex") }
        #expect(refused?.code == "too_many_sessions" && refused?.kind == .overloaded)
        #expect((refused?.retryAfter ?? 0) > 3000, "retry when the first session may be evicted")
        #expect(fresh.counters.evictedSessions == 0 && fresh.session("a1", namespace: "acme") != nil)

        // Turns in flight or waiting keep a session however old its last activity.
        let gate = DispatchSemaphore(value: 0)
        let busy = try makeEngine(FakeEncoder(gate: gate)) { $0.maxSessions = 2; $0.evictionMinimumIdle = 0 }
        let collector = Collector()
        busy.submit(sessionId: "a1", namespace: "acme", turn: TurnInput(speaker: "A", transcript: "one"), completion: collector.callback(0))
        busy.submit(sessionId: "a2", namespace: "acme", turn: TurnInput(speaker: "A", transcript: "two"), completion: collector.callback(1))
        busy.submit(sessionId: "b1", namespace: "globex", turn: TurnInput(speaker: "A", transcript: "three"), completion: collector.callback(2))
        #expect(collector[2]?.error?.code == "too_many_sessions")
        for _ in 0..<10 { gate.signal() }
        #expect(try await eventually { collector[0] != nil && collector[1] != nil })
        #expect(collector[0]?.value != nil && collector[1]?.value != nil)
    }

    @Test func theMemoryOfAllSessionsIsBoundedAndIdleSessionsMakeRoom() async throws {
        // One text-only turn of `post`: its strings (a generated turn id, speaker, transcript),
        // the per-turn structure and one 64-d embedding; three fit, a fourth does not.
        let turn = StorageLimits.memory(strings: 36 + 1 + "hello a1".utf8.count, embeddingValues: 64)
        // Without work ahead, whose ready contexts are charged too (ConversationEngineTests).
        let fresh = try makeEngine { $0.maxStoredBytes = 3 * turn + 50; $0.evictionMinimumIdle = 3600; $0.prepareContext = false }
        for id in ["a1", "a2", "a3"] { try await post(fresh, id, "acme") }
        let refused = await #expect(throws: ConversationError.self) { try await post(fresh, "b1", "globex") }
        #expect(refused?.code == "store_full" && refused?.kind == .overloaded)
        #expect((refused?.retryAfter ?? 0) > 3000, "retry when the first session may be evicted")
        let own = await #expect(throws: ConversationError.self) { try await post(fresh, "a1", "acme") }
        #expect(own?.code == "store_full", "an existing session's turn is bounded too")
        #expect(fresh.admissionRefusal(session: SessionKey(namespace: "globex", id: "b1"))?.code == "store_full",
                "refused from the head as well")
        #expect(fresh.statistics.sessions == 3 && fresh.counters.evictedSessions == 0)

        // Idle long enough: the longest idle session makes room, never the one posted to; asking
        // at header time evicts nothing.
        let roomy = try makeEngine { $0.maxStoredBytes = 3 * turn + 50; $0.evictionMinimumIdle = 0; $0.prepareContext = false }
        for id in ["a1", "a2", "a3"] { try await post(roomy, id, "acme") }
        #expect(roomy.admissionRefusal(session: SessionKey(namespace: "acme", id: "a3")) == nil)
        #expect(roomy.session("a1", namespace: "acme") != nil && roomy.counters.evictedSessions == 0)
        try await post(roomy, "a3", "acme")
        #expect(roomy.session("a1", namespace: "acme") == nil, "the longest idle session was evicted")
        #expect(roomy.session("a2", namespace: "acme") != nil && roomy.session("a3", namespace: "acme")?.turns.count == 2)
        #expect(roomy.counters.evictedSessions == 1)
    }

    @Test func aTenantBeyondItsQuotaIsRefusedWhileOthersAreServed() async throws {
        let engine = try makeEngine { $0.maxSessions = 10; $0.maxSessionsPerTenant = 2; $0.sessionTTL = 600 }
        for id in ["a1", "a2"] { try await post(engine, id, "acme") }
        let refused = await #expect(throws: ConversationError.self) { try await post(engine, "a3", "acme") }
        #expect(refused?.code == "tenant_session_quota" && refused?.kind == .quotaExceeded)
        #expect((refused?.retryAfter ?? 0) > 500, "retry when the tenant's first session expires")
        #expect(engine.session("a3", namespace: "acme") == nil && engine.counters.quotaRefusals == 1)
        // Its existing sessions go on; other tenants are not affected.
        try await post(engine, "a1", "acme")
        for id in ["b1", "b2"] { try await post(engine, id, "globex") }
        // A session ended (deleted or expired) frees a place.
        #expect(engine.deleteSession("a1", namespace: "acme"))
        try await post(engine, "a3", "acme")
        #expect(engine.expireIdleSessions(now: Date().addingTimeInterval(601)) == 4)
        for id in ["a4", "a5"] { try await post(engine, id, "acme") }
        #expect(engine.statistics.sessions == 2)
    }

    // MARK: - Stream context

    /// A long session (several speakers, runs, missing modalities), restored from a snapshot half
    /// way, classifies every turn exactly as the streams of its whole history do.
    @Test func aLongSessionClassifiesEveryTurnFromItsWholeHistory() async throws {
        let encoder = FakeEncoder()
        var engine = try makeEngine(encoder)
        var history: [TurnEmbeddings] = []
        let speakers = ["agent", "caller", "caller", "supervisor", "agent", "caller", "agent"]
        for i in 0..<120 {
            if i == 60 {
                let restarted = try makeEngine(encoder)
                restarted.restore(engine.snapshot())
                engine = restarted
            }
            let turn = TurnInput(speaker: speakers[(i * 5 + i / 7) % speakers.count], transcript: i % 4 == 3 ? "" : "words \(i)",
                                 audio: i % 3 == 0 && i % 4 != 3 ? nil : Data([UInt8(i % 251), 1]))
            let outcome = try await engine.submit(sessionId: "long", turn: turn)
            history.append(TurnEmbeddings(speaker: turn.speaker, audio: try turn.audio.map { try encoder.embed(audio: $0) },
                                          text: turn.hasTranscript ? try encoder.embed(text: turn.transcript) : nil))
            let direct = try engine.classifier.classify([StreamAssembler.streams(for: i, in: history, dimension: 64)])[0]
            #expect(outcome.turn.index == i && outcome.turn.logits == direct.logits && outcome.turn.gates == direct.gates, "turn \(i)")
        }
    }
}
