import AudioFrontEnd
import Foundation
import ModelPackage
import Numerics
import Tokenizers

/// Errors of the whole encoder (audio bytes or transcript in, embedding out), with the stable
/// code of the stage that failed (`unreadable_audio`, `audio_too_long`, ...).
public struct CLAPEncoderError: Error, CustomStringConvertible, Sendable, Equatable {
    public let code: String
    public let message: String
    public init(code: String, message: String) { self.code = code; self.message = message }
    public var description: String { "\(code): \(message)" }
}

/// The `tokenizer` object of a package's `text` section.
public struct TokenizerSection: Codable, Sendable, Equatable {
    public var type: String
    public var vocab: String
    public var merges: String?
    public var lowercase: Bool?
    public var maxLength: Int

    enum CodingKeys: String, CodingKey { case type, vocab, merges, lowercase, maxLength = "max_length" }
}

/// The encoder half of the pipeline: a turn's encoded audio and its transcript to two
/// L2-normalised embeddings, by the same code for the paper's CLAP and the default model.
///
/// Audio: decode -> mono -> resample -> log-mel windows (AudioFrontEnd) -> the audio tower
/// (HTSAT + projection, or Whisper + pooling + projection) per window -> mean of the window
/// embeddings, renormalised (a clip longer than the window is
/// embedded window by window, deterministically). Text: tokenizer -> transformer + pooling +
/// projection. Thread-safe.
public final class CLAPEncoder: Sendable {
    public let frontEnd: AudioFrontEnd
    public let audio: any AudioTower
    public let text: TextEncoder
    public let tokenizer: any Tokenizer

    public init(frontEnd: AudioFrontEnd, audio: any AudioTower, text: TextEncoder, tokenizer: any Tokenizer) throws {
        guard frontEnd.configuration.nMels == audio.melBins else {
            throw CLAPEncoderError(code: "invalid_configuration",
                                   message: "audio: n_mels \(frontEnd.configuration.nMels) != the tower's mel bins \(audio.melBins)")
        }
        guard audio.embeddingSize == text.outputSize else {
            throw CLAPEncoderError(code: "invalid_configuration",
                                   message: "audio embeddings (\(audio.embeddingSize)) and text embeddings (\(text.outputSize)) differ in size")
        }
        self.frontEnd = frontEnd
        self.audio = audio
        self.text = text
        self.tokenizer = tokenizer
    }

    /// Builds every part from a package: `audio` section (front-end and HTSAT sizes), `text`
    /// section (tower, projection and `tokenizer` files relative to the package).
    /// `maxAudioSeconds`: longer clips are refused (`audio_too_long`) from their header.
    public convenience init(package: ModelPackage, maxAudioSeconds: Double = 120) throws {
        let frontEnd = try AudioFrontEnd(configuration: package.section("audio", as: AudioFrontEndConfiguration.self),
                                         decodingOptions: AudioDecodingOptions(maxDurationSeconds: maxAudioSeconds))
        let audio = try loadAudioTower(package: package)
        let text = try TextEncoder(package: package)
        struct TextSection: Decodable { let tokenizer: TokenizerSection }
        let section = try package.section("text", as: TextSection.self).tokenizer
        let files: TokenizerFiles
        switch section.type {
        case "byte_level_bpe":
            guard let merges = section.merges else {
                throw CLAPEncoderError(code: "invalid_configuration", message: "text.tokenizer: 'merges' is required for byte_level_bpe")
            }
            files = .byteLevelBPE(vocabulary: try package.file(section.vocab, key: "text.tokenizer.vocab"),
                                  merges: try package.file(merges, key: "text.tokenizer.merges"))
        case "wordpiece":
            files = .wordPiece(vocabulary: try package.file(section.vocab, key: "text.tokenizer.vocab"),
                               lowercase: section.lowercase ?? true)
        default:
            throw CLAPEncoderError(code: "invalid_configuration",
                                   message: "text.tokenizer: unknown type '\(section.type)' (byte_level_bpe or wordpiece)")
        }
        try self.init(frontEnd: frontEnd, audio: audio, text: text,
                      tokenizer: loadTokenizer(files, maxLength: section.maxLength))
    }

    /// Size of both embeddings.
    public var dimension: Int { text.outputSize }

    /// The embedding of an encoded clip (WAV, FLAC, ...).
    public func embed(audio data: Data) throws -> [Float] {
        let features: AudioFeatures
        do {
            features = try frontEnd.features(encoded: data)
        } catch let error as AudioError {
            throw CLAPEncoderError(code: error.code.rawValue, message: error.message)
        }
        return try embed(features)
    }

    /// The embedding of a clip given as samples at any rate.
    public func embed(samples: [Float], sampleRate: Int) throws -> [Float] {
        let features: AudioFeatures
        do {
            features = try frontEnd.features(samples: samples, sampleRate: sampleRate)
        } catch let error as AudioError {
            throw CLAPEncoderError(code: error.code.rawValue, message: error.message)
        }
        return try embed(features)
    }

    func embed(_ features: AudioFeatures) throws -> [Float] {
        // Unpadded windows (Whisper) of a clip shorter than one hop have no frame to encode.
        guard features.windows.allSatisfy({ $0.features.frameCount > 0 }) else {
            throw CLAPEncoderError(code: "audio_too_short", message:
                "the clip is shorter than one analysis frame (\(frontEnd.configuration.hopLength) samples at \(frontEnd.configuration.sampleRate) Hz)")
        }
        let windows = try audio.embed(batch: features.windows.map(\.features.values))
        guard var mean = windows.first else {
            throw CLAPEncoderError(code: "empty_audio", message: "the clip has no audio window")
        }
        if windows.count > 1 {
            for w in windows.dropFirst() { for i in mean.indices { mean[i] += w[i] } }
            let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 0 { mean = mean.map { $0 / norm } }
        }
        return mean
    }

    /// The embedding of a transcript (truncated as the tokenizer truncates).
    public func embed(text transcript: String) throws -> [Float] {
        try text.embed(tokenizer.encode(transcript))
    }
}
