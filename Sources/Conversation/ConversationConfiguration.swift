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
    /// Once a session's turn is answered and no turn waits, run its next turn's context stacks
    /// (8 of the classifier's 12) on the idle worker, so that the next turn waits only for its own
    /// 4 (`GatedXLSTMClassifier.prepareContext`). Answers are the same either way.
    public var prepareContext = true

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
