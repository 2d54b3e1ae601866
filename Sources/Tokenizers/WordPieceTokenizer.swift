import Foundation

/// BERT WordPiece (uncased by default), as all-MiniLM-L6-v2's `BertTokenizer` / `BertTokenizerFast`,
/// identical in ids to the reference (Hugging Face `tokenizers`).
///
/// `encode` returns `[CLS] + content + [SEP]`, the content truncated to `maxLength - 2` ids.
/// Pipeline: special tokens written in the text (`[CLS]`, `[SEP]`, `[UNK]`, `[PAD]`, `[MASK]`, case
/// as written) become their ids; the rest is normalised (control characters and U+FFFD removed,
/// whitespace to spaces, spaces around CJK ideographs, then for uncased models NFD, non-spacing
/// marks dropped, lower-cased scalar by scalar), split on whitespace and punctuation, and each word
/// is cut greedily into the longest vocabulary entries (`##` marks a continuation); a word with a
/// part that matches nothing, or longer than 100 scalars, is `[UNK]`.
public final class WordPieceTokenizer: Tokenizer {
    /// all-MiniLM-L6-v2's sentence-transformers `max_seq_length` (the model itself takes 512).
    public static let miniLMMaxLength = 256
    /// Words longer than this many scalars become `[UNK]` (the reference's `max_input_chars_per_word`).
    public static let maxCharactersPerWord = 100

    public let maxLength: Int
    public let vocabularySize: Int
    public let lowercase: Bool
    public let clsID: Int
    public let sepID: Int
    public let unknownID: Int
    public let padID: Int?
    public let maskID: Int?

    private let trie: VocabularyTrie
    private let continuationRoot: Int32  // trie node after "##", -1 if no entry starts with it
    private let specials: AddedTokenMatcher

    /// Loads `vocab.txt`: one token a line, the id is the line number from 0 (trailing whitespace
    /// of a line is not part of the token; a later duplicate wins).
    public convenience init(vocabularyURL: URL, maxLength: Int = WordPieceTokenizer.miniLMMaxLength,
                            lowercase: Bool = true) throws {
        try checkMaxLength(maxLength)
        let lines = try readLines(vocabularyURL, what: "WordPiece vocabulary")
        guard !lines.isEmpty else { throw TokenizerError.malformed(vocabularyURL.path, "the vocabulary is empty") }
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(lines.count)
        for (index, line) in lines.enumerated() {
            var end = line.unicodeScalars.endIndex
            while end > line.unicodeScalars.startIndex {
                let before = line.unicodeScalars.index(before: end)
                guard line.unicodeScalars[before].properties.isWhitespace else { break }
                end = before
            }
            vocabulary[String(line.unicodeScalars[..<end])] = index
        }
        try self.init(vocabulary: vocabulary, maxLength: maxLength, lowercase: lowercase, source: vocabularyURL.path)
    }

    /// Builds from an in-memory vocabulary (token to id).
    public convenience init(vocabulary: [String: Int], maxLength: Int = WordPieceTokenizer.miniLMMaxLength,
                            lowercase: Bool = true) throws {
        try self.init(vocabulary: vocabulary, maxLength: maxLength, lowercase: lowercase, source: "vocabulary")
    }

    private init(vocabulary: [String: Int], maxLength: Int, lowercase: Bool, source: String) throws {
        try checkMaxLength(maxLength)
        for name in ["[CLS]", "[SEP]", "[UNK]"] where vocabulary[name] == nil {
            throw TokenizerError.malformed(source, "the vocabulary has no '\(name)' token")
        }
        for (token, id) in vocabulary where id < 0 || id >= Int(Int32.max) {
            throw TokenizerError.malformed(source, "token '\(token)' has id \(id), outside 0..<\(Int32.max)")
        }
        self.maxLength = maxLength
        self.lowercase = lowercase
        vocabularySize = (vocabulary.values.max() ?? -1) + 1
        clsID = vocabulary["[CLS]"]!
        sepID = vocabulary["[SEP]"]!
        unknownID = vocabulary["[UNK]"]!
        padID = vocabulary["[PAD]"]
        maskID = vocabulary["[MASK]"]
        trie = VocabularyTrie(vocabulary)
        continuationRoot = trie.walk(from: 0, bytes: Array("##".utf8))
        var added: [AddedToken] = []
        for (name, id) in [("[PAD]", padID), ("[UNK]", unknownID), ("[CLS]", clsID), ("[SEP]", sepID), ("[MASK]", maskID)] {
            if let id { added.append(AddedToken(content: Array(name.unicodeScalars), id: id)) }
        }
        specials = AddedTokenMatcher(added)
        UnicodeClasses.prepare()
    }

    public func encode(_ text: String, maxLength: Int?) -> [Int] {
        let limit = maxLength.map { max($0, 2) - 2 } ?? Int.max
        var out: [Int] = [clsID]
        let scalars = Array(text.unicodeScalars)
        var word: [UInt8] = []
        segments: for segment in specials.split(scalars) {
            if out.count - 1 >= limit { break }
            switch segment {
            case let .special(id):
                out.append(id)
            case let .text(range):
                let normalized = Self.normalize(scalars[range], lowercase: lowercase)
                var start = 0
                var i = 0
                // Split on whitespace (dropped) and punctuation (a word of its own).
                while i <= normalized.count {
                    let flags = i < normalized.count ? UnicodeClasses.bertFlags(normalized[i]) : .whitespace
                    if flags.contains(.whitespace) || flags.contains(.punctuation) {
                        if start < i { addWord(normalized[start..<i], &word, &out) }
                        if flags.contains(.punctuation) && !flags.contains(.whitespace) {
                            addWord(normalized[i..<(i + 1)], &word, &out)
                        }
                        start = i + 1
                        if out.count - 1 >= limit { break segments }
                    }
                    i += 1
                }
            }
        }
        if out.count - 1 > limit { out.removeSubrange((limit + 1)...) }
        out.append(sepID)
        return out
    }

    /// Greedy longest-match-first WordPiece of one word.
    private func addWord(_ scalars: ArraySlice<Unicode.Scalar>, _ bytes: inout [UInt8], _ out: inout [Int]) {
        if scalars.count > Self.maxCharactersPerWord {
            out.append(unknownID)
            return
        }
        bytes.removeAll(keepingCapacity: true)
        for s in scalars { bytes.append(contentsOf: UTF8.encode(s)!) }
        let mark = out.count
        var start = 0
        while start < bytes.count {
            var node: Int32 = start == 0 ? 0 : continuationRoot
            var best = -1
            var bestEnd = start
            var i = start
            while node >= 0 && i < bytes.count {
                node = trie.child(node, bytes[i])
                i += 1
                if node >= 0, let id = trie.terminal(node) {
                    best = id
                    bestEnd = i
                }
            }
            if best < 0 {
                out.removeSubrange(mark...)
                out.append(unknownID)
                return
            }
            out.append(best)
            start = bestEnd
        }
    }

    /// BERT's normaliser: clean text, CJK spacing, then (uncased) NFD, drop Mn, lower-case.
    static func normalize(_ text: ArraySlice<Unicode.Scalar>, lowercase: Bool) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var ascii = true
        for s in text {
            let flags = UnicodeClasses.bertFlags(s)
            if flags.contains(.removed) { continue }
            if flags.contains(.whitespace) {
                out.append(" ")
            } else if flags.contains(.cjk) {
                out.append(" "); out.append(s); out.append(" ")
                ascii = false
            } else {
                out.append(s)
                if s.value >= 0x80 { ascii = false }
            }
        }
        guard lowercase else { return out }
        if ascii {
            for i in out.indices where out[i].value >= 0x41 && out[i].value <= 0x5A {
                out[i] = Unicode.Scalar(out[i].value + 0x20)!
            }
            return out
        }
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(out.count)
        for s in canonicalDecomposition(out) where !UnicodeClasses.bertFlags(s).contains(.nonspacingMark) {
            if s.value < 0x80 {
                result.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(s.value + 0x20)! : s)
            } else {
                result.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return result
    }

    /// NFD. ASCII scalars and CJK unified ideographs are starters that never decompose, so only the
    /// runs of other scalars between them go through Foundation's decomposition. Scalars the reference's normalisation
    /// tables do not decompose are passed through.
    static func canonicalDecomposition(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(scalars.count + scalars.count / 4)
        var runStart = -1
        func flush(_ end: Int) {
            guard runStart >= 0, runStart < end else { runStart = -1; return }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[runStart..<end])
            result.append(contentsOf: String(view).decomposedStringWithCanonicalMapping.unicodeScalars)
            runStart = -1
        }
        for (i, s) in scalars.enumerated() {
            if s.value < 0x80 || isUnifiedIdeograph(s.value) || notDecomposedByReference.contains(s.value) {
                flush(i)
                result.append(s)
            } else if runStart < 0 {
                runStart = i
            }
        }
        flush(scalars.count)
        return result
    }

    /// CJK unified ideographs (not the compatibility ideographs, which decompose): no canonical
    /// decomposition, combining class 0.
    @inline(__always)
    static func isUnifiedIdeograph(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2EBEF).contains(v) || (0x30000...0x3134F).contains(v)
    }

    /// Decomposable scalars added after the reference's normalisation tables (Unicode 13+), all starters.
    static let notDecomposedByReference: Set<UInt32> = [0x11938]
}

/// A byte trie of the vocabulary in compressed rows: each node's edges sorted by byte.
struct VocabularyTrie: Sendable {
    private var edgeStart: [Int32] = []
    private var edgeByte: [UInt8] = []
    private var edgeTarget: [Int32] = []
    private var terminals: [Int32] = []

    init(_ vocabulary: [String: Int]) {
        var children: [[UInt8: Int32]] = [[:]]
        var terminal: [Int32] = [-1]
        for (token, id) in vocabulary {
            var node = 0
            for b in token.utf8 {
                if let c = children[node][b] {
                    node = Int(c)
                } else {
                    children.append([:])
                    terminal.append(-1)
                    let c = Int32(children.count - 1)
                    children[node][b] = c
                    node = Int(c)
                }
            }
            terminal[node] = Int32(id)
        }
        terminals = terminal
        edgeStart.reserveCapacity(children.count + 1)
        for edges in children {
            edgeStart.append(Int32(edgeByte.count))
            for (b, c) in edges.sorted(by: { $0.key < $1.key }) {
                edgeByte.append(b)
                edgeTarget.append(c)
            }
        }
        edgeStart.append(Int32(edgeByte.count))
    }

    @inline(__always)
    func child(_ node: Int32, _ byte: UInt8) -> Int32 {
        var lo = Int(edgeStart[Int(node)])
        var hi = Int(edgeStart[Int(node) + 1])
        while lo < hi {
            let mid = (lo + hi) >> 1
            let b = edgeByte[mid]
            if b == byte { return edgeTarget[mid] }
            if b < byte { lo = mid + 1 } else { hi = mid }
        }
        return -1
    }

    @inline(__always)
    func terminal(_ node: Int32) -> Int? {
        let t = terminals[Int(node)]
        return t >= 0 ? Int(t) : nil
    }

    func walk(from node: Int32, bytes: [UInt8]) -> Int32 {
        var n = node
        for b in bytes where n >= 0 { n = child(n, b) }
        return n
    }
}
