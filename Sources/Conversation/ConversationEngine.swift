import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM

/// Limits and sizes of the conversation layer.
public struct ConversationConfiguration: Sendable, Equatable {
    /// Sessions held at once. A new session in a full table first drops expired sessions, then
    /// evicts the idle session with the oldest last activity (see `evictionMinimumIdle`); when
    /// none qualifies it is refused (503 `too_many_sessions`).
    public var maxSessions = 10_000
    /// Sessions one namespace (tenant) may hold; a new one beyond is refused (429
    /// `tenant_session_quota`), so that one key cannot take the whole table. nil: no quota.
    public var maxSessionsPerTenant: Int? = nil
    /// Only a session idle (no turn waiting or in flight) at least this long may be evicted from
    /// a full table, so that a live call is not.
    public var evictionMinimumIdle: TimeInterval = 120
    /// A session idle this long is dropped.
    public var sessionTTL: TimeInterval = 3600
    /// Turns one session may hold.
    public var maxTurnsPerSession = 10_000
    /// Turns one `analyze` request may hold (422 `dialogue_too_long` beyond).
    public var maxDialogueTurns = 500
    /// Seconds of audio one `analyze` request may hold, read from the clips' headers before any
    /// work (422 `dialogue_audio_too_long` beyond; see `TurnEncoder.audioSeconds(of:)`).
    public var maxDialogueAudioSeconds: Double = 1800
    /// Turns of all accepted, unfinished analyses: a new analysis that would pass it is refused
    /// (503 `analysis_queue_full`), so that big analyses cannot stack up unbounded work. One
    /// analysis is admitted whenever none is running.
    public var analysisTurnCapacity = 1000
    /// Audio seconds of all accepted, unfinished analyses (refused as `analysisTurnCapacity`).
    public var analysisAudioSecondsCapacity: Double = 3600
    /// Seconds an analysis may take from its admission; past it its remaining chunks are
    /// skipped and it is answered 503 `analysis_timeout`.
    public var analyzeTimeout: TimeInterval = 120
    /// Byte limits on stored strings and the byte budget per session.
    public var limits = StorageLimits()
    /// Memory all sessions together may hold, in bytes: every stored (or accepted) turn's
    /// strings, `StorageLimits.turnOverheadBytes` and 4 bytes per embedding value. A turn that
    /// would pass it first evicts idle sessions in the table's eviction order (never its own
    /// session, never one idle less than `evictionMinimumIdle`); when that is not enough it is
    /// refused (503 `store_full`), so that no mix of sessions and turns outgrows the container
    /// (Deploy/README has the arithmetic).
    public var maxStoredBytes = 768 << 20
    /// Turns waiting for inference across all sessions; beyond it new turns are refused (503).
    public var queueCapacity = 64
    /// Inference workers (each runs its products on all cores).
    public var workers = 1
    /// Turns of different sessions classified together in one batch; also the turns of one
    /// analysis processed per step before it goes back to the end of the work queue.
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
        /// What this turn adds to the memory of all sessions (`maxStoredBytes`).
        let memory: Int
        let enqueuedAt: DispatchTime
        var completions: [Completion]
        init(input: TurnInput, turnId: String, dimension: Int, completion: @escaping Completion) {
            self.input = input
            self.turnId = turnId
            fingerprint = input.fingerprint
            bytes = input.storedBytes(turnId: turnId)
            memory = StorageLimits.memory(strings: bytes,
                                          embeddingValues: dimension * ((input.audio == nil ? 0 : 1) + (input.hasTranscript ? 1 : 0)))
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
        /// The memory its turns, stored and accepted, hold (see `maxStoredBytes`).
        var memory: Int
        /// What the next turn's streams need of the stored turns (nil: to be built from
        /// `state.turns`, after a restore or a replay), so that a turn never rebuilds the history.
        var context: StreamContext?
        init(state: SessionState) {
            self.state = state
            bytes = state.storedBytes
            memory = state.memoryBytes
        }
    }

    /// Its classes are touched only under `lock` (or by the one thread running the job).
    private struct Job: @unchecked Sendable {
        let key: SessionKey
        let slot: Slot
        let pending: Pending
    }

    /// A whole dialogue analysed offline (stateless), step by step: its progress is touched only
    /// by the one worker running its current step (it is in the queue at most once).
    private final class DialogueJob: @unchecked Sendable {
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

    private enum Work {
        case turn(Job)
        case dialogue(DialogueJob)
    }

    private let lock = NSLock()
    private var sessions = SessionTable<Slot>()
    private var waitingCount = 0
    /// Turns and audio seconds of the analyses accepted and not yet answered.
    private var analysisTurns = 0
    private var analysisAudioSeconds = 0.0
    private var draining = false
    private var queue: WorkQueue<Work>!
    private var sweeper: DispatchSourceTimer?
    /// Where stored turns and session ends are journaled (nil: nowhere).
    private var journal: TurnJournal?
    /// Counters for metrics.
    public private(set) var rejectedTurns = 0
    public private(set) var expiredSessions = 0
    private var evictedSessions = 0
    private var quotaRefusals = 0
    private var rejectedAnalyses = 0
    private var abandonedAnalyses = 0
    private var timedOutAnalyses = 0
    private var skippedAnalysisTurns = 0

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
            var dialogues: [DialogueJob] = []
            for item in work {
                switch item {
                case .turn(let job): turns.append(job)
                case .dialogue(let job): dialogues.append(job)
                }
            }
            // Live turns first: an analysis step taken in the same batch waits for them.
            if !turns.isEmpty { self.process(turns) }
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
        let cost = StorageLimits.memory(strings: input.storedBytes(turnId: turnId),
                                        embeddingValues: encoder.dimension * ((input.audio == nil ? 0 : 1) + (input.hasTranscript ? 1 : 0)))
        if let refusal = storeRefusal(adding: cost, for: key, now: Date()) {
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
        let pending = Pending(input: input, turnId: turnId, dimension: encoder.dimension, completion: completion)
        slot.bytes += pending.bytes
        slot.memory += pending.memory
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

    /// Why a new session of `namespace` cannot be created, after making room if the rules allow
    /// (under the lock). Its tenant at its quota: 429 `tenant_session_quota`, Retry-After when
    /// the tenant's first session expires (its expired ones are dropped first). A full table:
    /// expired sessions are dropped, else the idle session with the oldest last activity, idle
    /// at least `evictionMinimumIdle`, is evicted (ended as an expired one); when none
    /// qualifies, 503 `too_many_sessions`, Retry-After when the first one will.
    ///
    /// `commit` false only asks (header-time admission): nothing is dropped or evicted (a
    /// refusal is counted, as it is answered), and nil means that `submit` would find room.
    private func admissionRefusal(namespace: String, now: Date, commit: Bool = true) -> ConversationError? {
        func idle(_ slot: Slot) -> Bool { slot.inFlight == nil && slot.waiting.isEmpty }
        if let quota = configuration.maxSessionsPerTenant, sessions.count(in: namespace) >= quota {
            let cutoff = now.addingTimeInterval(-configuration.sessionTTL)
            var expired: [SessionKey] = []
            var firstExpiry = configuration.sessionTTL
            for key in sessions.keys(in: namespace) {
                guard let slot = sessions[key] else { continue }
                if idle(slot) && slot.state.lastActivity < cutoff {
                    expired.append(key)
                } else {
                    let last = idle(slot) ? slot.state.lastActivity : now
                    firstExpiry = min(firstExpiry, last.timeIntervalSince(cutoff))
                }
            }
            if commit {
                for key in expired { end(key) }
                expiredSessions += expired.count
            }
            if sessions.count(in: namespace) - (commit ? 0 : expired.count) >= quota {
                quotaRefusals += 1
                return ConversationError(.quotaExceeded, code: "tenant_session_quota",
                                         "this tenant holds its maximum of \(quota) sessions; end some (DELETE) or retry when one expires",
                                         retryAfter: max(1, firstExpiry))
            }
        }
        guard sessions.count >= configuration.maxSessions else { return nil }
        if commit { expireIdleLocked(now: now) }
        guard sessions.count >= configuration.maxSessions else { return nil }
        let evictable = now.addingTimeInterval(-min(configuration.evictionMinimumIdle, configuration.sessionTTL))
        var oldest: (key: SessionKey, last: Date)?
        for (key, slot) in sessions.all where idle(slot) && (oldest.map { slot.state.lastActivity < $0.last } ?? true) {
            oldest = (key, slot.state.lastActivity)
        }
        // (An expired session is idle and at least this old: asking finds it here.)
        if let oldest, oldest.last <= evictable {
            if commit {
                end(oldest.key)
                evictedSessions += 1
            }
            return nil
        }
        rejectedTurns += 1
        let wait = oldest.map { $0.last.timeIntervalSince(evictable) } ?? 1
        return ConversationError(.overloaded, code: "too_many_sessions",
                                 "the server holds its maximum number of sessions and none is idle long enough to evict; retry later",
                                 retryAfter: max(1, wait))
    }

    /// Why a turn of `cost` bytes for session `key` does not fit in `maxStoredBytes`, after
    /// evicting idle sessions (the oldest last activity first, idle at least
    /// `evictionMinimumIdle`, never `key`) if that makes room (under the lock): 503 `store_full`,
    /// Retry-After when the first session becomes evictable. `commit` false only asks.
    /// Sums every session's memory: O(sessions), a few microseconds per thousand.
    private func storeRefusal(adding cost: Int, for key: SessionKey, now: Date, commit: Bool = true) -> ConversationError? {
        let limit = configuration.maxStoredBytes
        var total = sessions.values.reduce(0) { $0 + $1.memory }
        guard total + cost > limit else { return nil }
        let evictable = now.addingTimeInterval(-min(configuration.evictionMinimumIdle, configuration.sessionTTL))
        let idle = sessions.all.filter { $0.key != key && $0.value.inFlight == nil && $0.value.waiting.isEmpty }
            .sorted { $0.value.state.lastActivity < $1.value.state.lastActivity }
        var evict: [SessionKey] = []
        for (candidate, slot) in idle where slot.state.lastActivity <= evictable {
            if total + cost <= limit { break }
            total -= slot.memory
            evict.append(candidate)
        }
        if total + cost <= limit {
            if commit {
                for candidate in evict { end(candidate) }
                evictedSessions += evict.count
            }
            return nil
        }
        rejectedTurns += 1
        let wait = idle.first { $0.value.state.lastActivity > evictable }.map { $0.value.state.lastActivity.timeIntervalSince(evictable) } ?? 1
        return ConversationError(.overloaded, code: "store_full",
                                 "the sessions hold all the memory this server may give them and none is idle long enough to evict; retry later",
                                 retryAfter: max(1, wait))
    }

    /// Drops a session as an expired one (under the lock): gone from memory, journaled as ended
    /// (when a journal is attached); the next snapshot pass removes its file.
    private func end(_ key: SessionKey) {
        sessions[key] = nil
        journalEnd(key)
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
                let context = job.slot.context ?? StreamContext(turns: job.slot.state.turns.map {
                    TurnEmbeddings(speaker: $0.speaker, audio: $0.audioEmbedding?.values, text: $0.textEmbedding?.values)
                }, dimension: encoder.dimension)
                job.slot.context = context
                lock.unlock()
                let streams = context.streams(next: TurnEmbeddings(speaker: input.speaker, audio: audio, text: text))
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
            // Only the decoder is copied (not the session's turns): it is stored with the turn.
            var decoder = job.slot.state.decoder
            let t1 = DispatchTime.now()
            let previous = job.slot.state.decoded
            let decoded: [Int]
            do {
                decoded = try decoder.append(decoderTurn(speaker: input.speaker, hasAudio: item.audio != nil,
                                                         hasText: item.text != nil, classification: classification))
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
                if job.slot.deleted {
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

    /// Completes a job's waiters and hands the session's next turn to the queue.
    private func finish(_ job: Job, _ result: Result<TurnOutcome, ConversationError>) {
        lock.lock()
        waitingCount -= 1
        if case .failure = result {
            job.slot.bytes -= job.pending.bytes
            job.slot.memory -= job.pending.memory
        }
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
    /// the dialogue (repeated twice, keeping the last copy, when `repeatTwice`). Stateless.
    ///
    /// Budgets: at most `maxDialogueTurns` turns and `maxDialogueAudioSeconds` of audio (from the
    /// clips' headers, before any work; 422 `dialogue_too_long`, `dialogue_audio_too_long`); the
    /// turns and audio seconds of all running analyses are bounded by `analysisTurnCapacity` and
    /// `analysisAudioSecondsCapacity` (503 `analysis_queue_full`), and an analysis also takes one
    /// place of `queueCapacity` (503 `queue_full`). The work runs on the same work queue as
    /// session turns, `maxBatch` turns per step, each step going back to the end of the queue,
    /// so that turns posted meanwhile are answered between steps. Before every step the analysis
    /// stops when `isCancelled` says the client is gone (counted in `abandonedAnalyses`) or
    /// `analyzeTimeout` has passed since admission (503 `analysis_timeout`).
    public func analyze(_ turns: [TurnInput], repeatTwice: Bool = true,
                        isCancelled: @escaping @Sendable () -> Bool = { false },
                        completion: @escaping @Sendable (Result<DialogueAnalysis, ConversationError>) -> Void) {
        if turns.isEmpty {
            completion(.failure(ConversationError(.invalidInput, code: "empty_dialogue", "a dialogue needs at least one turn")))
            return
        }
        if turns.count > configuration.maxDialogueTurns {
            completion(.failure(ConversationError(.invalidInput, code: "dialogue_too_long",
                                                  "a dialogue may have at most \(configuration.maxDialogueTurns) turns")))
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
        var seconds = 0.0
        for (i, turn) in turns.enumerated() {
            guard let audio = turn.audio else { continue }
            do {
                seconds += try encoder.audioSeconds(of: audio)
            } catch let error as ConversationError {
                completion(.failure(ConversationError(error.category, code: error.code, "turn \(i): \(error.message)")))
                return
            } catch {
                completion(.failure(ConversationError(.internal, code: "audio_probe_failed", "turn \(i): \(error)")))
                return
            }
        }
        if seconds > configuration.maxDialogueAudioSeconds {
            completion(.failure(ConversationError(.invalidInput, code: "dialogue_audio_too_long",
                                                  "the dialogue's audio is \(Int(seconds.rounded(.up))) s; the limit is \(Int(configuration.maxDialogueAudioSeconds)) s")))
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
        let running = analysisTurns > 0 || analysisAudioSeconds > 0
        if running && (analysisTurns + turns.count > configuration.analysisTurnCapacity
                       || analysisAudioSeconds + seconds > configuration.analysisAudioSecondsCapacity) {
            rejectedAnalyses += 1
            lock.unlock()
            completion(.failure(ConversationError(.overloaded, code: "analysis_queue_full",
                                                  "too many dialogue turns or audio seconds are being analysed; retry later")))
            return
        }
        waitingCount += 1
        analysisTurns += turns.count
        analysisAudioSeconds += seconds
        let job = DialogueJob(turns: turns, repeatTwice: repeatTwice, audioSeconds: seconds,
                              timeout: configuration.analyzeTimeout, isCancelled: isCancelled, completion: completion)
        _ = queue.enqueue(.dialogue(job), force: true)
        lock.unlock()
    }

    public func analyze(_ turns: [TurnInput], repeatTwice: Bool = true,
                        isCancelled: @escaping @Sendable () -> Bool = { false }) async throws(ConversationError) -> DialogueAnalysis {
        let result: Result<DialogueAnalysis, ConversationError> = await withCheckedContinuation { continuation in
            analyze(turns, repeatTwice: repeatTwice, isCancelled: isCancelled) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// One step of an analysis: `maxBatch` more turns embedded and classified, then back to the
    /// end of the queue, or DED and the answer after the last turn.
    private func step(_ job: DialogueJob) {
        let left = job.turns.count - job.history.count
        if job.isCancelled() {
            finishAnalysis(job, .failure(ConversationError(.unavailable, code: "client_gone",
                                                           "the client closed the connection")),
                           abandoned: true, skipped: left)
            return
        }
        if DispatchTime.now() >= job.deadline {
            finishAnalysis(job, .failure(ConversationError(.overloaded, code: "analysis_timeout",
                                                           "the analysis took longer than \(Int(configuration.analyzeTimeout)) s; retry with fewer turns or later")),
                           timedOut: true, skipped: left)
            return
        }
        do {
            let start = job.history.count
            let end = min(job.turns.count, start + max(1, configuration.maxBatch))
            for i in start..<end {
                do {
                    job.history.append(try embeddings(of: job.turns[i]))
                } catch let error as ConversationError {
                    throw ConversationError(error.category, code: error.code, "turn \(i): \(error.message)")
                }
            }
            job.classifications += try classify(start..<end, of: job.history)
            if end < job.turns.count {
                guard queue.enqueue(.dialogue(job), force: true) else {
                    throw ConversationError(.unavailable, code: "shutting_down", "the server is shutting down")
                }
                return
            }
            let decoded = try decodeOffline(job.history, classifications: job.classifications, repeatTwice: job.repeatTwice)
            finishAnalysis(job, .success(DialogueAnalysis(classifications: job.classifications, decoded: decoded,
                                                          milliseconds: Self.milliseconds(since: job.enqueuedAt))))
        } catch let error as ConversationError {
            finishAnalysis(job, .failure(error))
        } catch {
            finishAnalysis(job, .failure(ConversationError(.internal, code: "analysis_failed", "\(error)")))
        }
    }

    /// Gives an analysis's place in the queue and its budget back, then answers it.
    private func finishAnalysis(_ job: DialogueJob, _ result: Result<DialogueAnalysis, ConversationError>,
                                abandoned: Bool = false, timedOut: Bool = false, skipped: Int = 0) {
        lock.lock()
        waitingCount -= 1
        analysisTurns -= job.turns.count
        analysisAudioSeconds -= job.audioSeconds
        if analysisTurns == 0 { analysisAudioSeconds = 0 }  // no drift from float sums
        if abandoned { abandonedAnalyses += 1 }
        if timedOut { timedOutAnalyses += 1 }
        skippedAnalysisTurns += skipped
        lock.unlock()
        job.completion(result)
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
            classifications += try classify(start..<end, of: history)
            start = end
        }
        return classifications
    }

    /// The turns `range` of a dialogue classified as one batch (each needs only turns before it).
    private func classify(_ range: Range<Int>, of history: [TurnEmbeddings]) throws -> [Classification] {
        try classifier.classify(range.map { StreamAssembler.streams(for: $0, in: history, dimension: encoder.dimension) })
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
        let expired = sessions.all.filter { $0.value.inFlight == nil && $0.value.waiting.isEmpty && $0.value.state.lastActivity < cutoff }
        for key in expired.keys { end(key) }
        expiredSessions += expired.count
        return expired.count
    }

    /// Why new work (a turn or a dialogue) would be refused right now whatever it holds: the
    /// server is draining or the inference queue is full. Lets the API refuse a request at
    /// header time, before its body is read; `submit` and `analyze` check again.
    /// With `session`, a turn for it: when that session does not exist yet, also the session
    /// table's quota and room (asked only: nothing is evicted before the turn is read).
    public func admissionRefusal(session key: SessionKey? = nil) -> ConversationError? {
        lock.lock(); defer { lock.unlock() }
        if draining { return ConversationError(.unavailable, code: "shutting_down", "the server is shutting down") }
        guard waitingCount < configuration.queueCapacity else {
            rejectedTurns += 1
            return ConversationError(.overloaded, code: "queue_full", "too many turns are waiting for inference; retry later")
        }
        if let key {
            if sessions[key] == nil, let refusal = admissionRefusal(namespace: key.namespace, now: Date(), commit: false) {
                return refusal
            }
            // The smallest turn (a transcript of a few bytes): one that does not fit either is
            // refused before its body is read.
            return storeRefusal(adding: StorageLimits.memory(strings: 0, embeddingValues: encoder.dimension), for: key,
                                now: Date(), commit: false)
        }
        return nil
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
    }

    public var counters: Counters {
        lock.lock(); defer { lock.unlock() }
        return Counters(evictedSessions: evictedSessions, quotaRefusals: quotaRefusals, rejectedAnalyses: rejectedAnalyses,
                        abandonedAnalyses: abandonedAnalyses, timedOutAnalyses: timedOutAnalyses,
                        skippedAnalysisTurns: skippedAnalysisTurns, analysisTurnsInFlight: analysisTurns,
                        analysisAudioSecondsInFlight: analysisAudioSeconds)
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
                slot.memory = state.memoryBytes
                slot.context = nil  // rebuilt from the turns when the next one arrives
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


