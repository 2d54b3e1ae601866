import ErrorVocabulary

/// An error from the Dialogical Emotion Decoder, with a stable machine-readable code.
///
/// Every failure caused by caller-supplied data (parameters, logits, labelled dialogues,
/// metric inputs) is reported with one of these instead of a crash, so a server can map the
/// ``code`` straight to a JSON error response.
public struct DEDError: CodedError, Equatable {
    /// Stable error codes; the raw values are part of the public contract.
    public enum Code: String, Sendable, CaseIterable {
        /// p0 not in (0, 1), alpha not a positive finite number, beam width < 1, label count < 1.
        case invalidParameter = "invalid_parameter"
        /// A turn's logits do not have exactly one value per label.
        case labelCountMismatch = "label_count_mismatch"
        /// A turn's logits contain NaN or an infinity.
        case nonFiniteLogits = "non_finite_logits"
        /// p0 estimation found no pair of consecutive labelled turns of one speaker.
        case noTransitionPairs = "no_transition_pairs"
        /// Metric inputs (gold and predicted labels) differ in length.
        case lengthMismatch = "length_mismatch"
        /// Metric inputs are empty.
        case emptyInput = "empty_input"
    }

    /// Why, as a case of the stable codes.
    public let reason: Code
    /// A human-readable explanation (not stable; for logs and error messages).
    public let message: String

    public init(_ code: Code, _ message: String) {
        reason = code
        self.message = message
    }

    public var code: String { reason.rawValue }

    /// Internal: the service feeds the decoder only its model's parameters and outputs (a tool
    /// that feeds it a user's files, as the CLI does, reports these as input errors itself).
    public var kind: ErrorKind { .internal }
}
