import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM

/// The session table: admission (tenant quota, room, memory), eviction, expiry, deletion,
/// snapshots and the journal's replay. Everything here runs under the engine's lock.
extension ConversationEngine {
    /// Why a new session of `namespace` cannot be created, after making room if the rules allow
    /// (under the lock). Its tenant at its quota: 429 `tenant_session_quota`, Retry-After when
    /// the tenant's first session expires (its expired ones are dropped first). A full table:
    /// expired sessions are dropped, else the idle session with the oldest last activity, idle
    /// at least `evictionMinimumIdle`, is evicted (ended as an expired one); when none
    /// qualifies, 503 `too_many_sessions`, Retry-After when the first one will.
    ///
    /// `commit` false only asks (header-time admission): nothing is dropped or evicted (a
    /// refusal is counted, as it is answered), and nil means that `submit` would find room.
    func admissionRefusal(namespace: String, now: Date, commit: Bool = true) -> ConversationError? {
        func idle(_ slot: Slot) -> Bool { slot.scheduler.isIdle }
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
    func storeRefusal(adding cost: Int, for key: SessionKey, now: Date, commit: Bool = true) -> ConversationError? {
        let limit = configuration.maxStoredBytes
        var total = sessions.memory
        guard total + cost > limit else { return nil }
        let evictable = now.addingTimeInterval(-min(configuration.evictionMinimumIdle, configuration.sessionTTL))
        let idle = sessions.all.filter { $0.key != key && $0.value.scheduler.isIdle }
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
    func end(_ key: SessionKey) {
        sessions[key] = nil
        journalEnd(key)
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
        let dropped = slot.scheduler.close()
        let journaled = journalEnd(SessionKey(namespace: namespace, id: id), whenDurable: whenDurable)
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
    func expireIdleLocked(now: Date) -> Int {
        let cutoff = now.addingTimeInterval(-configuration.sessionTTL)
        let expired = sessions.all.filter { $0.value.scheduler.isIdle && $0.value.state.lastActivity < cutoff }
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
        if let refusal = newWorkRefusal() { return refusal }
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
    func journalEnd(_ key: SessionKey, whenDurable: (@Sendable (StorageError?) -> Void)? = nil) -> Bool {
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
                let step = pipeline.decoderTurn(speaker: turn.speaker, hasAudio: turn.audioEmbedding != nil,
                                                hasText: turn.textEmbedding != nil, logits: turn.logits)
                guard let decoded = try? state.decoder.append(step) else {
                    problems.append("turn \(turn.index): the decoder refused it; skipped")
                    continue
                }
                state.decoded = decoded
                state.turns.append(turn)
                state.lastActivity = max(state.lastActivity, turn.receivedAt)
                slot.state = state
                slot.bytes = state.storedBytes
                sessions.charge(slot, at: key, state.memoryBytes - slot.memory)
                slot.context = nil  // rebuilt from the turns when the next one arrives
                slot.version += 1
                sessions[key] = slot
                stored += 1
            }
        }
        return (stored, problems)
    }
}
