/// The decoder's hyper-parameters, validated at construction.
///
/// - `p0`: probability that a speaker's emotion shifts between two consecutive turns of that
///   speaker; estimate it on training dialogues with ``TransitionEstimator/estimateP0(dialogues:labels:)``.
/// - `alpha`: concentration of the Chinese-restaurant-process prior over emotion states
///   (larger values make entering a state not yet used in the dialogue cheaper).
/// - `beamWidth`: number of hypotheses kept after each turn.
/// - `emissionScale`: per modality mix, a factor on the classifier's logits before the
///   log-softmax (an inverse temperature): how far DED trusts a turn's emission against the
///   transition prior. A classifier that is sure and right where it hears only audio is decoded
///   with a larger factor than one that reads text; the build fits them on validation.
public struct DEDParameters: Equatable, Sendable, Codable {
    /// Logit factors per modality mix (`{"text": .., "audio": .., "both": ..}`; 1 = the logits as they are).
    public struct EmissionScale: Equatable, Sendable, Codable {
        public var text: Double
        public var audio: Double
        public var both: Double

        public init(text: Double = 1, audio: Double = 1, both: Double = 1) {
            self.text = text
            self.audio = audio
            self.both = both
        }

        public static let identity = EmissionScale()

        /// The factor for a turn with or without audio and text (a turn has at least one).
        public func factor(hasAudio: Bool, hasText: Bool) -> Double {
            hasAudio ? (hasText ? both : audio) : text
        }

        var values: [Double] { [text, audio, both] }
    }

    public let p0: Double
    public let alpha: Double
    public let beamWidth: Int
    public let emissionScale: EmissionScale

    /// Concentration used when none is given (the original DED setting).
    public static let defaultAlpha = 1.0
    /// Beam width used when none is given (the original DED setting).
    public static let defaultBeamWidth = 5

    /// Throws `invalid_parameter` unless 0 < p0 < 1, alpha is positive and finite, beamWidth >= 1.
    public init(p0: Double, alpha: Double = DEDParameters.defaultAlpha,
                beamWidth: Int = DEDParameters.defaultBeamWidth, emissionScale: EmissionScale = .identity) throws {
        guard p0 > 0, p0 < 1 else {
            throw DEDError(.invalidParameter, "p0 must be in (0, 1), got \(p0)")
        }
        guard alpha > 0, alpha.isFinite else {
            throw DEDError(.invalidParameter, "alpha must be a positive finite number, got \(alpha)")
        }
        guard beamWidth >= 1 else {
            throw DEDError(.invalidParameter, "beam width must be at least 1, got \(beamWidth)")
        }
        guard emissionScale.values.allSatisfy({ $0 > 0 && $0.isFinite && $0 <= 1000 }) else {
            throw DEDError(.invalidParameter, "emission_scale factors must be in (0, 1000], got \(emissionScale.values)")
        }
        self.p0 = p0
        self.alpha = alpha
        self.beamWidth = beamWidth
        self.emissionScale = emissionScale
    }

    /// JSON keys are those of a model package's `ded` section: `{"p0": .., "alpha": .., "beam": ..}`.
    private enum CodingKeys: String, CodingKey { case p0, alpha, beamWidth = "beam", emissionScale = "emission_scale" }

    /// Decoding re-validates, so a corrupted snapshot cannot smuggle in invalid parameters.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(p0: c.decode(Double.self, forKey: .p0),
                          alpha: c.decode(Double.self, forKey: .alpha),
                          beamWidth: c.decode(Int.self, forKey: .beamWidth),
                          emissionScale: c.decodeIfPresent(EmissionScale.self, forKey: .emissionScale) ?? .identity)
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

    /// A turn whose logits are multiplied by `scale` (``DEDParameters/EmissionScale``) first.
    public init(speaker: String, logits: [Double], scale: Double) {
        self.init(speaker: speaker, logits: scale == 1 ? logits : logits.map { $0 * scale })
    }
}
