/// One dialogue turn as the classifier sees it: who spoke and the turn's embeddings.
/// A missing modality (no audio, empty transcript) is `nil` and reads as zeros.
public struct TurnEmbeddings: Sendable, Codable, Equatable {
    public var speaker: String
    public var audio: [Float]?
    public var text: [Float]?

    public init(speaker: String, audio: [Float]?, text: [Float]?) {
        self.speaker = speaker
        self.audio = audio
        self.text = text
    }
}

/// Builds the 12 stream vectors of a turn from the dialogue history.
///
/// For turn u its 4-tuple is (u.audio, u.text, I(u).audio, I(u).text) where the interlocutor
/// I(u) is the most recent earlier turn by a different speaker (any number of speakers). The
/// streams of turn t are the 4-tuples of t, t-1 and t-2; absent turns and modalities are zeros.
public enum StreamAssembler {
    /// Index of the most recent turn before `index` whose speaker differs from turn `index`'s.
    public static func interlocutorIndex(of index: Int, in turns: [TurnEmbeddings]) -> Int? {
        guard turns.indices.contains(index) else { return nil }
        let speaker = turns[index].speaker
        var j = index - 1
        while j >= 0 {
            if turns[j].speaker != speaker { return j }
            j -= 1
        }
        return nil
    }

    /// The 4-tuple of turn `index` (fixed once the turn has arrived).
    public static func tuple(of index: Int, in turns: [TurnEmbeddings], dimension: Int) -> [[Float]] {
        let zeros = [Float](repeating: 0, count: dimension)
        guard turns.indices.contains(index) else { return Array(repeating: zeros, count: StreamLayout.perTurn) }
        let turn = turns[index]
        let other = interlocutorIndex(of: index, in: turns).map { turns[$0] }
        return [turn.audio ?? zeros, turn.text ?? zeros, other?.audio ?? zeros, other?.text ?? zeros]
    }

    /// The 12 stream vectors of turn `index`, in `StreamLayout.names` order.
    public static func streams(for index: Int, in turns: [TurnEmbeddings], dimension: Int) -> [[Float]] {
        (0..<StreamLayout.turnOffsets.count).flatMap { tuple(of: index - $0, in: turns, dimension: dimension) }
    }

    /// The 12 stream vectors from already-built 4-tuples (a session stores each turn's tuple).
    public static func streams(current: [[Float]], previous: [[Float]]?, beforePrevious: [[Float]]?,
                               dimension: Int) -> [[Float]] {
        let zeros = Array(repeating: [Float](repeating: 0, count: dimension), count: StreamLayout.perTurn)
        return current + (previous ?? zeros) + (beforePrevious ?? zeros)
    }
}

/// What the streams of a dialogue's next turn need from the turns before it, in constant size
/// however long the dialogue: the 4-tuples of the last two turns, the last turn, and the most
/// recent turn whose speaker differs from the last one's (the next turn's interlocutor is the
/// last turn if another speaker spoke it, else that one). `streams(next:)` equals
/// `StreamAssembler.streams(for:in:dimension:)` over the whole history, so a session keeps this
/// instead of rebuilding its history for every turn.
public struct StreamContext: Sendable, Equatable {
    public let dimension: Int
    private var last: TurnEmbeddings?
    /// The most recent turn whose speaker differs from `last`'s.
    private var lastOther: TurnEmbeddings?
    /// The 4-tuples of the last turn and of the one before it (at most two, newest first).
    private var recentTuples: [[[Float]]] = []

    public init(dimension: Int) {
        self.dimension = dimension
    }

    /// The context after `turns` (oldest first).
    public init(turns: [TurnEmbeddings], dimension: Int) {
        self.init(dimension: dimension)
        for turn in turns { append(turn) }
    }

    /// The 4-tuple `turn` gets as the next turn of the dialogue.
    public func tuple(of turn: TurnEmbeddings) -> [[Float]] {
        let zeros = [Float](repeating: 0, count: dimension)
        let other = last.flatMap { $0.speaker != turn.speaker ? $0 : lastOther }
        return [turn.audio ?? zeros, turn.text ?? zeros, other?.audio ?? zeros, other?.text ?? zeros]
    }

    /// The 12 stream vectors of `turn` as the next turn, in `StreamLayout.names` order.
    public func streams(next turn: TurnEmbeddings) -> [[Float]] {
        StreamAssembler.streams(current: tuple(of: turn), previous: recentTuples.first,
                                beforePrevious: recentTuples.dropFirst().first, dimension: dimension)
    }

    /// The 4-tuples the next turn's context streams hold: of the last turn and of the one before
    /// it (nil: absent).
    public var contextTuples: (previous: [[Float]]?, beforePrevious: [[Float]]?) {
        (recentTuples.first, recentTuples.dropFirst().first)
    }

    /// Adds `turn` as the next turn.
    public mutating func append(_ turn: TurnEmbeddings) {
        let tuple = tuple(of: turn)
        if let last, last.speaker != turn.speaker { lastOther = last }
        last = turn
        recentTuples = [tuple] + recentTuples.prefix(1)
    }
}
