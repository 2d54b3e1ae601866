/// Classification metrics used to evaluate DED against the classifier alone.
///
/// Labels are class indices. Classes are those occurring in `gold`: a class that is only ever
/// predicted contributes no recall term to UAR and has zero weight in weighted F1 (the usual
/// scikit-learn conventions for `balanced_accuracy_score` and `f1_score(average="weighted")`).
/// Macro F1 follows `f1_score(average="macro")`: the plain mean over the classes occurring in
/// `gold` or in `predicted`, so a class only ever predicted counts with F1 0.
public enum Evaluation {
    /// Accuracy, UAR, weighted and macro F1 of one prediction.
    public struct Report: Equatable, Sendable {
        public var count: Int
        public var accuracy: Double
        public var unweightedAverageRecall: Double
        public var weightedF1: Double
        public var macroF1: Double
    }

    /// All four metrics. Throws like the individual functions.
    public static func report(gold: [Int], predicted: [Int]) throws -> Report {
        Report(count: gold.count,
               accuracy: try accuracy(gold: gold, predicted: predicted),
               unweightedAverageRecall: try unweightedAverageRecall(gold: gold, predicted: predicted),
               weightedF1: try weightedF1(gold: gold, predicted: predicted),
               macroF1: try macroF1(gold: gold, predicted: predicted))
    }

    /// Fraction of positions where `predicted` equals `gold`.
    /// Throws `length_mismatch` or `empty_input`.
    public static func accuracy(gold: [Int], predicted: [Int]) throws -> Double {
        try check(gold, predicted)
        let correct = zip(gold, predicted).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
        return Double(correct) / Double(gold.count)
    }

    /// Unweighted average recall (UAR): the mean over classes occurring in `gold` of
    /// (correct predictions of the class) / (gold support of the class).
    public static func unweightedAverageRecall(gold: [Int], predicted: [Int]) throws -> Double {
        let stats = try classStatistics(gold, predicted)
        var sum = 0.0
        for s in stats { sum += Double(s.truePositives) / Double(s.support) }
        return sum / Double(stats.count)
    }

    /// Per-class F1 (harmonic mean of precision and recall; 0 when both are 0), averaged over
    /// the classes occurring in `gold` with weights proportional to their gold support.
    public static func weightedF1(gold: [Int], predicted: [Int]) throws -> Double {
        let stats = try classStatistics(gold, predicted)
        var total = 0.0
        for s in stats { total += f1(s) * Double(s.support) }
        return total / Double(gold.count)
    }

    /// Per-class F1 averaged with equal weights over the classes occurring in `gold` or in
    /// `predicted` (scikit-learn's `f1_score(average="macro")`).
    public static func macroF1(gold: [Int], predicted: [Int]) throws -> Double {
        let stats = try classStatistics(gold, predicted, includingPredicted: true)
        var total = 0.0
        for s in stats { total += f1(s) }
        return total / Double(stats.count)
    }

    /// Confusion counts: `matrix[g][p]` is the number of positions with gold class `g` and
    /// predicted class `p`, for classes `0..<classCount`. Throws `length_mismatch`, or
    /// `invalid_parameter` for a class outside `0..<classCount`. Empty input gives zeros.
    public static func confusionMatrix(gold: [Int], predicted: [Int], classCount: Int) throws -> [[Int]] {
        guard gold.count == predicted.count else {
            throw DEDError(.lengthMismatch, "\(gold.count) gold labels but \(predicted.count) predictions")
        }
        var matrix = Array(repeating: [Int](repeating: 0, count: max(0, classCount)), count: max(0, classCount))
        for (g, p) in zip(gold, predicted) {
            guard (0..<classCount).contains(g), (0..<classCount).contains(p) else {
                throw DEDError(.invalidParameter, "class \((0..<classCount).contains(g) ? p : g) outside 0..<\(classCount)")
            }
            matrix[g][p] += 1
        }
        return matrix
    }

    private static func f1(_ s: ClassStatistics) -> Double {
        let precision = s.predicted > 0 ? Double(s.truePositives) / Double(s.predicted) : 0
        let recall = s.support > 0 ? Double(s.truePositives) / Double(s.support) : 0
        return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
    }

    private struct ClassStatistics {
        var support = 0, predicted = 0, truePositives = 0
    }

    /// Per-class counts for the classes in `gold` (and in `predicted` with `includingPredicted`),
    /// in ascending class order (a fixed summation order keeps results reproducible).
    private static func classStatistics(_ gold: [Int], _ predicted: [Int],
                                        includingPredicted: Bool = false) throws -> [ClassStatistics] {
        try check(gold, predicted)
        var stats: [Int: ClassStatistics] = [:]
        for g in gold { stats[g, default: ClassStatistics()].support += 1 }
        if includingPredicted { for p in predicted where stats[p] == nil { stats[p] = ClassStatistics() } }
        for (g, p) in zip(gold, predicted) {
            if stats[p] != nil { stats[p]?.predicted += 1 }
            if g == p { stats[g]?.truePositives += 1 }
        }
        return stats.keys.sorted().compactMap { stats[$0] }
    }

    private static func check(_ gold: [Int], _ predicted: [Int]) throws {
        guard gold.count == predicted.count else {
            throw DEDError(.lengthMismatch,
                           "\(gold.count) gold labels but \(predicted.count) predictions")
        }
        guard !gold.isEmpty else { throw DEDError(.emptyInput, "no labels to evaluate") }
    }
}
