import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM

/// Sessions and the turn pipeline: encoder -> stream assembly -> gated classifier -> online DED.
///
/// Turns of one session are processed strictly in arrival order (a session has at most one turn
/// in the work queue; the rest wait in the session's `TurnScheduler`, which holds each turn's
/// `TurnState`); different sessions run concurrently on a bounded work queue and are batched
/// through the classifier. A client turn id makes a retry idempotent, also while the first
/// attempt is still being processed.
///
/// This file holds the turn path (admission of a turn, processing through `pipeline`, storing
/// and answering); the per-session FIFO and turn states are in `TurnScheduler`, the session
/// table is in `ConversationEngine+Sessions`, whole-dialogue analyses in
/// `ConversationEngine+Analysis`, the next turn's context stacks run ahead between turns in
/// `ConversationEngine+Preparation`, the stages in `TurnPipeline`.
public final class ConversationEngine: @unchecked Sendable {
    public typealias Completion = @Sendable (Result<TurnOutcome, ConversationError>) -> Void

    public let classifier: GatedXLSTMClassifier
    public let encoder: TurnEncoder
    public let ded: DEDParameters
    public let configuration: ConversationConfiguration
    /// The stages every turn goes through, shared with offline evaluation.
    public let pipeline: TurnPipeline

    final class Slot: MemoryCharged {
        var state: SessionState
        /// Its accepted, unanswered turns and their states; closed when the session is deleted.
        var scheduler = TurnScheduler()
        /// Bumped on every change, so snapshots rewrite only what changed.
        var version = 0
        /// Bytes of the session's strings, stored and accepted (see `StorageLimits.sessionBytes`).
        var bytes: Int
        /// The memory its turns, stored and accepted, hold (see `maxStoredBytes`).
        var memory: Int
        /// What the next turn's streams need of the stored turns (nil: to be built from
        /// `state.turns`, after a restore or a replay), so that a turn never rebuilds the history.
        var context: StreamContext?
        /// The next turn's context stacks, run ahead (`ConversationEngine+Preparation`).
        var preparation = Preparation.none
        init(state: SessionState) {
            self.state = state
            bytes = state.storedBytes
            memory = state.memoryBytes
        }
    }

    /// Its classes are touched only under `lock` (or by the one thread running the job).
    struct Job: @unchecked Sendable {
        let key: SessionKey
        let slot: Slot
        let pending: Pending
    }

    /// A whole dialogue analysed offline (stateless), step by step: its progress is touched only
    /// by the one worker running its current step (it is in the queue at most once).
    final class DialogueJob: @unchecked Sendable {
        let turns: [TurnInput]
        let repeatTwice: Bool
        /// What it counts against `analysisAudioSecondsCapacity`.
        let audioSeconds: Double
        let enqueuedAt: DispatchTime
        let deadline: DispatchTime
        let isCancelled: @Sendable () -> Bool
        let completion: @Sendable (Result<DialogueAnalysis, ConversationError>) -> Void
        var history: [TurnEmbeddings] = []
        var classifications: [Classification] = []

        init(turns: [TurnInput], repeatTwice: Bool, audioSeconds: Double, timeout: TimeInterval,
             isCancelled: @escaping @Sendable () -> Bool,
             completion: @escaping @Sendable (Result<DialogueAnalysis, ConversationError>) -> Void) {
            self.turns = turns
            self.repeatTwice = repeatTwice
            self.audioSeconds = audioSeconds
            enqueuedAt = .now()
            deadline = enqueuedAt + (timeout >= 0 ? min(timeout, 1e9) : 0)  // 1e9 s: no deadline
            self.isCancelled = isCancelled
            self.completion = completion
            history.reserveCapacity(turns.count)
            classifications.reserveCapacity(turns.count)
        }
    }

    enum Work {
        case turn(Job)
        case dialogue(DialogueJob)
        case prepare(PreparationJob)
    }

    let lock = NSLock()
    var sessions = SessionTable<Slot>()
    var waitingCount = 0
    /// Turns and audio seconds of the analyses accepted and not yet answered.
    var analysisTurns = 0
    var analysisAudioSeconds = 0.0
    var draining = false
    var queue: WorkQueue<Work>!
    var sweeper: DispatchSourceTimer?
    /// Where stored turns and session ends are journaled (nil: nowhere).
    var journal: TurnJournal?
    /// Counters for metrics.
    public internal(set) var rejectedTurns = 0
    public internal(set) var expiredSessions = 0
    var evictedSessions = 0
    var quotaRefusals = 0
    var rejectedAnalyses = 0
    var abandonedAnalyses = 0
    var timedOutAnalyses = 0
    var skippedAnalysisTurns = 0
    var preparedContexts = 0
    var preparedContextsUsed = 0

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
        pipeline = TurnPipeline(classifier: classifier, encoder: encoder, ded: ded, maxBatch: configuration.maxBatch)
        queue = WorkQueue(workers: configuration.workers, capacity: .max, maxBatch: configuration.maxBatch,
                          name: "inference") { [weak self] work in
            guard let self else { return }  // the engine is gone: nobody is waiting for answers
            var turns: [Job] = []
            var dialogues: [DialogueJob] = []
            var preparations: [PreparationJob] = []
            for item in work {
                switch item {
                case .turn(let job): turns.append(job)
                case .dialogue(let job): dialogues.append(job)
                case .prepare(let job): preparations.append(job)
                }
            }
            // Live turns first: an analysis step taken in the same batch waits for them, and so
            // does work ahead of a turn (a turn of the same session in the batch cancels it).
            if !turns.isEmpty { self.process(turns) }
            for job in preparations { self.prepare(job) }
            for job in dialogues { self.step(job) }
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
            if let running = slot.scheduler.turn(withId: turnId) {
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
        if let refusal = newWorkRefusal() {
            lock.unlock()
            completion(.failure(refusal))
            return
        }
        let pending = Pending(input: input, turnId: turnId, dimension: encoder.dimension, completion: completion)
        if let refusal = budgetRefusal(sessions[key], sessionId: sessionId, adding: pending.bytes) {
            lock.unlock()
            completion(.failure(refusal))
            return
        }
        if let refusal = storeRefusal(adding: pending.memory, for: key, now: Date()) {
            lock.unlock()
            completion(.failure(refusal))
            return
        }
        let slot: Slot
        if let existing = sessions[key] {
            slot = existing
        } else {
            let now = Date()
            if let refusal = admissionRefusal(namespace: namespace, now: now) {
                lock.unlock()
                completion(.failure(refusal))
                return
            }
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
        slot.bytes += pending.bytes
        sessions.charge(slot, at: key, pending.memory)
        waitingCount += 1
        slot.state.lastActivity = Date()
        if slot.scheduler.admit(pending) {
            _ = queue.enqueue(.turn(Job(key: key, slot: slot, pending: pending)), force: true)
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

    /// Why no new work (a turn, a dialogue) is taken right now, whatever it holds: the server is
    /// draining (503 `shutting_down`) or the inference queue is full (503 `queue_full`, counted).
    /// Called under the lock.
    func newWorkRefusal() -> ConversationError? {
        if draining { return ConversationError(.unavailable, code: "shutting_down", "the server is shutting down") }
        guard waitingCount < configuration.queueCapacity else {
            rejectedTurns += 1
            return ConversationError(.overloaded, code: "queue_full", "too many turns are waiting for inference; retry later")
        }
        return nil
    }

    /// Why a session (nil: not created yet) cannot take this turn: its turn cap or byte budget
    /// (409 conflicts with the session's state). Called under the lock.
    func budgetRefusal(_ slot: Slot?, sessionId: String, adding turnBytes: Int) -> ConversationError? {
        let turns = slot.map { $0.state.turns.count + $0.scheduler.count } ?? 0
        if turns >= configuration.maxTurnsPerSession {
            return ConversationError(.conflict, code: "session_full",
                                     "the session holds its maximum of \(configuration.maxTurnsPerSession) turns")
        }
        let bytes = (slot?.bytes ?? StorageLimits.bytes(sessionId)) + turnBytes
        if bytes > configuration.limits.sessionBytes {
            return ConversationError(.conflict, code: "session_budget_exceeded",
                                     "this turn would take the session's strings to \(bytes) UTF-8 bytes; the budget is \(configuration.limits.sessionBytes)")
        }
        return nil
    }

    static func conflict(_ turnId: String) -> ConversationError {
        ConversationError(.conflict, code: "turn_id_conflict",
                          "turn_id '\(turnId)' was already used for a different turn in this session")
    }

    /// Why `submit` or `analyze` would refuse this turn (empty turn, speaker or transcript too
    /// long, ...), or nil if it is acceptable.
    public func validationError(for turn: TurnInput) -> ConversationError? {
        validate(sessionId: "dialogue", turn)
    }

    func validate(sessionId: String, _ input: TurnInput) -> ConversationError? {
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

    func process(_ jobs: [Job]) {
        var encoded: [(job: Job, streams: [[Float]], audio: [Float]?, text: [Float]?, timings: TurnTimings,
                       prepared: PreparedContext?)] = []
        // The batch's clips, then the transcripts of the turns whose audio was usable, each
        // through its tower in one call (the encoders batch across sessions, as the classifier).
        let queued = jobs.map { Self.milliseconds(since: $0.pending.enqueuedAt) }
        let withAudio = jobs.indices.filter { jobs[$0].pending.input.audio != nil }
        var audioResults = [Result<[Float], any Error>?](repeating: nil, count: jobs.count)
        let audioStart = DispatchTime.now()
        for (i, result) in zip(withAudio, encoder.embed(audios: withAudio.compactMap { jobs[$0].pending.input.audio })) {
            audioResults[i] = result
        }
        let audioMs = withAudio.isEmpty ? 0 : Self.milliseconds(since: audioStart)
        let withText = jobs.indices.filter { i in
            if case .failure? = audioResults[i] { return false }  // answered with its audio's error
            return jobs[i].pending.input.hasTranscript
        }
        var textResults = [Result<[Float], any Error>?](repeating: nil, count: jobs.count)
        let textStart = DispatchTime.now()
        for (i, result) in zip(withText, encoder.embed(texts: withText.map { jobs[$0].pending.input.transcript })) {
            textResults[i] = result
        }
        let textMs = withText.isEmpty ? 0 : Self.milliseconds(since: textStart)
        for (i, job) in jobs.enumerated() {
            var timings = TurnTimings()
            timings.queue = queued[i]
            do {
                let input = job.pending.input
                var audio: [Float]?, text: [Float]?
                if let result = audioResults[i] {
                    audio = try result.get()
                    timings.audio = audioMs
                }
                if let result = textResults[i] {
                    text = try result.get()
                    timings.text = textMs
                }
                lock.lock()
                let context = job.slot.context ?? StreamContext(turns: job.slot.state.turns.map {
                    TurnEmbeddings(speaker: $0.speaker, audio: $0.audioEmbedding?.values, text: $0.textEmbedding?.values)
                }, dimension: encoder.dimension)
                job.slot.context = context
                let prepared = takePreparation(job)
                lock.unlock()
                let streams = context.streams(next: TurnEmbeddings(speaker: input.speaker, audio: audio, text: text))
                encoded.append((job, streams, audio, text, timings, prepared))
            } catch {
                finish(job, .failure(ConversationError(error, otherwise: "encoder_failed")))
            }
        }
        guard !encoded.isEmpty else { return }
        let t0 = DispatchTime.now()
        let results: [Classification]
        do {
            results = try classifier.classify(encoded.map(\.streams), prepared: encoded.map(\.prepared))
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
            if job.slot.scheduler.isClosed {
                lock.unlock()
                finish(job, .failure(.sessionDeleted(job.key.id)))
                continue
            }
            // Only the decoder is copied (not the session's turns): it is stored with the turn.
            var decoder = job.slot.state.decoder
            let t1 = DispatchTime.now()
            let previous = job.slot.state.decoded
            let decoded: [Int]
            do {
                decoded = try decoder.append(pipeline.decoderTurn(speaker: input.speaker, hasAudio: item.audio != nil,
                                                                  hasText: item.text != nil, logits: classification.logits))
            } catch {
                lock.unlock()
                finish(job, .failure(ConversationError(.internal, code: "decoder_failed", "\(error)")))
                continue
            }
            timings.ded = Self.milliseconds(since: t1)
            let revised = zip(previous, decoded).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
            let computed = (decoder: decoder, decoded: decoded)
            // Stores the turn in its session and answers it; entered with the lock held, releases it.
            let store: @Sendable (TurnTimings) -> Void = { [self] stage in
                if job.slot.scheduler.isClosed {
                    lock.unlock()
                    finish(job, .failure(.sessionDeleted(job.key.id)))
                    return
                }
                job.slot.state.turns.append(turn)
                job.slot.context?.append(TurnEmbeddings(speaker: input.speaker, audio: item.audio, text: item.text))
                job.slot.state.decoder = computed.decoder
                job.slot.state.decoded = computed.decoded
                job.slot.state.lastActivity = Date()
                job.slot.version += 1
                schedulePreparation(after: job)
                lock.unlock()
                var timings = stage
                timings.total = Self.milliseconds(since: job.pending.enqueuedAt)
                finish(job, .success(TurnOutcome(sessionId: job.key.id, turn: turn, decoded: computed.decoded,
                                                 revised: revised, timings: timings, replayed: false)))
            }
            guard let journal, let payload else {
                store(timings)
                continue
            }
            // Stored (and answered) once its record is durable; appended under the lock, so the
            // journal's order is the order of changes (a delete after it is journaled after it).
            let stage = timings
            job.slot.scheduler.awaitDurability(job.pending)
            journal.append(payload) { [self] failure in
                if let failure {
                    finish(job, .failure(.storageUnavailable(failure)))
                    return
                }
                lock.lock()
                store(stage)
            }
            lock.unlock()
        }
    }

    /// Completes a job's waiters, ends its turn in the session's scheduler, and hands the
    /// session's next turn to the queue.
    func finish(_ job: Job, _ result: Result<TurnOutcome, ConversationError>) {
        lock.lock()
        waitingCount -= 1
        var stored = true
        if case .failure = result {
            stored = false
            job.slot.bytes -= job.pending.bytes
            sessions.charge(job.slot, at: job.key, -job.pending.memory)
        }
        let completions = job.pending.completions
        if let next = job.slot.scheduler.end(job.pending, stored: stored) {
            _ = queue.enqueue(.turn(Job(key: job.key, slot: job.slot, pending: next)), force: true)
        }
        lock.unlock()
        for c in completions { c(result) }
    }

    static func milliseconds(since t: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e6
    }

    /// Number of sessions, turns waiting or running, for health and metrics.
    public var statistics: (sessions: Int, waiting: Int, running: Int, rejected: Int, expired: Int) {
        lock.lock(); defer { lock.unlock() }
        return (sessions.count, waitingCount, queue.inFlight, rejectedTurns, expiredSessions)
    }

    /// Counters of the session table and of whole-dialogue analyses, for metrics.
    public struct Counters: Sendable, Equatable {
        /// Idle sessions evicted from a full table.
        public var evictedSessions = 0
        /// New sessions refused because their tenant held its quota.
        public var quotaRefusals = 0
        /// Analyses refused because running analyses held the analysis capacity.
        public var rejectedAnalyses = 0
        /// Analyses stopped because their client was gone.
        public var abandonedAnalyses = 0
        /// Analyses stopped at `analyzeTimeout`.
        public var timedOutAnalyses = 0
        /// Turns of stopped analyses that were never processed.
        public var skippedAnalysisTurns = 0
        /// Turns and audio seconds of the analyses accepted and not yet answered.
        public var analysisTurnsInFlight = 0
        public var analysisAudioSecondsInFlight = 0.0
        /// Next turns' context stacks run ahead between turns, and those a turn then used.
        public var preparedContexts = 0
        public var preparedContextsUsed = 0
    }

    public var counters: Counters {
        lock.lock(); defer { lock.unlock() }
        return Counters(evictedSessions: evictedSessions, quotaRefusals: quotaRefusals, rejectedAnalyses: rejectedAnalyses,
                        abandonedAnalyses: abandonedAnalyses, timedOutAnalyses: timedOutAnalyses,
                        skippedAnalysisTurns: skippedAnalysisTurns, analysisTurnsInFlight: analysisTurns,
                        analysisAudioSecondsInFlight: analysisAudioSeconds, preparedContexts: preparedContexts,
                        preparedContextsUsed: preparedContextsUsed)
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
