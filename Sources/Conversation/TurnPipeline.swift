import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM

/// The stages every turn goes through: encoder -> stream assembly -> gated classifier -> DED.
///
/// One value serves the engine (session turns and whole-dialogue analyses) and offline evaluation
/// (`emotion evaluate`), so the figures evaluation reports are those of the serving code, run on
/// the caller's threads and without the work queue. Holds no state of its own; thread-safe.
public struct TurnPipeline: @unchecked Sendable {
    public let classifier: GatedXLSTMClassifier
    public let encoder: TurnEncoder
    public let ded: DEDParameters
    /// Turns classified together in one batch of `classify(dialogue:)`.
    public let maxBatch: Int

    public init(classifier: GatedXLSTMClassifier, encoder: TurnEncoder, ded: DEDParameters, maxBatch: Int) {
        self.classifier = classifier
        self.encoder = encoder
        self.ded = ded
        self.maxBatch = max(1, maxBatch)
    }

    /// A turn's embeddings as the service computes them: audio when the turn has audio, text when
    /// its transcript is not blank (a missing modality is nil and reads as zeros in the streams).
    public func embeddings(of turn: TurnInput) throws -> TurnEmbeddings {
        let audio = try turn.audio.map { try encoder.embed(audio: $0) }
        let text = turn.hasTranscript ? try encoder.embed(text: turn.transcript) : nil
        return TurnEmbeddings(speaker: turn.speaker, audio: audio, text: text)
    }

    /// Every turn of a dialogue classified with its context (the streams a session assembles for
    /// it), in batches of `maxBatch` turns.
    public func classify(dialogue history: [TurnEmbeddings]) throws -> [Classification] {
        var classifications: [Classification] = []
        classifications.reserveCapacity(history.count)
        var start = 0
        while start < history.count {
            let end = min(history.count, start + maxBatch)
            classifications += try classify(start..<end, of: history)
            start = end
        }
        return classifications
    }

    /// The turns `range` of a dialogue classified as one batch (each needs only turns before it).
    public func classify(_ range: Range<Int>, of history: [TurnEmbeddings]) throws -> [Classification] {
        try classifier.classify(range.map { StreamAssembler.streams(for: $0, in: history, dimension: encoder.dimension) })
    }

    /// A classified turn as DED sees it: its logits times the emission scale of its modality mix.
    public func decoderTurn(speaker: String, hasAudio: Bool, hasText: Bool, logits: [Float]) -> DialogueTurn {
        DialogueTurn(speaker: speaker, logits: logits.map(Double.init),
                     scale: ded.emissionScale.factor(hasAudio: hasAudio, hasText: hasText))
    }

    func decoderTurns(_ turns: [TurnEmbeddings], _ classifications: [Classification]) -> [DialogueTurn] {
        zip(turns, classifications).map {
            decoderTurn(speaker: $0.0.speaker, hasAudio: $0.0.audio != nil, hasText: $0.0.text != nil, logits: $0.1.logits)
        }
    }

    /// Offline DED over a classified dialogue (repeated twice, keeping the last copy, when
    /// `repeatTwice`): what `analyze` answers.
    public func decodeOffline(_ turns: [TurnEmbeddings], classifications: [Classification], repeatTwice: Bool) throws -> [Int] {
        try OfflineDecoder.decode(decoderTurns(turns, classifications), parameters: ded,
                                  labelCount: classifier.labels.count, repeatTwice: repeatTwice)
    }

    /// Online DED over a classified dialogue, one turn at a time as a session receives them: the
    /// session's decoded sequence after its last turn.
    public func decodeOnline(_ turns: [TurnEmbeddings], classifications: [Classification]) throws -> [Int] {
        var decoder = try OnlineDecoder(labelCount: classifier.labels.count, parameters: ded)
        for turn in decoderTurns(turns, classifications) { try decoder.append(turn) }
        return decoder.bestPath
    }
}
