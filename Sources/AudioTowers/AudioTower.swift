import ModelPackage
import ErrorVocabulary

/// Errors of the audio towers and of ``AudioEmbedder``, with stable codes: `invalid_configuration`
/// and `invalid_features` (internal: the service makes the features itself), and `audio_too_short`
/// (the client's clip). The front end's `AudioError`s pass through the embedder unchanged.
public struct AudioTowerError: CodedError, Equatable {
    public let code: String
    public let message: String
    public let kind: ErrorKind
    public init(code: String, message: String, kind: ErrorKind = .internal) {
        self.code = code
        self.message = message
        self.kind = kind
    }

    /// The frame count of one window's features (`frames x melBins` values, frame-major), or
    /// `invalid_features` when they are not a whole, non-zero number of frames, are more than
    /// `maxFrames` (`limit` says what bounds them) or hold a non-finite value.
    static func frames(of features: [Float], window: Int, melBins: Int, maxFrames: Int, limit: String) throws -> Int {
        guard !features.isEmpty, features.count % melBins == 0 else {
            throw AudioTowerError(code: "invalid_features", message:
                "window \(window): \(features.count) values is not a whole, non-zero number of \(melBins)-bin frames")
        }
        let t = features.count / melBins
        guard t <= maxFrames else {
            throw AudioTowerError(code: "invalid_features", message:
                "window \(window): \(t) frames, at most \(maxFrames) fit \(limit)")
        }
        guard features.allSatisfy(\.isFinite) else {
            throw AudioTowerError(code: "invalid_features", message: "window \(window): non-finite value")
        }
        return t
    }
}

/// An audio tower: one window's log-mel features (`frames x melBins`, frame-major) in, an
/// L2-normalised embedding out. CLAP's HTSAT (``CLAPAudioEncoder``) and a frozen Whisper encoder
/// with learned pooling (``WhisperAudioTower``) both serve; `model.json` names the kind
/// (`audio.tower`), and everything after the embedding is the same code.
public protocol AudioTower: Sendable {
    /// Mel bins each frame must have.
    var melBins: Int { get }
    /// Size of the embedding.
    var embeddingSize: Int { get }
    /// The embeddings of several windows.
    func embed(batch: [[Float]]) throws -> [[Float]]
}

/// Loads the audio tower a package's `audio.tower` names (absent: HTSAT).
public func loadAudioTower(package: ModelPackage, threads: Int? = nil) throws -> any AudioTower {
    struct Kind: Decodable { let tower: AudioTowerKind? }
    switch try package.section("audio", as: Kind.self).tower ?? .htsat {
    case .htsat: return try CLAPAudioEncoder(package: package)
    case .whisper: return try WhisperAudioTower(package: package, threads: threads)
    }
}

extension CLAPAudioEncoder: AudioTower {
    public var melBins: Int { configuration.numMelBins }
    public var embeddingSize: Int { configuration.projectionDim }
}
