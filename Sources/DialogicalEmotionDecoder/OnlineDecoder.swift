/// Online (turn-by-turn) Dialogical Emotion Decoder: a beam search over the dialogue's
/// emotion sequence that is extended by one turn at a time.
///
/// Each ``append(_:)`` returns the best full label path so far, which may revise labels of
/// earlier turns in light of the new one. The decoder is a plain value (`Sendable`, `Codable`):
/// a server can snapshot a session to disk mid-dialogue and continue it later with identical
/// results.
///
/// Cost per turn: O(B·L) candidate scores plus O(B·(L + S)) to copy the survivors' per-label
/// counts and per-speaker labels (B beam width, L labels, S speakers). Paths are stored as
/// back-pointers, so there is no O(T) copying per turn; only ``bestPath`` (and so `append`)
/// walks back through the T turns.
public struct OnlineDecoder: Sendable, Equatable, Codable {
    /// Number of emotion labels (length of every turn's logits).
    public let labelCount: Int
    /// The decoder's hyper-parameters.
    public let parameters: DEDParameters

    /// Speaker ids in order of first appearance; the position is the speaker's number.
    private var speakers: [String]
    /// Reverse of `speakers` (derived; not encoded).
    private var speakerNumbers: [String: Int]
    /// Hypotheses, best first.
    private var beams: [Hypothesis]
    /// `choices[t][r]` is the candidate index `parentRank * labelCount + label` of the
    /// hypothesis of rank r after turn t (back-pointers from which paths are rebuilt).
    private var choices: [[Int]]

    /// A beam-search hypothesis, without its path (kept in `choices`).
    struct Hypothesis: Sendable, Equatable {
        /// Cumulative log-probability.
        var score: Double
        /// Last label per speaker number; -1 (or a missing entry) means no turn yet.
        var lastLabels: [Int]
        /// n_k: times state k was entered in the dialogue (shared across speakers).
        var counts: [Int]
        /// N = sum of counts.
        var entries: Int
    }

    /// Creates a decoder for dialogues whose turns carry `labelCount` logits.
    /// Throws `invalid_parameter` if `labelCount < 1`.
    public init(labelCount: Int, parameters: DEDParameters) throws {
        guard labelCount >= 1 else {
            throw DEDError(.invalidParameter, "label count must be at least 1, got \(labelCount)")
        }
        self.labelCount = labelCount
        self.parameters = parameters
        speakers = []
        speakerNumbers = [:]
        beams = [Hypothesis(score: 0, lastLabels: [],
                            counts: [Int](repeating: 0, count: labelCount), entries: 0)]
        choices = []
    }

    /// Number of turns decoded so far.
    public var turnCount: Int { choices.count }

    /// Score (log-probability) of the best path; 0 before the first turn.
    public var bestScore: Double { beams[0].score }

    /// The best label path over all turns so far (label indices); empty before the first turn.
    public var bestPath: [Int] {
        var path = [Int](repeating: 0, count: choices.count)
        var rank = 0
        var t = choices.count - 1
        while t >= 0 {
            let candidate = choices[t][rank]
            path[t] = candidate % labelCount
            rank = candidate / labelCount
            t -= 1
        }
        return path
    }

    /// Adds one turn and returns the best full path (one label index per turn so far).
    ///
    /// Throws `label_count_mismatch` or `non_finite_logits` for a bad turn, in which case the
    /// decoder is left unchanged.
    @discardableResult
    public mutating func append(_ turn: DialogueTurn) throws -> [Int] {
        try validate(turn, turnIndex: turnCount)
        extend(with: turn)
        return bestPath
    }

    /// Checks a turn's logits (count and finiteness); `turnIndex` is only used in the message.
    func validate(_ turn: DialogueTurn, turnIndex: Int) throws {
        guard turn.logits.count == labelCount else {
            throw DEDError(.labelCountMismatch,
                           "turn at index \(turnIndex): expected \(labelCount) logits, got \(turn.logits.count)")
        }
        guard turn.logits.allSatisfy(\.isFinite) else {
            throw DEDError(.nonFiniteLogits, "turn at index \(turnIndex): logits must be finite numbers")
        }
    }

    /// One beam step for an already validated turn.
    mutating func extend(with turn: DialogueTurn) {
        let emissions = Scoring.logSoftmax(turn.logits)
        let speaker: Int
        if let known = speakerNumbers[turn.speaker] {
            speaker = known
        } else {
            speaker = speakers.count
            speakers.append(turn.speaker)
            speakerNumbers[turn.speaker] = speaker
        }
        let prior = Scoring.Prior(parameters)

        // Enumerate candidates in (hypothesis rank, label) order; the index encodes both.
        var candidates: [(score: Double, index: Int)] = []
        candidates.reserveCapacity(beams.count * labelCount)
        for (rank, h) in beams.enumerated() {
            let last = speaker < h.lastLabels.count && h.lastLabels[speaker] >= 0
                ? h.lastLabels[speaker] : nil
            for e in 0..<labelCount {
                let p = prior.logPrior(last: last, e: e, ne: h.counts[e], total: h.entries)
                candidates.append((h.score + (emissions[e] + p), rank * labelCount + e))
            }
        }
        // Score descending; equal scores keep enumeration order (a stable sort, made explicit
        // so it does not depend on the standard library's sort being stable).
        candidates.sort { $0.score > $1.score || ($0.score == $1.score && $0.index < $1.index) }
        let kept = candidates.prefix(parameters.beamWidth)

        var next: [Hypothesis] = []
        next.reserveCapacity(kept.count)
        var step: [Int] = []
        step.reserveCapacity(kept.count)
        for c in kept {
            let e = c.index % labelCount
            var h = beams[c.index / labelCount]
            let last = speaker < h.lastLabels.count ? h.lastLabels[speaker] : -1
            if last != e {  // first turn of the speaker (-1) or a shift: state e is entered
                h.counts[e] += 1
                h.entries += 1
            }
            if speaker >= h.lastLabels.count {
                h.lastLabels.append(contentsOf: repeatElement(-1, count: speaker + 1 - h.lastLabels.count))
            }
            h.lastLabels[speaker] = e
            h.score = c.score
            next.append(h)
            step.append(c.index)
        }
        beams = next
        choices.append(step)
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey {
        case formatVersion, labelCount, parameters, speakers, hypotheses, choices
    }

    private static let formatVersion = 1

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.formatVersion, forKey: .formatVersion)
        try c.encode(labelCount, forKey: .labelCount)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(speakers, forKey: .speakers)
        try c.encode(beams, forKey: .hypotheses)
        try c.encode(choices, forKey: .choices)
    }

    /// Decodes a snapshot and checks every invariant the decoder relies on, so a corrupted or
    /// hand-edited snapshot is rejected with a `DecodingError` instead of crashing later.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func corrupted(_ why: String) -> DecodingError {
            DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                              debugDescription: "invalid DED snapshot: \(why)"))
        }
        let version = try c.decode(Int.self, forKey: .formatVersion)
        guard version == Self.formatVersion else { throw corrupted("unsupported format version \(version)") }
        labelCount = try c.decode(Int.self, forKey: .labelCount)
        parameters = try c.decode(DEDParameters.self, forKey: .parameters)
        speakers = try c.decode([String].self, forKey: .speakers)
        beams = try c.decode([Hypothesis].self, forKey: .hypotheses)
        choices = try c.decode([[Int]].self, forKey: .choices)

        guard labelCount >= 1 else { throw corrupted("label count \(labelCount)") }
        speakerNumbers = [:]
        for (i, s) in speakers.enumerated() {
            guard speakerNumbers.updateValue(i, forKey: s) == nil else {
                throw corrupted("duplicate speaker id")
            }
        }
        guard !beams.isEmpty, beams.count <= parameters.beamWidth else {
            throw corrupted("\(beams.count) hypotheses for beam width \(parameters.beamWidth)")
        }
        for h in beams {
            guard h.counts.count == labelCount,
                  h.lastLabels.count <= speakers.count,
                  h.lastLabels.allSatisfy({ $0 >= -1 && $0 < labelCount }),
                  !h.score.isNaN, h.score != .infinity
            else { throw corrupted("inconsistent hypothesis") }
        }
        var previous = 1
        for (t, step) in choices.enumerated() {
            let (limit, overflow) = previous.multipliedReportingOverflow(by: labelCount)
            guard !overflow, !step.isEmpty, step.count <= parameters.beamWidth,
                  step.allSatisfy({ $0 >= 0 && $0 < limit })
            else { throw corrupted("bad back-pointers at turn \(t)") }
            previous = step.count
        }
        guard previous == beams.count else { throw corrupted("back-pointers do not match hypotheses") }
        if choices.isEmpty {
            guard beams[0].entries == 0, beams[0].score == 0 else { throw corrupted("bad initial state") }
        }
    }
}

extension OnlineDecoder.Hypothesis: Codable {
    private enum CodingKeys: String, CodingKey { case score, lastLabels, counts }

    // A score can be -infinity (a label with zero probability under extreme logits); JSON has
    // no infinities, so it is written as the string "-inf".
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if score.isFinite {
            try c.encode(score, forKey: .score)
        } else {
            try c.encode("-inf", forKey: .score)
        }
        try c.encode(lastLabels, forKey: .lastLabels)
        try c.encode(counts, forKey: .counts)
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try? c.decode(String.self, forKey: .score) {
            guard text == "-inf" else {
                throw DecodingError.dataCorruptedError(forKey: .score, in: c,
                                                       debugDescription: "bad score \(text)")
            }
            score = -.infinity
        } else {
            score = try c.decode(Double.self, forKey: .score)
        }
        lastLabels = try c.decode([Int].self, forKey: .lastLabels)
        counts = try c.decode([Int].self, forKey: .counts)
        // Entry counts are bounded by the number of turns; anything huge or negative is corrupt.
        let limit = Int(Int32.max)
        guard counts.allSatisfy({ $0 >= 0 && $0 <= limit }) else {
            throw DecodingError.dataCorruptedError(forKey: .counts, in: c,
                                                   debugDescription: "entry counts out of range")
        }
        var sum = 0
        for n in counts {
            sum += n
            guard sum <= limit else {
                throw DecodingError.dataCorruptedError(forKey: .counts, in: c,
                                                       debugDescription: "entry counts out of range")
            }
        }
        entries = sum
    }
}
