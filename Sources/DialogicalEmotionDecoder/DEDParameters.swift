/// The decoder's hyper-parameters, validated at construction.
///
/// - `p0`: probability that a speaker's emotion shifts between two consecutive turns of that
///   speaker; estimate it on training dialogues with ``TransitionEstimator/estimateP0(dialogues:labels:)``.
/// - `alpha`: concentration of the Chinese-restaurant-process prior over emotion states
///   (larger values make entering a state not yet used in the dialogue cheaper).
/// - `beamWidth`: number of hypotheses kept after each turn.
public struct DEDParameters: Equatable, Sendable, Codable {
    public let p0: Double
    public let alpha: Double
    public let beamWidth: Int

    /// Concentration used when none is given (the original DED setting).
    public static let defaultAlpha = 1.0
    /// Beam width used when none is given (the original DED setting).
    public static let defaultBeamWidth = 5

    /// Throws `invalid_parameter` unless 0 < p0 < 1, alpha is positive and finite, beamWidth >= 1.
    public init(p0: Double, alpha: Double = DEDParameters.defaultAlpha,
                beamWidth: Int = DEDParameters.defaultBeamWidth) throws {
        guard p0 > 0, p0 < 1 else {
            throw DEDError(.invalidParameter, "p0 must be in (0, 1), got \(p0)")
        }
        guard alpha > 0, alpha.isFinite else {
            throw DEDError(.invalidParameter, "alpha must be a positive finite number, got \(alpha)")
        }
        guard beamWidth >= 1 else {
            throw DEDError(.invalidParameter, "beam width must be at least 1, got \(beamWidth)")
        }
        self.p0 = p0
        self.alpha = alpha
        self.beamWidth = beamWidth
    }

    /// JSON keys are those of a model package's `ded` section: `{"p0": .., "alpha": .., "beam": ..}`.
    private enum CodingKeys: String, CodingKey { case p0, alpha, beamWidth = "beam" }

    /// Decoding re-validates, so a corrupted snapshot cannot smuggle in invalid parameters.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(p0: c.decode(Double.self, forKey: .p0),
                          alpha: c.decode(Double.self, forKey: .alpha),
                          beamWidth: c.decode(Int.self, forKey: .beamWidth))
        } catch let error as DEDError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: error.description))
        }
    }
}

/// One dialogue turn as the decoder sees it: who spoke, and the classifier's logits.
///
/// Logits are `Double` (float64) because the decoder works in float64 throughout; they are raw
/// classifier outputs, one per label in the model's label order, and are turned into
/// log-probabilities with a log-softmax before scoring (DED is never fed raw logits).
/// The speaker id is any string; only equality matters.
public struct DialogueTurn: Equatable, Sendable, Codable {
    public var speaker: String
    public var logits: [Double]

    public init(speaker: String, logits: [Double]) {
        self.speaker = speaker
        self.logits = logits
    }
}
