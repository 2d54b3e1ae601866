import Foundation

/// RoBERTa / GPT-2 byte-level BPE, as CLAP's text tower uses it (`RobertaTokenizer` of
/// `laion/clap-htsat-unfused`, `add_prefix_space` false), identical in ids to the reference
/// (Hugging Face `tokenizers`, which transformers' RobertaTokenizer runs).
///
/// `encode` returns `[<s>] + content + [</s>]`, the content truncated to `maxLength - 2` ids.
/// Pipeline: special tokens written in the text (`<s>`, `</s>`, `<pad>`, `<unk>`, `<mask>`; `<mask>`
/// swallows the whitespace before it) become their ids; the rest is split by the GPT-2 regex; each
/// piece's UTF-8 bytes are mapped to byte-level symbols and merged by rank.
public final class ByteLevelBPETokenizer: Tokenizer {
    /// CLAP's (laion_clap) text length, special tokens included.
    public static let clapMaxLength = 77

    public let maxLength: Int
    public let vocabularySize: Int
    public let bosID: Int
    public let eosID: Int
    public let padID: Int?
    public let unknownID: Int?
    public let maskID: Int?

    private let byteIDs: [Int32]  // vocabulary id of each byte's symbol, -1 if absent
    private let merges: MergeTable
    private let specials: AddedTokenMatcher

    /// Loads `vocab.json` (an object from token to id) and `merges.txt` (an optional `#version`
    /// line, then one merge a line: two tokens separated by one space, highest priority first).
    public convenience init(vocabularyURL: URL, mergesURL: URL, maxLength: Int = ByteLevelBPETokenizer.clapMaxLength) throws {
        try checkMaxLength(maxLength)
        let vocabulary = try Self.readVocabulary(vocabularyURL)
        let merges = try Self.readMerges(mergesURL)
        try self.init(vocabulary: vocabulary, merges: merges.pairs, maxLength: maxLength,
                      vocabularyPath: vocabularyURL.path, mergeSource: (mergesURL.path, merges.lines))
    }

    /// Builds from an in-memory vocabulary and merge list (in priority order).
    public convenience init(vocabulary: [String: Int], merges: [(String, String)], maxLength: Int = ByteLevelBPETokenizer.clapMaxLength) throws {
        for (token, id) in vocabulary where id < 0 || id >= Int(Int32.max) {
            throw TokenizerError.malformed("vocabulary", "token '\(token)' has id \(id), outside 0..<\(Int32.max)")
        }
        try self.init(vocabulary: vocabulary, merges: merges, maxLength: maxLength,
                      vocabularyPath: "vocabulary", mergeSource: nil)
    }

    private init(vocabulary: [String: Int], merges: [(String, String)], maxLength: Int,
                 vocabularyPath: String, mergeSource: (path: String, lines: [Int])?) throws {
        try checkMaxLength(maxLength)
        let source = mergeSource?.path ?? "merges"
        guard let bos = vocabulary["<s>"], let eos = vocabulary["</s>"] else {
            throw TokenizerError.malformed(vocabularyPath, "the vocabulary has no '<s>' or no '</s>' token")
        }
        self.maxLength = maxLength
        self.vocabularySize = (vocabulary.values.max() ?? -1) + 1
        bosID = bos
        eosID = eos
        padID = vocabulary["<pad>"]
        unknownID = vocabulary["<unk>"]
        maskID = vocabulary["<mask>"]
        byteIDs = ByteLevelAlphabet.characters.map { c in vocabulary[String(c)].map { Int32($0) } ?? -1 }

        var table = MergeTable(capacity: merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            let line = mergeSource.map { String($0.lines[rank]) } ?? String(rank + 1)
            guard let ia = vocabulary[a], let ib = vocabulary[b] else {
                throw TokenizerError.malformed(source, "line \(line): merge '\(a) \(b)' uses a token missing from the vocabulary")
            }
            guard let merged = vocabulary[a + b] else {
                throw TokenizerError.malformed(source, "line \(line): merged token '\(a + b)' is missing from the vocabulary")
            }
            table.set(Int32(ia), Int32(ib), rank: Int32(rank), merged: Int32(merged))
        }
        self.merges = table

        var added: [AddedToken] = []
        for (name, id) in [("<s>", bos), ("</s>", eos), ("<pad>", padID), ("<unk>", unknownID), ("<mask>", maskID)] {
            guard let id else { continue }
            added.append(AddedToken(content: Array(name.unicodeScalars), id: id, lstrip: name == "<mask>"))
        }
        specials = AddedTokenMatcher(added)
        UnicodeClasses.prepare()
    }

    public func encode(_ text: String, maxLength: Int?) -> [Int] {
        let limit = maxLength.map { max($0, 2) - 2 } ?? Int.max
        var out: [Int] = [bosID]
        out.reserveCapacity(min(limit, text.utf8.count) + 2)
        let scalars = Array(text.unicodeScalars)
        var classes: [GPT2Class] = []
        classes.reserveCapacity(scalars.count)
        for s in scalars { classes.append(UnicodeClasses.gpt2Class(s)) }
        var merger = BPEMerger()
        var symbols: [Int32] = []
        var content = 0  // ids after <s>
        segments: for segment in specials.split(scalars) {
            if content >= limit { break }
            switch segment {
            case let .special(id):
                out.append(id)
                content += 1
            case let .text(range):
                GPT2PreTokenizer.forEachPiece(scalars, classes: classes, in: range) { piece in
                    symbols.removeAll(keepingCapacity: true)
                    for i in piece { appendByteSymbols(of: scalars[i], to: &symbols) }
                    merger.merge(symbols, merges: merges, into: &out)
                    content = out.count - 1
                    return content < limit
                }
            }
        }
        if out.count - 1 > limit { out.removeSubrange((limit + 1)...) }
        out.append(eosID)
        return out
    }

    @inline(__always)
    private func appendByteSymbols(of scalar: Unicode.Scalar, to symbols: inout [Int32]) {
        let v = scalar.value
        @inline(__always) func add(_ byte: UInt32) {
            let id = byteIDs[Int(byte)]
            if id >= 0 { symbols.append(id) }  // a byte missing from the vocabulary is dropped, as the reference does
        }
        if v < 0x80 {
            add(v)
        } else if v < 0x800 {
            add(0xC0 | (v >> 6)); add(0x80 | (v & 0x3F))
        } else if v < 0x10000 {
            add(0xE0 | (v >> 12)); add(0x80 | ((v >> 6) & 0x3F)); add(0x80 | (v & 0x3F))
        } else {
            add(0xF0 | (v >> 18)); add(0x80 | ((v >> 12) & 0x3F)); add(0x80 | ((v >> 6) & 0x3F)); add(0x80 | (v & 0x3F))
        }
    }

    // MARK: Files

    static func readVocabulary(_ url: URL) throws -> [String: Int] {
        let data = try readTokenizerFile(url, what: "BPE vocabulary")
        let vocabulary: [String: Int]
        do {
            vocabulary = try JSONDecoder().decode([String: Int].self, from: data)
        } catch {
            throw TokenizerError.malformed(url.path, "expected a JSON object mapping each token to an integer id (\(error))")
        }
        for (token, id) in vocabulary where id < 0 || id >= Int(Int32.max) {
            throw TokenizerError.malformed(url.path, "token '\(token)' has id \(id), outside 0..<\(Int32.max)")
        }
        return vocabulary
    }

    static func readMerges(_ url: URL) throws -> (pairs: [(String, String)], lines: [Int]) {
        var pairs: [(String, String)] = []
        var lines: [Int] = []
        for (index, line) in try readLines(url, what: "BPE merges").enumerated() {
            if line.isEmpty || line.hasPrefix("#version") { continue }
            let parts = line.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformed(url.path, "line \(index + 1): expected two tokens separated by one space, got '\(line.prefix(80))'")
            }
            pairs.append((String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1]))))
            lines.append(index + 1)
        }
        return (pairs, lines)
    }
}
