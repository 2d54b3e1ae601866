import Foundation
import Testing
@testable import DialogicalEmotionDecoder
import TestSupport

private func params(_ p0: Double = 0.3, alpha: Double = 1, beam: Int = 5) throws -> DEDParameters {
    try DEDParameters(p0: p0, alpha: alpha, beamWidth: beam)
}


private func randomDialogue(turns: Int, labels: Int, speakers: [String], seed: UInt64) -> [DialogueTurn] {
    var rng = SplitMix64(seed: seed)
    return (0..<turns).map { _ in
        DialogueTurn(speaker: speakers[Int.random(in: 0..<speakers.count, using: &rng)],
                     logits: (0..<labels).map { _ in Double.random(in: -3...3, using: &rng) })
    }
}

@Suite("Parameters and input validation")
struct ValidationTests {
    @Test(arguments: [0.0, 1.0, -0.1, 1.5, Double.nan, Double.infinity])
    func invalidP0(_ p0: Double) {
        let error = #expect(throws: DEDError.self) { try DEDParameters(p0: p0) }
        #expect(error?.reason == .invalidParameter)
        #expect(error?.code == "invalid_parameter")
    }

    @Test(arguments: [0.0, -1.0, Double.nan, Double.infinity])
    func invalidAlpha(_ alpha: Double) {
        let error = #expect(throws: DEDError.self) { try DEDParameters(p0: 0.3, alpha: alpha) }
        #expect(error?.reason == .invalidParameter)
    }

    @Test(arguments: [0, -5])
    func invalidBeam(_ beam: Int) {
        let error = #expect(throws: DEDError.self) { try DEDParameters(p0: 0.3, beamWidth: beam) }
        #expect(error?.reason == .invalidParameter)
    }

    @Test func defaults() throws {
        let p = try DEDParameters(p0: 0.5)
        #expect(p.alpha == 1 && p.beamWidth == 5 && p.emissionScale == .identity)
    }

    /// `emission_scale` in a package's `ded` section: optional (identity), per modality mix,
    /// positive and finite; the factor a turn gets follows its modalities.
    @Test func emissionScaleDecodesAndValidates() throws {
        let plain = try JSONDecoder().decode(DEDParameters.self, from: Data(#"{"p0": 0.2, "alpha": 1, "beam": 5}"#.utf8))
        #expect(plain.emissionScale == .identity)
        let json = #"{"p0": 0.2, "alpha": 1, "beam": 5, "emission_scale": {"text": 1, "audio": 8, "both": 2}}"#
        let p = try JSONDecoder().decode(DEDParameters.self, from: Data(json.utf8))
        #expect(p.emissionScale.factor(hasAudio: true, hasText: false) == 8)
        #expect(p.emissionScale.factor(hasAudio: true, hasText: true) == 2)
        #expect(p.emissionScale.factor(hasAudio: false, hasText: true) == 1)
        let again = try JSONDecoder().decode(DEDParameters.self, from: JSONEncoder().encode(p))
        #expect(again == p)
        for bad in ["0", "-1", "1e9"] {
            let text = #"{"p0": 0.2, "alpha": 1, "beam": 5, "emission_scale": {"text": 1, "audio": "# + bad + #", "both": 1}}"#
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(DEDParameters.self, from: Data(text.utf8)) }
        }
        // A large factor makes DED follow the classifier: each turn's argmax.
        let dialogue = randomDialogue(turns: 30, labels: 4, speakers: ["a", "b"], seed: 11)
        let sharp = try OfflineDecoder.decode(dialogue.map { DialogueTurn(speaker: $0.speaker, logits: $0.logits, scale: 1000) },
                                              parameters: params(0.2), labelCount: 4, repeatTwice: true)
        #expect(sharp == dialogue.map { t in t.logits.indices.max { t.logits[$0] < t.logits[$1] }! })
    }

    @Test func invalidLabelCount() throws {
        let error = #expect(throws: DEDError.self) { try OnlineDecoder(labelCount: 0, parameters: params()) }
        #expect(error?.reason == .invalidParameter)
        #expect(throws: DEDError.self) {
            try OfflineDecoder.decode([], parameters: params(), labelCount: 0, repeatTwice: true)
        }
    }

    @Test func wrongLogitCountLeavesDecoderUnchanged() throws {
        var decoder = try OnlineDecoder(labelCount: 4, parameters: params())
        try decoder.append(DialogueTurn(speaker: "F", logits: [1, 2, 3, 4]))
        let before = decoder
        for bad in [[1.0, 2, 3], [1.0, 2, 3, 4, 5], []] {
            let error = #expect(throws: DEDError.self) {
                try decoder.append(DialogueTurn(speaker: "new", logits: bad))
            }
            #expect(error?.reason == .labelCountMismatch)
            #expect(error?.code == "label_count_mismatch")
        }
        #expect(decoder == before)
        #expect(decoder.turnCount == 1)
    }

    @Test(arguments: [Double.nan, Double.infinity, -Double.infinity])
    func nonFiniteLogits(_ bad: Double) throws {
        var decoder = try OnlineDecoder(labelCount: 3, parameters: params())
        let error = #expect(throws: DEDError.self) {
            try decoder.append(DialogueTurn(speaker: "F", logits: [0, bad, 1]))
        }
        #expect(error?.reason == .nonFiniteLogits)
        #expect(decoder.turnCount == 0)
        let offline = #expect(throws: DEDError.self) {
            try OfflineDecoder.decode([DialogueTurn(speaker: "F", logits: [0, 0, 0]),
                                       DialogueTurn(speaker: "M", logits: [bad, 0, 0])],
                                      parameters: params(), labelCount: 3, repeatTwice: true)
        }
        #expect(offline?.reason == .nonFiniteLogits)
        #expect(offline?.message.contains("index 1") == true)
    }
}

@Suite("Decoding behaviour")
struct DecodingTests {
    /// Scores worked out by hand from the equations in Docs/DED.md.
    @Test func handComputedScores() throws {
        let p0 = 0.2, alpha = 1.0
        var decoder = try OnlineDecoder(labelCount: 2, parameters: params(p0, alpha: alpha, beam: 4))
        // Turn 1 (F): equal logits -> log 0.5 each; first turn of the dialogue: prior log 1 = 0.
        // Tie: label 0 comes first in enumeration order.
        #expect(try decoder.append(DialogueTurn(speaker: "F", logits: [0, 0])) == [0])
        #expect(decoder.bestScore == log(0.5))
        // Turn 2 (M, first turn of M): strong evidence for label 1.
        // [0,1]: log p(1) + log(alpha/(N+alpha)) = log p(1) + log(1/2).
        let lp1 = 5 - (5 + log(1 + exp(-5.0)))
        #expect(try decoder.append(DialogueTurn(speaker: "M", logits: [0, 5])) == [0, 1])
        #expect(abs(decoder.bestScore - (log(0.5) + lp1 + log(0.5))) < 1e-12)
        // Turn 3 (F again): equal logits. Staying in 0 costs log(1-p0) = log 0.8; shifting to
        // label 1 (entered once, N = 2) costs log(p0) + log(1) - log(3).
        #expect(try decoder.append(DialogueTurn(speaker: "F", logits: [0, 0])) == [0, 1, 0])
        #expect(abs(decoder.bestScore - (log(0.5) + lp1 + log(0.5) + log(0.5) + log(0.8))) < 1e-12)
    }

    @Test func emptyDialogue() throws {
        let decoder = try OnlineDecoder(labelCount: 4, parameters: params())
        #expect(decoder.bestPath == [])
        #expect(decoder.turnCount == 0)
        #expect(decoder.bestScore == 0)
        for twice in [false, true] {
            #expect(try OfflineDecoder.decode([], parameters: params(), labelCount: 4, repeatTwice: twice) == [])
        }
    }

    @Test func singleSpeakerSticksWithSmallP0() throws {
        // One speaker, low shift probability: weak evidence for a change is overruled.
        let turns = [[3.0, 0, 0, 0], [0.4, 0.6, 0, 0], [3.0, 0, 0, 0]].map {
            DialogueTurn(speaker: "solo", logits: $0)
        }
        let sticky = try OfflineDecoder.decode(turns, parameters: params(0.01), labelCount: 4, repeatTwice: false)
        #expect(sticky == [0, 0, 0])
        // With a high shift probability, DED follows the classifier.
        let jumpy = try OfflineDecoder.decode(turns, parameters: params(0.9), labelCount: 4, repeatTwice: false)
        #expect(jumpy == [0, 1, 0])
    }

    @Test func speakerIdsAreOpaqueStrings() throws {
        let turns = randomDialogue(turns: 40, labels: 4, speakers: ["a", "b", "c"], seed: 7)
        let rename = ["a": "", "b": "🙂 client \"42\"", "c": "a"]
        let renamed = turns.map { DialogueTurn(speaker: rename[$0.speaker] ?? "?", logits: $0.logits) }
        for beam in [1, 5, 10] {
            let p = try params(0.3, beam: beam)
            #expect(try OfflineDecoder.decode(turns, parameters: p, labelCount: 4, repeatTwice: true)
                    == OfflineDecoder.decode(renamed, parameters: p, labelCount: 4, repeatTwice: true))
        }
    }

    @Test func offlineMatchesOnlineAndRepeatTwiceDefinition() throws {
        let turns = randomDialogue(turns: 25, labels: 4, speakers: ["F", "M"], seed: 11)
        let p = try params(0.25, alpha: 2, beam: 5)
        var online = try OnlineDecoder(labelCount: 4, parameters: p)
        var last: [Int] = []
        for turn in turns { last = try online.append(turn) }
        #expect(try OfflineDecoder.decode(turns, parameters: p, labelCount: 4, repeatTwice: false) == last)
        for turn in turns { last = try online.append(turn) }
        #expect(try OfflineDecoder.decode(turns, parameters: p, labelCount: 4, repeatTwice: true)
                == Array(last.suffix(turns.count)))
    }

    @Test func beamOfOneIsGreedyOnFirstTurn() throws {
        var decoder = try OnlineDecoder(labelCount: 3, parameters: params(beam: 1))
        #expect(try decoder.append(DialogueTurn(speaker: "F", logits: [0, 2, 1])) == [1])
    }
}

@Suite("Snapshots")
struct SnapshotTests {
    @Test func codableRoundTripContinuesIdentically() throws {
        let turns = randomDialogue(turns: 60, labels: 4, speakers: ["agent", "caller", "Zoë"], seed: 3)
        for beam in [1, 5, 10] {
            var decoder = try OnlineDecoder(labelCount: 4, parameters: params(0.3, beam: beam))
            for turn in turns[..<30] { try decoder.append(turn) }
            let data = try JSONEncoder().encode(decoder)
            var restored = try JSONDecoder().decode(OnlineDecoder.self, from: data)
            #expect(restored == decoder)
            #expect(restored.bestPath == decoder.bestPath)
            for turn in turns[30...] {
                #expect(try restored.append(turn) == decoder.append(turn))
            }
            #expect(restored.bestScore == decoder.bestScore)
        }
    }

    @Test func snapshotOfFreshDecoder() throws {
        let decoder = try OnlineDecoder(labelCount: 4, parameters: params())
        let restored = try JSONDecoder().decode(OnlineDecoder.self, from: JSONEncoder().encode(decoder))
        #expect(restored == decoder)
    }

    @Test func negativeInfiniteScoresSurviveJSON() throws {
        // Extreme but finite logits give log-probabilities of -infinity.
        var decoder = try OnlineDecoder(labelCount: 3, parameters: params(beam: 3))
        try decoder.append(DialogueTurn(speaker: "F", logits: [1e308, -1e308, -1e308]))
        let data = try JSONEncoder().encode(decoder)
        #expect(String(decoding: data, as: UTF8.self).contains("-inf"))
        var restored = try JSONDecoder().decode(OnlineDecoder.self, from: data)
        #expect(restored == decoder)
        let next = DialogueTurn(speaker: "M", logits: [0, 1, 2])
        #expect(try restored.append(next) == decoder.append(next))
    }

    @Test func corruptedSnapshotsAreRejected() throws {
        var decoder = try OnlineDecoder(labelCount: 4, parameters: params())
        for turn in randomDialogue(turns: 5, labels: 4, speakers: ["F", "M"], seed: 1) {
            try decoder.append(turn)
        }
        let data = try JSONEncoder().encode(decoder)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let edits: [(String, Any)] = [
            ("choices", [[0], [99]]),              // back-pointer out of range
            ("labelCount", 0),
            ("labelCount", Int.max),
            ("formatVersion", 2),
            ("speakers", ["F", "F"]),
            ("parameters", ["p0": 1.5, "alpha": 1, "beam": 5]),
            ("hypotheses", [["score": 0, "lastLabels": [9], "counts": [1, 0, 0, 0]]]),
            ("hypotheses", [["score": 0, "lastLabels": [0], "counts": [-1, 0, 0, 0]]]),
        ]
        for (key, value) in edits {
            var edited = object
            edited[key] = value
            let bytes = try JSONSerialization.data(withJSONObject: edited)
            #expect(throws: DecodingError.self, "\(key)") {
                try JSONDecoder().decode(OnlineDecoder.self, from: bytes)
            }
        }
    }

    @Test func isSendable() async throws {
        var decoder = try OnlineDecoder(labelCount: 2, parameters: params())
        try decoder.append(DialogueTurn(speaker: "F", logits: [0, 1]))
        let copy = decoder
        let path = await Task.detached { copy.bestPath }.value
        #expect(path == [1])
    }
}

@Suite("Performance")
struct PerformanceTests {
    /// B = 10, L = 4, T = 500: must stay well under a millisecond per appended turn.
    @Test func appendIsFast() throws {
        let turns = randomDialogue(turns: 500, labels: 4, speakers: ["F", "M"], seed: 99)
        var decoder = try OnlineDecoder(labelCount: 4, parameters: params(0.3, beam: 10))
        let clock = ContinuousClock()
        var worst = Duration.zero
        let total = try clock.measure {
            for turn in turns {
                let start = clock.now
                _ = try decoder.append(turn)
                worst = max(worst, clock.now - start)
            }
        }
        let perTurn = total / turns.count
        print("DED append, B=10 L=4 T=500: \(perTurn) per turn on average, worst \(worst)")
        #expect(perTurn < .milliseconds(1))
    }
}
