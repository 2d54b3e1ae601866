import Foundation

/// Turns text into the token ids a transformer text tower reads.
///
/// `encode` returns `[first special] + content + [last special]`, the content truncated so that the
/// whole sequence is at most `maxLength` ids; there is never padding (every id is a real token, so
/// the attention mask is all ones). Encoding never fails and is safe to call concurrently.
public protocol Tokenizer: Sendable {
    /// Longest sequence `encode(_:)` returns, special tokens included (at least 2).
    var maxLength: Int { get }
    /// Number of entries in the vocabulary (the largest id plus one for a dense vocabulary).
    var vocabularySize: Int { get }
    /// Ids of `text`, truncated to `maxLength`.
    func encode(_ text: String) -> [Int]
    /// Ids of `text`, truncated to `maxLength` ids (nil: never truncated).
    func encode(_ text: String, maxLength: Int?) -> [Int]
}

extension Tokenizer {
    public func encode(_ text: String) -> [Int] { encode(text, maxLength: maxLength) }
}

/// The vocabulary files of a tokenizer, as a model package names them.
public enum TokenizerFiles: Sendable, Equatable {
    /// RoBERTa / GPT-2 byte-level BPE (CLAP's text tower): `vocab.json` and `merges.txt`.
    case byteLevelBPE(vocabulary: URL, merges: URL)
    /// BERT WordPiece (e.g. all-MiniLM-L6-v2): `vocab.txt`; `lowercase` for uncased models
    /// (lower-cases and strips accents).
    case wordPiece(vocabulary: URL, lowercase: Bool = true)
}

/// Loads a tokenizer from its files.
///
/// - Parameter maxLength: longest sequence, special tokens included: 77 for CLAP (what laion_clap
///   and the paper use), 256 for all-MiniLM-L6-v2 (its sentence-transformers `max_seq_length`).
/// - Throws: `TokenizerError` with code `tokenizer_file_missing`, `tokenizer_file_malformed` or
///   `tokenizer_invalid_configuration`.
public func loadTokenizer(_ files: TokenizerFiles, maxLength: Int) throws -> any Tokenizer {
    switch files {
    case let .byteLevelBPE(vocabulary, merges):
        return try ByteLevelBPETokenizer(vocabularyURL: vocabulary, mergesURL: merges, maxLength: maxLength)
    case let .wordPiece(vocabulary, lowercase):
        return try WordPieceTokenizer(vocabularyURL: vocabulary, maxLength: maxLength, lowercase: lowercase)
    }
}

/// Reads a whole file, mapping failures to `tokenizer_file_missing`.
func readTokenizerFile(_ url: URL, what: String) throws -> Data {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
        throw TokenizerError.missing(url.path, what: what)
    }
    guard !isDirectory.boolValue else {
        throw TokenizerError.missing(url.path, what: what, detail: "is a directory, not a file")
    }
    do {
        return try Data(contentsOf: url)
    } catch {
        throw TokenizerError.missing(url.path, what: what, detail: "cannot be read: \(error.localizedDescription)")
    }
}

/// Decodes UTF-8 strictly (the standard library's decoder repairs bad bytes; a repaired string
/// no longer round-trips to the same bytes).
func decodeUTF8(_ data: Data, path: String) throws -> String {
    let text = String(decoding: data, as: UTF8.self)
    guard text.utf8.count == data.count, text.utf8.elementsEqual(data) else {
        throw TokenizerError.malformed(path, "not valid UTF-8")
    }
    return text
}

func checkMaxLength(_ maxLength: Int?) throws {
    if let m = maxLength, m < 2 {
        throw TokenizerError.invalid("maxLength \(m) leaves no room for the two special tokens (minimum 2)")
    }
}

/// The lines of a UTF-8 text file as the reference reads them: split at "\n" only, one trailing
/// "\r" removed from each line, no empty last line after a final newline.
func readLines(_ url: URL, what: String) throws -> [String] {
    let data = try readTokenizerFile(url, what: what)
    _ = try decodeUTF8(data, path: url.path)
    var lines: [String] = []
    let bytes = [UInt8](data)
    var start = 0
    for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x0A {
        if i == bytes.count && start == i { break }
        var end = i
        if end > start && bytes[end - 1] == 0x0D { end -= 1 }
        lines.append(String(decoding: bytes[start..<end], as: UTF8.self))
        start = i + 1
    }
    return lines
}
