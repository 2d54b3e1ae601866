import GatedXLSTM

/// The model a session was built with, stamped into every snapshot and journal: its identity
/// (e.g. the weights' SHA-256) and the sizes a restored session must have. A saved session of
/// another model, or one that breaks the sizes, is skipped at restore instead of crashing a
/// later GET.
public struct SnapshotModel: Sendable, Equatable {
    /// Identity stamp; saved sessions whose stamp differs are skipped.
    public var identity: String
    public var labelCount: Int
    public var embeddingDimension: Int
    public var gateCount: Int

    public init(identity: String, labelCount: Int, embeddingDimension: Int, gateCount: Int = StreamLayout.names.count) {
        self.identity = identity
        self.labelCount = labelCount
        self.embeddingDimension = embeddingDimension
        self.gateCount = gateCount
    }

    /// The stamp of `engine`'s model under `identity` (nil: an identity made of the labels and
    /// sizes alone, for engines not loaded from a package).
    public init(engine: ConversationEngine, identity: String? = nil) {
        let labels = engine.classifier.labels
        let dimension = engine.encoder.dimension
        self.init(identity: identity ?? "unidentified:\(labels.joined(separator: ",")):\(dimension)",
                  labelCount: labels.count, embeddingDimension: dimension)
    }

    /// Why `state` cannot be served by this model (nil: it can): label indices in range, one
    /// decoded label per turn, embedding, logit, probability and gate sizes, finite numbers,
    /// turn indices in order, a decoder over the same labels that has seen every turn.
    public func problem(with state: SessionState) -> String? {
        if state.id.isEmpty { return "empty session id" }
        if state.namespace.isEmpty { return "empty namespace" }
        if state.decoder.labelCount != labelCount {
            return "the decoder has \(state.decoder.labelCount) labels, the model \(labelCount)"
        }
        if state.decoder.turnCount != state.turns.count {
            return "the decoder has seen \(state.decoder.turnCount) turns, the session holds \(state.turns.count)"
        }
        if state.decoded.count != state.turns.count {
            return "\(state.decoded.count) decoded labels for \(state.turns.count) turns"
        }
        if let bad = state.decoded.first(where: { !(0..<labelCount).contains($0) }) {
            return "decoded label \(bad) out of range 0..<\(labelCount)"
        }
        if !state.createdAt.timeIntervalSinceReferenceDate.isFinite || !state.lastActivity.timeIntervalSinceReferenceDate.isFinite {
            return "dates are not finite"
        }
        for (i, turn) in state.turns.enumerated() {
            if let problem = problem(with: turn, at: i) { return "turn \(i): \(problem)" }
        }
        return nil
    }

    /// Why one stored turn (at position `position`) cannot be served (nil: it can).
    public func problem(with turn: StoredTurn, at position: Int) -> String? {
        if turn.index != position { return "index \(turn.index) at position \(position)" }
        if turn.speaker.isEmpty { return "empty speaker" }
        if !(0..<labelCount).contains(turn.label) { return "label \(turn.label) out of range 0..<\(labelCount)" }
        if turn.logits.count != labelCount { return "\(turn.logits.count) logits for \(labelCount) labels" }
        if turn.probabilities.count != labelCount { return "\(turn.probabilities.count) probabilities for \(labelCount) labels" }
        if turn.gates.count != gateCount { return "\(turn.gates.count) gates, the model has \(gateCount)" }
        if turn.audioEmbedding == nil && turn.textEmbedding == nil { return "neither an audio nor a text embedding" }
        for (name, vector) in [("audio", turn.audioEmbedding), ("text", turn.textEmbedding)] {
            guard let values = vector?.values else { continue }
            if values.count != embeddingDimension {
                return "\(name) embedding of \(values.count) values, the model's are \(embeddingDimension)"
            }
            if !values.allSatisfy(\.isFinite) { return "\(name) embedding holds a non-finite number" }
        }
        if !(turn.logits + turn.probabilities + turn.gates).allSatisfy(\.isFinite) {
            return "a logit, probability or gate is not finite"
        }
        if !turn.receivedAt.timeIntervalSinceReferenceDate.isFinite { return "received_at is not finite" }
        return nil
    }
}
