/// A turn with an optional gold label, for estimating p0.
public struct LabelledTurn: Equatable, Sendable, Codable {
    public var speaker: String
    /// Gold emotion label; nil (or a label outside the label set) means the turn is skipped.
    public var label: String?

    public init(speaker: String, label: String?) {
        self.speaker = speaker
        self.label = label
    }
}

/// Estimates DED's p0 (the per-speaker emotion shift probability) from labelled dialogues.
///
/// Use training dialogues only: estimating p0 on the dialogues being evaluated leaks their labels.
public enum TransitionEstimator {
    /// Same-speaker transition counts behind an estimate.
    public struct Counts: Equatable, Sendable {
        /// Consecutive same-speaker pairs whose labels differ.
        public var shifts: Int
        /// All consecutive same-speaker pairs.
        public var pairs: Int
    }

    /// Smallest and largest p0 returned: the decoder needs 0 < p0 < 1.
    public static let p0Range: ClosedRange<Double> = 1e-6...(1 - 1e-6)

    /// Counts, in every dialogue and for every speaker, the consecutive pairs of that speaker's
    /// turns (after dropping turns whose label is missing or not in `labels`) and how many of
    /// them change label. Pairs never span two dialogues.
    public static func transitionCounts(dialogues: [[LabelledTurn]], labels: [String]) -> Counts {
        let labelSet = Set(labels)
        var counts = Counts(shifts: 0, pairs: 0)
        for dialogue in dialogues {
            var last: [String: String] = [:]
            for turn in dialogue {
                guard let label = turn.label, labelSet.contains(label) else { continue }
                if let previous = last.updateValue(label, forKey: turn.speaker) {
                    counts.pairs += 1
                    if previous != label { counts.shifts += 1 }
                }
            }
        }
        return counts
    }

    /// p0 = shifts / pairs (see ``transitionCounts(dialogues:labels:)``), clamped to
    /// ``p0Range``. Throws `no_transition_pairs` if there is no pair at all.
    public static func estimateP0(dialogues: [[LabelledTurn]], labels: [String]) throws -> Double {
        let counts = transitionCounts(dialogues: dialogues, labels: labels)
        guard counts.pairs > 0 else {
            throw DEDError(.noTransitionPairs,
                           "no two consecutive labelled turns of the same speaker; cannot estimate p0")
        }
        let p = Double(counts.shifts) / Double(counts.pairs)
        return min(max(p, p0Range.lowerBound), p0Range.upperBound)
    }
}
