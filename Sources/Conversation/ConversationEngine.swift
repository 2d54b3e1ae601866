import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM

/// Limits and sizes of the conversation layer.
public struct ConversationConfiguration: Sendable, Equatable {
    /// Sessions held at once; beyond it (after expiring idle ones) new sessions are refused.
    public var maxSessions = 10_000
    /// A session idle this long is dropped.
    public var sessionTTL: TimeInterval = 3600
    /// Turns one session (or one analysed dialogue) may hold.
    public var maxTurnsPerSession = 10_000
    /// Byte limits on stored strings and the byte budget per session.
    public var limits = StorageLimits()
    /// Turns waiting for inference across all sessions; beyond it new turns are refused (503).
    public var queueCapacity = 64
    /// Inference workers (each runs its products on all cores).
    public var workers = 1
    /// Turns of different sessions classified together in one batch.
    public var maxBatch = 8

    public init() {}
}

/// Time spent per stage of one turn, in milliseconds.
public struct TurnTimings: Sendable, Codable, Equatable {
    public var queue = 0.0
    public var audio = 0.0
    public var text = 0.0
    public var classify = 0.0
    public var ded = 0.0
    public var total = 0.0
}

/// The answer to a whole-dialogue analysis.
public struct DialogueAnalysis: Sendable {
    public let classifications: [Classification]
    /// DED's decoded labels, one per turn.
    public let decoded: [Int]
    public let milliseconds: Double
}

/// The answer to one posted turn.
public struct TurnOutcome: Sendable {
    public let sessionId: String
    public let turn: StoredTurn
    /// The session's decoded emotion sequence after this turn (label indices, every turn).
    public let decoded: [Int]
    /// Indices of earlier turns whose decoded label changed in this step.
    public let revised: [Int]
    public let timings: TurnTimings
    /// True when this is the stored answer to a retried turn id.
    public let replayed: Bool
}

/// Sessions and the turn pipeline: encoder -> stream assembly -> gated classifier -> online DED.
///
/// Turns of one session are processed strictly in arrival order (a session has at most one turn
/// in the work queue; the rest wait in the session's own FIFO); different sessions run
/// concurrently on a bounded work queue and are batched through the classifier. A client turn id
/// makes a retry idempotent, also while the first attempt is still being processed.
public final class ConversationEngine: @unchecked Sendable {
    public typealias Completion = @Sendable (Result<TurnOutcome, ConversationError>) -> Void

    public let classifier: GatedXLSTMClassifier
    public let encoder: TurnEncoder
    public let ded: DEDParameters
    public let configuration: ConversationConfiguration

    private final class Pending {
        let input: TurnInput
        let turnId: String
        let fingerprint: UInt64
        /// What this turn adds to its session's byte budget.
        let bytes: Int
        let enqueuedAt: DispatchTime
        var completions: [Completion]
        init(input: TurnInput, turnId: String, completion: @escaping Completion) {
            self.input = input
            self.turnId = turnId
            fingerprint = input.fingerprint
            bytes = input.storedBytes(turnId: turnId)
            enqueuedAt = .now()
            completions = [completion]
        }
    }

    private final class Slot {
        var state: SessionState
        var waiting: [Pending] = []
        var inFlight: Pending?
        var deleted = false
        /// Bumped on every change, so snapshots rewrite only what changed.
        var version = 0
        /// Bytes of the session's strings, stored and accepted (see `StorageLimits.sessionBytes`).
        var bytes: Int
        init(state: SessionState) {
            self.state = state
            bytes = state.storedBytes
        }
    }

    /// Its classes are touched only under `lock` (or by the one thread running the job).
    private struct Job: @unchecked Sendable {
        let key: SessionKey
        let slot: Slot
        let pending: Pending
    }

    /// A whole dialogue analysed offline (stateless).
    private struct DialogueJob {
        let turns: [TurnInput]
        let repeatTwice: Bool
        let enqueuedAt: DispatchTime
        let completion: @Sendable (Result<DialogueAnalysis, ConversationError>) -> Void
    }

    private enum Work {
        case turn(Job)
        case dialogue(DialogueJob)
    }

    private let lock = NSLock()
    private var sessions: [SessionKey: Slot] = [:]
    private var waitingCount = 0
    private var draining = false
    private var queue: WorkQueue<Work>!
    private var sweeper: DispatchSourceTimer?
    /// Where stored turns and session ends are journaled (nil: nowhere).
    private var journal: TurnJournal?
    /// Counters for metrics.
    public private(set) var rejectedTurns = 0
    public private(set) var expiredSessions = 0

    public init(classifier: GatedXLSTMClassifier, encoder: TurnEncoder, ded: DEDParameters,
                configuration: ConversationConfiguration = ConversationConfiguration()) throws {
        guard encoder.dimension == classifier.configuration.embeddingDim else {
            throw ConversationError(.internal, code: "model_mismatch",
                                    "encoder dimension \(encoder.dimension) != classifier embedding_dim \(classifier.configuration.embeddingDim)")
        }
        self.classifier = classifier
        self.encoder = encoder
        self.ded = ded
        self.configuration = configuration
        queue = WorkQueue(workers: configuration.workers, capacity: .max, maxBatch: configuration.maxBatch,
                          name: "inference") { [weak self] work in
            guard let self else { return }  // the engine is gone: nobody is waiting for answers
            var turns: [Job] = []
            for item in work {
                switch item {
                case .turn(let job): turns.append(job)
                case .dialogue(let job): self.analyze(job)
                }
            }
            if !turns.isEmpty { self.process(turns) }
        }
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        let period = max(1, min(configuration.sessionTTL / 4, 60))
        timer.schedule(deadline: .now() + period, repeating: period)
        timer.setEventHandler { [weak self] in _ = self?.expireIdleSessions() }
        timer.resume()
        sweeper = timer
    }

    deinit {
        sweeper?.cancel()
        queue.stop()
    }

    // MARK: - Turns

    /// Posts a turn to session `sessionId` of `namespace`; `completion` is called once, on an
    /// inference thread.
    public func submit(sessionId: String, namespace: String = SessionKey.defaultNamespace, turn input: TurnInput,
                       completion: @escaping Completion) {
        let key = SessionKey(namespace: namespace, id: sessionId)
        if let problem = validate(sessionId: sessionId, input) {
            completion(.failure(problem))
            return
        }
        let turnId = input.turnId ?? UUID().uuidString
        lock.lock()
        if draining {
            lock.unlock()
            completion(.failure(ConversationError(.unavailable, code: "shutting_down", "the server is shutting down")))
            return
        }
        // An id seen before: replay, join the running attempt, or refuse a different turn.
        if input.turnId != nil, let slot = sessions[key] {
            let fingerprint = input.fingerprint
            if let stored = slot.state.turn(withId: turnId) {
                let state = slot.state
                lock.unlock()
                guard stored.fingerprint == fingerprint else {
                    completion(.failure(Self.conflict(turnId)))
                    return
                }
                completion(.success(TurnOutcome(sessionId: sessionId, turn: stored, decoded: state.decoded,
                                                revised: [], timings: TurnTimings(), replayed: true)))
                return
            }
            if let running = ([slot.inFlight].compactMap { $0 } + slot.waiting).first(where: { $0.turnId == turnId }) {
                guard running.fingerprint == fingerprint else {
                    lock.unlock()
                    completion(.failure(Self.conflict(turnId)))
                    return
                }
                running.completions.append(completion)
                lock.unlock()
                return
            }
        }
        guard waitingCount < configuration.queueCapacity else {
            rejectedTurns += 1
            lock.unlock()
            completion(.failure(ConversationError(.overloaded, code: "queue_full",
                                                  "too many turns are waiting for inference; retry later")))
            return
        }
        if let refusal = budgetRefusal(sessions[key], sessionId: sessionId, input, turnId: turnId) {
            lock.unlock()
            completion(.failure(refusal))
            return
        }
        let slot: Slot
        if let existing = sessions[key] {
            slot = existing
        } else {
            if sessions.count >= configuration.maxSessions { expireIdleLocked(now: Date()) }
            guard sessions.count < configuration.maxSessions else {
                rejectedTurns += 1
                lock.unlock()
                completion(.failure(ConversationError(.overloaded, code: "too_many_sessions",
                                                      "the server holds its maximum number of sessions; retry later")))
                return
            }
            let now = Date()
            // Parameters were validated at start, so this cannot fail.
            guard let decoder = try? OnlineDecoder(labelCount: classifier.labels.count, parameters: ded) else {
                lock.unlock()
                completion(.failure(ConversationError(.internal, code: "decoder_unavailable", "cannot create the decoder")))
                return
            }
            slot = Slot(state: SessionState(id: sessionId, namespace: namespace, createdAt: now, lastActivity: now,
                                            turns: [], decoder: decoder, decoded: []))
            sessions[key] = slot
        }
        let pending = Pending(input: input, turnId: turnId, completion: completion)
        slot.bytes += pending.bytes
        waitingCount += 1
        slot.state.lastActivity = Date()
        if slot.inFlight == nil {
            slot.inFlight = pending
            _ = queue.enqueue(.turn(Job(key: key, slot: slot, pending: pending)), force: true)
        } else {
            slot.waiting.append(pending)
        }
        lock.unlock()
    }

    /// Async form of `submit`.
    public func submit(sessionId: String, namespace: String = SessionKey.defaultNamespace,
                       turn: TurnInput) async throws(ConversationError) -> TurnOutcome {
        let result: Result<TurnOutcome, ConversationError> = await withCheckedContinuation { continuation in
            submit(sessionId: sessionId, namespace: namespace, turn: turn) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Why a session (nil: not created yet) cannot take this turn: its turn cap or byte budget
    /// (409 conflicts with the session's state). Called under the lock.
    private func budgetRefusal(_ slot: Slot?, sessionId: String, _ input: TurnInput, turnId: String) -> ConversationError? {
        let turns = slot.map { $0.state.turns.count + $0.waiting.count + ($0.inFlight == nil ? 0 : 1) } ?? 0
        if turns >= configuration.maxTurnsPerSession {
            return ConversationError(.conflict, code: "session_full",
                                     "the session holds its maximum of \(configuration.maxTurnsPerSession) turns")
        }
        let bytes = (slot?.bytes ?? StorageLimits.bytes(sessionId)) + input.storedBytes(turnId: turnId)
        if bytes > configuration.limits.sessionBytes {
            return ConversationError(.conflict, code: "session_budget_exceeded",
                                     "this turn would take the session's strings to \(bytes) UTF-8 bytes; the budget is \(configuration.limits.sessionBytes)")
        }
        return nil
    }

    private static func conflict(_ turnId: String) -> ConversationError {
        ConversationError(.conflict, code: "turn_id_conflict",
                          "turn_id '\(turnId)' was already used for a different turn in this session")
    }

    private func validate(sessionId: String, _ input: TurnInput) -> ConversationError? {
        func invalid(_ code: String, _ message: String) -> ConversationError {
            ConversationError(.invalidInput, code: code, message)
        }
        let limits = configuration.limits
        if sessionId.isEmpty || sessionId.utf8.count > limits.sessionIdBytes {
            return invalid("invalid_session_id", "the session id must be 1 to \(limits.sessionIdBytes) UTF-8 bytes")
        }
        if input.speaker.isEmpty { return invalid("invalid_speaker", "speaker must be a non-empty string") }
        if input.audio == nil && !input.hasTranscript {
            return invalid("empty_turn", "a turn needs audio, a transcript, or both")
        }
        if let id = input.turnId, id.isEmpty {
            return invalid("invalid_turn_id", "turn_id must not be empty")
        }
        return limits.problem(with: input)
    }

    // MARK: - Processing

    private func process(_ jobs: [Job]) {
        var encoded: [(job: Job, streams: [[Float]], audio: [Float]?, text: [Float]?, timings: TurnTimings)] = []
        for job in jobs {
            var timings = TurnTimings()
            timings.queue = Self.milliseconds(since: job.pending.enqueuedAt)
            do {
                let input = job.pending.input
                var audio: [Float]?, text: [Float]?
                if let bytes = input.audio {
                    let t0 = DispatchTime.now()
                    audio = try encoder.embed(audio: bytes)
                    timings.audio = Self.milliseconds(since: t0)
                }
                if input.hasTranscript {
                    let t0 = DispatchTime.now()
                    text = try encoder.embed(text: input.transcript)
                    timings.text = Self.milliseconds(since: t0)
                }
                lock.lock()
                var history = job.slot.state.turns.map {
                    TurnEmbeddings(speaker: $0.speaker, audio: $0.audioEmbedding?.values, text: $0.textEmbedding?.values)
                }
                lock.unlock()
                history.append(TurnEmbeddings(speaker: input.speaker, audio: audio, text: text))
                let streams = StreamAssembler.streams(for: history.count - 1, in: history, dimension: encoder.dimension)
                encoded.append((job, streams, audio, text, timings))
            } catch let error as ConversationError {
                finish(job, .failure(error))
            } catch {
                finish(job, .failure(ConversationError(.internal, code: "encoder_failed", "\(error)")))
            }
        }
        guard !encoded.isEmpty else { return }
        let t0 = DispatchTime.now()
        let results: [Classification]
        do {
            results = try classifier.classify(encoded.map(\.streams))
        } catch {
            let failure = ConversationError(.internal, code: "classifier_failed", "\(error)")
            for item in encoded { finish(item.job, .failure(failure)) }
            return
        }
        let classifyMs = Self.milliseconds(since: t0)
        for (item, classification) in zip(encoded, results) {
            var timings = item.timings
            timings.classify = classifyMs
            let job = item.job, input = job.pending.input
            // The turn's index and its session's creation time cannot change while it is in flight.
            lock.lock()
            let index = job.slot.state.turns.count, createdAt = job.slot.state.createdAt
            let journal = self.journal
            lock.unlock()
            let turn = StoredTurn(index: index, turnId: job.pending.turnId, speaker: input.speaker,
                                  transcript: input.transcript, clientTimestamp: input.clientTimestamp,
                                  receivedAt: Date(), audioEmbedding: item.audio.map(FloatVector.init),
                                  textEmbedding: item.text.map(FloatVector.init), logits: classification.logits,
                                  probabilities: classification.probabilities, gates: classification.gates,
                                  label: classification.label, fingerprint: job.pending.fingerprint)
            let payload = journal.flatMap { _ in
                TurnJournal.payload(.turn(namespace: job.key.namespace, id: job.key.id, createdAt: createdAt, turn: turn))
            }
            if journal != nil && payload == nil {
                finish(job, .failure(ConversationError(.internal, code: "journal_encode_failed",
                                                       "the turn holds a number JSON cannot carry")))
                continue
            }
            lock.lock()
            // Deleted while it was being processed: the turn belongs to no session.
            if job.slot.deleted {
                lock.unlock()
                finish(job, .failure(.sessionDeleted(job.key.id)))
                continue
            }
            var state = job.slot.state
            let t1 = DispatchTime.now()
            let previous = state.decoded
            do {
                state.decoded = try state.decoder.append(decoderTurn(speaker: input.speaker, hasAudio: item.audio != nil,
                                                                     hasText: item.text != nil, classification: classification))
            } catch {
                lock.unlock()
                finish(job, .failure(ConversationError(.internal, code: "decoder_failed", "\(error)")))
                continue
            }
            timings.ded = Self.milliseconds(since: t1)
            state.turns.append(turn)
            state.lastActivity = Date()
            let revised = zip(previous, state.decoded).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
            // Stores the turn in its session and answers it; entered with the lock held, releases it.
            let store: @Sendable (SessionState, TurnTimings) -> Void = { [self] computed, stage in
                if job.slot.deleted {
                    lock.unlock()
                    finish(job, .failure(.sessionDeleted(job.key.id)))
                    return
                }
                job.slot.state.turns.append(turn)
                job.slot.state.decoder = computed.decoder
                job.slot.state.decoded = computed.decoded
                job.slot.state.lastActivity = Date()
                job.slot.version += 1
                lock.unlock()
                var timings = stage
                timings.total = Self.milliseconds(since: job.pending.enqueuedAt)
                finish(job, .success(TurnOutcome(sessionId: job.key.id, turn: turn, decoded: computed.decoded,
                                                 revised: revised, timings: timings, replayed: false)))
            }
            guard let journal, let payload else {
                store(state, timings)
                continue
            }
            // Stored (and answered) once its record is durable; appended under the lock, so the
            // journal's order is the order of changes (a delete after it is journaled after it).
            let computed = state, stage = timings
            journal.append(payload) { [self] failure in
                if let failure {
                    finish(job, .failure(.storageUnavailable(failure)))
                    return
                }
                lock.lock()
                store(computed, stage)
            }
            lock.unlock()
        }
    }

    /// Completes a job's waiters and hands the session's next turn to the queue.
    private func finish(_ job: Job, _ result: Result<TurnOutcome, ConversationError>) {
        lock.lock()
        waitingCount -= 1
        if case .failure = result { job.slot.bytes -= job.pending.bytes }
        let completions = job.pending.completions
        job.slot.inFlight = nil
        if !job.slot.waiting.isEmpty {
            let next = job.slot.waiting.removeFirst()
            job.slot.inFlight = next
            _ = queue.enqueue(.turn(Job(key: job.key, slot: job.slot, pending: next)), force: true)
        }
        lock.unlock()
        for c in completions { c(result) }
    }

    static func milliseconds(since t: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e6
    }

    // MARK: - Whole dialogues

    /// Analyses a whole dialogue offline: every turn classified with its context, then DED over
    /// the dialogue (repeated twice, keeping the last copy, when `repeatTwice`). Stateless; runs
    /// on the same bounded work queue as session turns.
    public func analyze(_ turns: [TurnInput], repeatTwice: Bool = true,
                        completion: @escaping @Sendable (Result<DialogueAnalysis, ConversationError>) -> Void) {
        if turns.isEmpty {
            completion(.failure(ConversationError(.invalidInput, code: "empty_dialogue", "a dialogue needs at least one turn")))
            return
        }
        if turns.count > configuration.maxTurnsPerSession {
            completion(.failure(ConversationError(.invalidInput, code: "dialogue_too_long",
                                                  "a dialogue may have at most \(configuration.maxTurnsPerSession) turns")))
            return
        }
        for (i, turn) in turns.enumerated() {
            if let problem = validate(sessionId: "dialogue", turn) {
                completion(.failure(ConversationError(problem.category, code: problem.code, "turn \(i): \(problem.message)")))
                return
            }
        }
        let bytes = turns.reduce(0) { $0 + $1.storedBytes(turnId: nil) }
        if bytes > configuration.limits.sessionBytes {
            completion(.failure(ConversationError(.invalidInput, code: "dialogue_too_large",
                                                  "the dialogue's strings are \(bytes) UTF-8 bytes; the limit is \(configuration.limits.sessionBytes)")))
            return
        }
        lock.lock()
        if draining {
            lock.unlock()
            completion(.failure(ConversationError(.unavailable, code: "shutting_down", "the server is shutting down")))
            return
        }
        guard waitingCount < configuration.queueCapacity else {
            rejectedTurns += 1
            lock.unlock()
            completion(.failure(ConversationError(.overloaded, code: "queue_full",
                                                  "too many turns are waiting for inference; retry later")))
            return
        }
        waitingCount += 1
        _ = queue.enqueue(.dialogue(DialogueJob(turns: turns, repeatTwice: repeatTwice, enqueuedAt: .now(),
                                                completion: completion)), force: true)
        lock.unlock()
    }

    public func analyze(_ turns: [TurnInput], repeatTwice: Bool = true) async throws(ConversationError) -> DialogueAnalysis {
        let result: Result<DialogueAnalysis, ConversationError> = await withCheckedContinuation { continuation in
            analyze(turns, repeatTwice: repeatTwice) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    private func analyze(_ job: DialogueJob) {
        defer {
            lock.lock()
            waitingCount -= 1
            lock.unlock()
        }
        do {
            var history: [TurnEmbeddings] = []
            for (i, turn) in job.turns.enumerated() {
                do {
                    history.append(try embeddings(of: turn))
                } catch let error as ConversationError {
                    throw ConversationError(error.category, code: error.code, "turn \(i): \(error.message)")
                }
            }
            let classifications = try classify(dialogue: history)
            let decoded = try decodeOffline(history, classifications: classifications, repeatTwice: job.repeatTwice)
            job.completion(.success(DialogueAnalysis(classifications: classifications, decoded: decoded,
                                                     milliseconds: Self.milliseconds(since: job.enqueuedAt))))
        } catch let error as ConversationError {
            job.completion(.failure(error))
        } catch {
            job.completion(.failure(ConversationError(.internal, code: "analysis_failed", "\(error)")))
        }
    }

    // MARK: - Pipeline stages

    // The stages of `analyze`, public so that offline evaluation (`emotion evaluate`) runs exactly
    // the serving code, on its own threads and without the work queue. All are thread-safe.

    /// Why `submit` or `analyze` would refuse this turn (empty turn, speaker or transcript too
    /// long, ...), or nil if it is acceptable.
    public func validationError(for turn: TurnInput) -> ConversationError? {
        validate(sessionId: "dialogue", turn)
    }

    /// A turn's embeddings as the service computes them: audio when the turn has audio, text when
    /// its transcript is not blank (a missing modality is nil and reads as zeros in the streams).
    public func embeddings(of turn: TurnInput) throws -> TurnEmbeddings {
        let audio = try turn.audio.map { try encoder.embed(audio: $0) }
        let text = turn.hasTranscript ? try encoder.embed(text: turn.transcript) : nil
        return TurnEmbeddings(speaker: turn.speaker, audio: audio, text: text)
    }

    /// Every turn of a dialogue classified with its context (the streams a session assembles for
    /// it), in batches of `configuration.maxBatch` turns.
    public func classify(dialogue history: [TurnEmbeddings]) throws -> [Classification] {
        var classifications: [Classification] = []
        classifications.reserveCapacity(history.count)
        let batch = max(1, configuration.maxBatch)
        var start = 0
        while start < history.count {
            let end = min(history.count, start + batch)
            let streams = (start..<end).map { StreamAssembler.streams(for: $0, in: history, dimension: encoder.dimension) }
            classifications += try classifier.classify(streams)
            start = end
        }
        return classifications
    }

    /// A classified turn as DED sees it: its logits times the emission scale of its modality mix.
    func decoderTurn(speaker: String, hasAudio: Bool, hasText: Bool, classification: Classification) -> DialogueTurn {
        DialogueTurn(speaker: speaker, logits: classification.logits.map(Double.init),
                     scale: ded.emissionScale.factor(hasAudio: hasAudio, hasText: hasText))
    }

    private func decoderTurns(_ turns: [TurnEmbeddings], _ classifications: [Classification]) -> [DialogueTurn] {
        zip(turns, classifications).map {
            decoderTurn(speaker: $0.0.speaker, hasAudio: $0.0.audio != nil, hasText: $0.0.text != nil, classification: $0.1)
        }
    }

    /// Offline DED over a classified dialogue (repeated twice, keeping the last copy, when
    /// `repeatTwice`): what `analyze` answers.
    public func decodeOffline(_ turns: [TurnEmbeddings], classifications: [Classification], repeatTwice: Bool) throws -> [Int] {
        try OfflineDecoder.decode(decoderTurns(turns, classifications), parameters: ded,
                                  labelCount: classifier.labels.count, repeatTwice: repeatTwice)
    }

    /// Online DED over a classified dialogue, one turn at a time as a session receives them: the
    /// session's decoded sequence after its last turn.
    public func decodeOnline(_ turns: [TurnEmbeddings], classifications: [Classification]) throws -> [Int] {
        var decoder = try OnlineDecoder(labelCount: classifier.labels.count, parameters: ded)
        for turn in decoderTurns(turns, classifications) { try decoder.append(turn) }
        return decoder.bestPath
    }

    // MARK: - Sessions

    /// A copy of a session's state (nil if unknown in that namespace).
    public func session(_ id: String, namespace: String = SessionKey.defaultNamespace) -> SessionState? {
        lock.lock(); defer { lock.unlock() }
        return sessions[SessionKey(namespace: namespace, id: id)]?.state
    }

    /// Removes a session; turns still waiting, and the one being processed, fail with
    /// `session_deleted` (404). False if unknown in that namespace. `whenDurable` (only if the
    /// session was there) runs once the journal holds the deletion (at once without a journal;
    /// with the error if the journal could not write it).
    public func deleteSession(_ id: String, namespace: String = SessionKey.defaultNamespace,
                              whenDurable: (@Sendable (StorageError?) -> Void)? = nil) -> Bool {
        lock.lock()
        guard let slot = sessions.removeValue(forKey: SessionKey(namespace: namespace, id: id)) else {
            lock.unlock()
            return false
        }
        slot.deleted = true
        let journaled = journalEnd(SessionKey(namespace: namespace, id: id), whenDurable: whenDurable)
        let dropped = slot.waiting
        slot.waiting.removeAll()
        waitingCount -= dropped.count
        lock.unlock()
        let error = ConversationError.sessionDeleted(id)
        for p in dropped { for c in p.completions { c(.failure(error)) } }
        if !journaled { whenDurable?(nil) }
        return true
    }

    /// Drops sessions idle for longer than the TTL (never one with turns in progress).
    @discardableResult
    public func expireIdleSessions(now: Date = Date()) -> Int {
        lock.lock(); defer { lock.unlock() }
        return expireIdleLocked(now: now)
    }

    @discardableResult
    private func expireIdleLocked(now: Date) -> Int {
        let cutoff = now.addingTimeInterval(-configuration.sessionTTL)
        let expired = sessions.filter { $0.value.inFlight == nil && $0.value.waiting.isEmpty && $0.value.state.lastActivity < cutoff }
        for key in expired.keys {
            sessions[key] = nil
            journalEnd(key)
        }
        expiredSessions += expired.count
        return expired.count
    }

    /// Why new work (a turn or a dialogue) would be refused right now whatever it holds: the
    /// server is draining or the inference queue is full. Lets the API refuse a request at
    /// header time, before its body is read; `submit` and `analyze` check again.
    public func admissionRefusal() -> ConversationError? {
        lock.lock(); defer { lock.unlock() }
        if draining { return ConversationError(.unavailable, code: "shutting_down", "the server is shutting down") }
        guard waitingCount < configuration.queueCapacity else {
            rejectedTurns += 1
            return ConversationError(.overloaded, code: "queue_full", "too many turns are waiting for inference; retry later")
        }
        return nil
    }

    /// Number of sessions, turns waiting or running, for health and metrics.
    public var statistics: (sessions: Int, waiting: Int, running: Int, rejected: Int, expired: Int) {
        lock.lock(); defer { lock.unlock() }
        return (sessions.count, waitingCount, queue.inFlight, rejectedTurns, expiredSessions)
    }

    // MARK: - Snapshots and shutdown

    /// Copies of every session's state (for writing to disk).
    public func snapshot() -> [SessionState] {
        lock.lock(); defer { lock.unlock() }
        return sessions.values.map(\.state)
    }

    /// Sessions whose version differs from `known` (key -> version last written), with their
    /// versions, and the keys of all current sessions (so a writer can remove files of the rest).
    public func changes(since known: [SessionKey: Int])
        -> (changed: [(state: SessionState, version: Int)], current: Set<SessionKey>) {
        lock.lock(); defer { lock.unlock() }
        let changed = sessions.values.filter { known[$0.state.key] != $0.version }.map { ($0.state, $0.version) }
        return (changed, Set(sessions.keys))
    }

    /// Adds sessions read back from disk, each into its namespace (existing ones are kept as they are).
    public func restore(_ states: [SessionState]) {
        lock.lock(); defer { lock.unlock() }
        for state in states where sessions[state.key] == nil {
            let slot = Slot(state: state)
            slot.version = 1
            sessions[state.key] = slot
        }
    }

    // MARK: - Journal

    /// From now on every stored turn is answered only once `journal` holds it durably, and
    /// deleted or expired sessions are journaled as ended. Call after `restore` and `replay`.
    public func attach(journal: TurnJournal) {
        lock.lock(); defer { lock.unlock() }
        self.journal = journal
    }

    /// Journals the end of a session (under the lock). A failure shows in the journal's
    /// `problem`; the session is gone from memory either way.
    /// False when there is no journal (`whenDurable` is then not called).
    @discardableResult
    private func journalEnd(_ key: SessionKey, whenDurable: (@Sendable (StorageError?) -> Void)? = nil) -> Bool {
        guard let journal, let payload = TurnJournal.payload(.end(namespace: key.namespace, id: key.id)) else { return false }
        journal.append(payload) { whenDurable?($0) }
        return true
    }

    /// Applies journal records (oldest first) on top of restored sessions: a turn whose index
    /// is the session's next one is stored (and decoded, exactly as when it was answered), one
    /// already held is skipped, one after a gap or failing `model`'s checks is reported; an end
    /// removes the session. Returns the turns stored and what was skipped.
    public func replay(_ records: [JournalRecord], model: SnapshotModel) -> (stored: Int, problems: [String]) {
        lock.lock(); defer { lock.unlock() }
        var stored = 0
        var problems: [String] = []
        for record in records {
            switch record {
            case .header:
                continue
            case .end(let namespace, let id):
                sessions[SessionKey(namespace: namespace, id: id)] = nil
            case .turn(let namespace, let id, let createdAt, let turn):
                let key = SessionKey(namespace: namespace, id: id)
                let slot: Slot
                if let existing = sessions[key] {
                    slot = existing
                } else {
                    guard turn.index == 0,
                          let decoder = try? OnlineDecoder(labelCount: classifier.labels.count, parameters: ded) else {
                        problems.append("turn \(turn.index) of a session not held: skipped")
                        continue
                    }
                    slot = Slot(state: SessionState(id: id, namespace: namespace, createdAt: createdAt,
                                                    lastActivity: turn.receivedAt, turns: [], decoder: decoder, decoded: []))
                }
                let count = slot.state.turns.count
                if turn.index < count { continue }  // in the snapshot already
                guard turn.index == count else {
                    problems.append("turn \(turn.index) after \(count) turns: a gap, skipped")
                    continue
                }
                if let problem = model.problem(with: turn, at: count) {
                    problems.append("turn \(turn.index): \(problem); skipped")
                    continue
                }
                var state = slot.state
                let step = DialogueTurn(speaker: turn.speaker, logits: turn.logits.map(Double.init),
                                        scale: ded.emissionScale.factor(hasAudio: turn.audioEmbedding != nil,
                                                                        hasText: turn.textEmbedding != nil))
                guard let decoded = try? state.decoder.append(step) else {
                    problems.append("turn \(turn.index): the decoder refused it; skipped")
                    continue
                }
                state.decoded = decoded
                state.turns.append(turn)
                state.lastActivity = max(state.lastActivity, turn.receivedAt)
                slot.state = state
                slot.bytes = state.storedBytes
                slot.version += 1
                sessions[key] = slot
                stored += 1
            }
        }
        return (stored, problems)
    }

    /// Stops accepting turns and waits until every accepted turn is answered (or the deadline).
    /// Returns true when nothing is left in progress.
    public func drain(deadline: Date) -> Bool {
        lock.lock()
        draining = true
        lock.unlock()
        while Date() < deadline {
            lock.lock()
            let left = waitingCount
            lock.unlock()
            if left == 0 { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        lock.lock(); defer { lock.unlock() }
        return waitingCount == 0
    }

    public var isDraining: Bool {
        lock.lock(); defer { lock.unlock() }
        return draining
    }
}


