import Foundation

/// Where an accepted turn of a session is on its way to an answer.
///
/// A turn moves only forward, and only through `TurnScheduler`, which checks each move against
/// `canBecome(_:)`: waiting -> running -> (awaiting durability ->) stored, or failed from any
/// state before an answer. `stored` and `failed` are final.
enum TurnState: Equatable, Sendable {
    /// In its session's FIFO, behind the session's current turn.
    case waiting
    /// The session's current turn: in the work queue, or being encoded, classified and decoded.
    case running
    /// Computed; its journal record is being appended, and it is stored once that is durable.
    case awaitingDurability
    /// Stored in its session and answered (set as it is answered, just after the store: a retry
    /// in between finds it stored in the session and is a replay).
    case stored
    /// Answered with an error (its session deleted, a stage or the journal failed).
    case failed

    /// Whether a turn in this state may move to `next`.
    func canBecome(_ next: TurnState) -> Bool {
        switch (self, next) {
        case (.waiting, .running), (.waiting, .failed),
             (.running, .awaitingDurability), (.running, .stored), (.running, .failed),
             (.awaitingDurability, .stored), (.awaitingDurability, .failed):
            return true
        default:
            return false
        }
    }
}

extension ConversationEngine {
    /// A turn accepted for a session and not yet answered, with everyone waiting for its answer
    /// (a retry with the same turn id joins it). Its `state` is changed only by the session's
    /// `TurnScheduler`.
    final class Pending {
        let input: TurnInput
        let turnId: String
        let fingerprint: UInt64
        /// What this turn adds to its session's byte budget.
        let bytes: Int
        /// What this turn adds to the memory of all sessions (`maxStoredBytes`).
        let memory: Int
        let enqueuedAt: DispatchTime
        var completions: [Completion]
        fileprivate(set) var state = TurnState.waiting
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
}

/// The accepted, unanswered turns of one session, in arrival order: at most one is `current`
/// (running or awaiting durability; the engine has it in the work queue or in flight), the rest
/// wait behind it. This is what keeps a session's turns strictly ordered, one at a time in the
/// work queue. Closed when its session is deleted: the waiting turns are dropped, the current
/// one runs to its end and fails.
///
/// Not thread-safe: the engine touches it under its lock. It only keeps the order and the
/// states; the caller enqueues the turn to run, answers, and keeps the accounting.
struct TurnScheduler {
    typealias Turn = ConversationEngine.Pending

    /// The turn that runs now (nil: none).
    private(set) var current: Turn?
    private var waiting: [Turn] = []
    /// The session was deleted: its turns are no longer stored.
    private(set) var isClosed = false
    /// Called with a description when a move is illegal (a programming error); the move is not
    /// made. Traps in debug builds by default; tests record instead.
    private let illegal: (String) -> Void

    init(onIllegalTransition illegal: @escaping (String) -> Void = { assertionFailure($0) }) {
        self.illegal = illegal
    }

    /// No turn waiting or running: the session may expire or be evicted.
    var isIdle: Bool { current == nil && waiting.isEmpty }

    /// Turns accepted and not yet answered (the current one and those waiting).
    var count: Int { waiting.count + (current == nil ? 0 : 1) }

    /// The unanswered turn with client turn id `turnId`, running or waiting (a retry joins it).
    func turn(withId turnId: String) -> Turn? {
        if let current, current.turnId == turnId { return current }
        return waiting.first { $0.turnId == turnId }
    }

    /// Takes a new turn (state `waiting`) in arrival order. True when it runs now (it became
    /// `current`: the caller hands it to the work queue); false when it waits for the ones ahead.
    mutating func admit(_ turn: Turn) -> Bool {
        guard turn.state == .waiting, turn !== current, !waiting.contains(where: { $0 === turn }) else {
            illegal("turn '\(turn.turnId)' admitted again (\(turn.state))")
            return false
        }
        // A deleted session is out of the table, so nothing reaches it; if something does, the
        // turn still runs and fails as its session's turn (the engine checks `isClosed`).
        if isClosed { illegal("turn '\(turn.turnId)' admitted to a deleted session") }
        guard current == nil else {
            waiting.append(turn)
            return false
        }
        current = turn
        return move(turn, to: .running)
    }

    /// The current turn's journal record is being appended. False (nothing changed) when `turn`
    /// is not the current, running turn.
    @discardableResult
    mutating func awaitDurability(_ turn: Turn) -> Bool {
        guard turn === current else {
            illegal("turn '\(turn.turnId)' awaits durability but is not running (\(turn.state))")
            return false
        }
        return move(turn, to: .awaitingDurability)
    }

    /// The current turn ended, `stored` or failed: it leaves the scheduler, and the next waiting
    /// turn, if any, becomes current (running) and is returned for the caller to enqueue.
    /// A turn that is not the current one is left as it is (nil).
    mutating func end(_ turn: Turn, stored: Bool) -> Turn? {
        guard turn === current else {
            illegal("turn '\(turn.turnId)' ended but is not running (\(turn.state))")
            return nil
        }
        guard move(turn, to: stored ? .stored : .failed) else { return nil }
        current = nil
        guard !waiting.isEmpty else { return nil }
        let next = waiting.removeFirst()
        current = next
        return move(next, to: .running) ? next : nil
    }

    /// The session is deleted: returns the waiting turns, now failed, for the caller to answer.
    /// The current turn, if any, stays current; it fails when it ends (`isClosed`).
    mutating func close() -> [Turn] {
        isClosed = true
        let dropped = waiting
        waiting.removeAll()
        for turn in dropped { move(turn, to: .failed) }
        return dropped
    }

    /// The one place a turn's state changes; refuses (and reports) a move `canBecome` forbids.
    @discardableResult
    private func move(_ turn: Turn, to next: TurnState) -> Bool {
        guard turn.state.canBecome(next) else {
            illegal("turn '\(turn.turnId)': \(turn.state) -> \(next) is not a legal move")
            return false
        }
        turn.state = next
        return true
    }
}
