/// Byte limits on every string a session stores, and each session's budgets. Lengths are UTF-8
/// bytes, never `String.count`: one letter followed by 100,000 combining marks is one Character.
/// A field over its limit is refused as invalid input (`<field>_too_long`); a turn that would
/// take its session over `sessionBytes` or `ConversationConfiguration.maxTurnsPerSession` is a
/// conflict with the session's state (`session_budget_exceeded`, `session_full`); a whole
/// dialogue (`analyze`) over `sessionBytes` or `ConversationConfiguration.maxDialogueTurns` is
/// invalid input (`dialogue_too_large`, `dialogue_too_long`).
public struct StorageLimits: Sendable, Equatable {
    public var sessionIdBytes = 128
    public var speakerBytes = 256
    public var turnIdBytes = 256
    public var transcriptBytes = 40_000
    public var timestampBytes = 64
    /// The strings one session (or one analysed dialogue) holds: its id and every turn's turn id,
    /// speaker, transcript and timestamp.
    public var sessionBytes = 1 << 20

    public init() {}

    /// Memory a stored turn holds beyond its strings and embeddings: the turn's structure,
    /// logits, probabilities, gates, decoder back-pointers and stream context (measured about
    /// 3 KiB with `Deploy/measure-memory.py`: 5.2 KB per text-only turn of 512-d embeddings).
    public static let turnOverheadBytes = 3 * 1024

    /// The memory a turn of `strings` bytes of strings and `embeddingValues` floats holds.
    public static func memory(strings: Int, embeddingValues: Int) -> Int {
        strings + turnOverheadBytes + 4 * embeddingValues
    }

    /// The UTF-8 bytes of the given strings together (nil counts zero).
    public static func bytes(_ strings: String?...) -> Int {
        strings.reduce(0) { $0 + ($1?.utf8.count ?? 0) }
    }

    /// Why `turn` breaks a field limit, or nil.
    func problem(with turn: TurnInput) -> ConversationError? {
        func tooLong(_ field: String, _ value: String?, _ limit: Int) -> ConversationError? {
            guard let value, value.utf8.count > limit else { return nil }
            return ConversationError(.invalidInput, code: "\(field)_too_long",
                                     "\(field) is \(value.utf8.count) UTF-8 bytes; the limit is \(limit)")
        }
        return tooLong("speaker", turn.speaker, speakerBytes)
            ?? tooLong("transcript", turn.transcript, transcriptBytes)
            ?? tooLong("timestamp", turn.clientTimestamp, timestampBytes)
            ?? tooLong("turn_id", turn.turnId, turnIdBytes)
    }
}

extension TurnInput {
    /// Bytes this turn adds to its session's budget, stored under `turnId`.
    func storedBytes(turnId: String?) -> Int {
        StorageLimits.bytes(turnId, speaker, transcript, clientTimestamp)
    }
}

extension SessionState {
    /// The memory this session's turns hold (see `ConversationConfiguration.maxStoredBytes`).
    var memoryBytes: Int {
        turns.reduce(StorageLimits.bytes(id)) {
            $0 + StorageLimits.memory(strings: StorageLimits.bytes($1.turnId, $1.speaker, $1.transcript, $1.clientTimestamp),
                                      embeddingValues: ($1.audioEmbedding?.values.count ?? 0) + ($1.textEmbedding?.values.count ?? 0))
        }
    }

    /// Bytes of the strings this session holds (see `StorageLimits.sessionBytes`).
    var storedBytes: Int {
        turns.reduce(StorageLimits.bytes(id)) { $0 + StorageLimits.bytes($1.turnId, $1.speaker, $1.transcript, $1.clientTimestamp) }
    }
}
