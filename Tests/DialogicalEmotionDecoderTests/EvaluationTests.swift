import Testing
@testable import DialogicalEmotionDecoder

@Suite("Metrics and p0 estimation, hand-computed")
struct EvaluationTests {
    @Test func handComputedMetrics() throws {
        // gold [0,0,1,2], predicted [0,1,1,1]: 2 of 4 right; recalls 1/2, 1, 0 -> UAR 1/2.
        // F1: class 0 P=1 R=1/2 -> 2/3 (support 2); class 1 P=1/3 R=1 -> 1/2 (support 1);
        // class 2 -> 0 (support 1). Weighted: (2 * 2/3 + 1/2) / 4 = 11/24.
        let r = try Evaluation.report(gold: [0, 0, 1, 2], predicted: [0, 1, 1, 1])
        #expect(r.accuracy == 0.5)
        #expect(abs(r.unweightedAverageRecall - 0.5) < 1e-15)
        #expect(abs(r.weightedF1 - 11.0 / 24.0) < 1e-15)
        #expect(r.count == 4)
    }

    @Test func classesOnlyPredictedDoNotCountInUAR() throws {
        // Class 3 never occurs in gold: UAR averages over classes 0 and 1 only.
        let uar = try Evaluation.unweightedAverageRecall(gold: [0, 0, 1, 1], predicted: [0, 3, 1, 1])
        #expect(abs(uar - 0.75) < 1e-15)
        // Perfect prediction.
        #expect(try Evaluation.weightedF1(gold: [2, 1, 2], predicted: [2, 1, 2]) == 1)
    }

    @Test func handComputedMacroF1AndConfusion() throws {
        // gold [0,0,1,2], predicted [0,1,1,1]: per-class F1 2/3, 1/2, 0 -> macro 7/18
        // (scikit-learn f1_score(average="macro"): 0.38888888888888884).
        #expect(abs(try Evaluation.macroF1(gold: [0, 0, 1, 2], predicted: [0, 1, 1, 1]) - 7.0 / 18.0) < 1e-15)
        #expect(abs(try Evaluation.report(gold: [0, 0, 1, 2], predicted: [0, 1, 1, 1]).macroF1 - 7.0 / 18.0) < 1e-15)
        // A class only predicted (3) counts in macro F1 with F1 0, unlike weighted F1:
        // class 0: P 1, R 1/2 -> 2/3; class 1: 1; class 3: 0 -> macro 5/9, weighted (2*2/3 + 2*1)/4 = 5/6.
        #expect(abs(try Evaluation.macroF1(gold: [0, 0, 1, 1], predicted: [0, 3, 1, 1]) - 5.0 / 9.0) < 1e-15)
        #expect(abs(try Evaluation.weightedF1(gold: [0, 0, 1, 1], predicted: [0, 3, 1, 1]) - 5.0 / 6.0) < 1e-15)
        #expect(try Evaluation.macroF1(gold: [2, 1, 2], predicted: [2, 1, 2]) == 1)
        // Rows are gold classes, columns predicted classes.
        #expect(try Evaluation.confusionMatrix(gold: [0, 0, 1, 2], predicted: [0, 1, 1, 1], classCount: 4)
                == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
        #expect(try Evaluation.confusionMatrix(gold: [], predicted: [], classCount: 2) == [[0, 0], [0, 0]])
        let outside = #expect(throws: DEDError.self) {
            try Evaluation.confusionMatrix(gold: [0], predicted: [4], classCount: 4)
        }
        #expect(outside?.reason == .invalidParameter)
    }

    @Test func metricErrors() {
        let mismatch = #expect(throws: DEDError.self) { try Evaluation.accuracy(gold: [0], predicted: []) }
        #expect(mismatch?.reason == .lengthMismatch)
        let empty = #expect(throws: DEDError.self) { try Evaluation.weightedF1(gold: [], predicted: []) }
        #expect(empty?.reason == .emptyInput)
        #expect(throws: DEDError.self) { try Evaluation.unweightedAverageRecall(gold: [], predicted: []) }
        #expect(throws: DEDError.self) { try Evaluation.macroF1(gold: [], predicted: []) }
        let confusion = #expect(throws: DEDError.self) {
            try Evaluation.confusionMatrix(gold: [0], predicted: [], classCount: 2)
        }
        #expect(confusion?.reason == .lengthMismatch)
    }

    @Test func handComputedP0() throws {
        let t = { LabelledTurn(speaker: $0, label: $1) }
        // F: neu, neu, sad -> pairs (neu,neu) (neu,sad); M: ang, [xxx dropped], ang -> (ang,ang).
        let dialogue = [t("F", "neu"), t("M", "ang"), t("F", "neu"), t("M", "xxx"), t("F", nil),
                        t("F", "sad"), t("M", "ang")]
        let labels = ["ang", "hap", "neu", "sad"]
        #expect(TransitionEstimator.transitionCounts(dialogues: [dialogue], labels: labels)
                == .init(shifts: 1, pairs: 3))
        #expect(try TransitionEstimator.estimateP0(dialogues: [dialogue], labels: labels) == 1.0 / 3.0)
        // Never shifting is clamped away from 0 (the decoder needs 0 < p0 < 1).
        #expect(try TransitionEstimator.estimateP0(dialogues: [[t("F", "neu"), t("F", "neu")]],
                                                   labels: labels) == 1e-6)
        let error = #expect(throws: DEDError.self) {
            try TransitionEstimator.estimateP0(dialogues: [[t("F", "neu"), t("M", "neu")]], labels: labels)
        }
        #expect(error?.code == "no_transition_pairs")
    }
}
