import ModelPackage
import Tokenizers

/// The `tokenizer` object of a package's `text` section.
public struct TokenizerSection: Codable, Sendable, Equatable {
    public var type: String
    public var vocab: String
    public var merges: String?
    public var lowercase: Bool?
    public var maxLength: Int

    enum CodingKeys: String, CodingKey { case type, vocab, merges, lowercase, maxLength = "max_length" }
}

/// Loads the tokenizer a package's `text` section (or `section`) names: `tokenizer.type`
/// `byte_level_bpe` (files `vocab` and `merges`) or `wordpiece` (`vocab`, `lowercase`), files
/// relative to the package, truncating at `max_length` tokens.
public func loadTokenizer(package: ModelPackage, section: String = "text") throws -> any Tokenizer {
    struct TextSection: Decodable { let tokenizer: TokenizerSection }
    let tokenizer = try package.section(section, as: TextSection.self).tokenizer
    let files: TokenizerFiles
    switch tokenizer.type {
    case "byte_level_bpe":
        guard let merges = tokenizer.merges else {
            throw TextEncoderError(code: "invalid_configuration",
                                   message: "\(section).tokenizer: 'merges' is required for byte_level_bpe")
        }
        files = .byteLevelBPE(vocabulary: try package.file(tokenizer.vocab, key: "\(section).tokenizer.vocab"),
                              merges: try package.file(merges, key: "\(section).tokenizer.merges"))
    case "wordpiece":
        files = .wordPiece(vocabulary: try package.file(tokenizer.vocab, key: "\(section).tokenizer.vocab"),
                           lowercase: tokenizer.lowercase ?? true)
    default:
        throw TextEncoderError(code: "invalid_configuration",
                               message: "\(section).tokenizer: unknown type '\(tokenizer.type)' (byte_level_bpe or wordpiece)")
    }
    return try Tokenizers.loadTokenizer(files, maxLength: tokenizer.maxLength)
}

/// The text half of the encoder: a transcript to one L2-normalised embedding, through the
/// tokenizer and the text tower (transformer + pooling + projection) of one package. Thread-safe.
public final class TextEmbedder: Sendable {
    public let tokenizer: any Tokenizer
    public let encoder: TextEncoder

    public init(tokenizer: any Tokenizer, encoder: TextEncoder) {
        self.tokenizer = tokenizer
        self.encoder = encoder
    }

    /// The tower and the tokenizer of a package's `text` section.
    public convenience init(package: ModelPackage) throws {
        let encoder = try TextEncoder(package: package)
        self.init(tokenizer: try loadTokenizer(package: package), encoder: encoder)
    }

    /// Size of the embedding.
    public var dimension: Int { encoder.outputSize }

    /// The embedding of a transcript (truncated as the tokenizer truncates).
    public func embed(_ transcript: String) throws -> [Float] {
        try encoder.embed(tokenizer.encode(transcript))
    }

    /// The embeddings of several transcripts in one batch of the tower (the turns of different
    /// sessions taken together); each equals `embed(_:)` of it.
    public func embed(batch transcripts: [String]) throws -> [[Float]] {
        try encoder.embed(batch: transcripts.map { tokenizer.encode($0) })
    }
}
