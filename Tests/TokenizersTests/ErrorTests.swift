import Foundation
import Testing
@testable import Tokenizers

@Suite("Loading errors have stable codes")
struct ErrorTests {
    static let missing = "tokenizer_file_missing"
    static let malformed = "tokenizer_file_malformed"

    /// Writes `files` into a fresh directory and calls `body` with it.
    func withFiles(_ files: [String: Data], _ body: (URL) throws -> Void) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, data) in files { try data.write(to: dir.appendingPathComponent(name)) }
        try body(dir)
    }

    func bpeError(vocab: String?, merges: String?, maxLength: Int = 77) throws -> TokenizerError? {
        var files: [String: Data] = [:]
        if let vocab { files["vocab.json"] = Data(vocab.utf8) }
        if let merges { files["merges.txt"] = Data(merges.utf8) }
        var caught: TokenizerError?
        try withFiles(files) { dir in
            caught = #expect(throws: TokenizerError.self) {
                try ByteLevelBPETokenizer(vocabularyURL: dir.appendingPathComponent("vocab.json"),
                                          mergesURL: dir.appendingPathComponent("merges.txt"), maxLength: maxLength)
            }
        }
        return caught
    }

    func wordPieceError(_ vocab: Data?, maxLength: Int = 256) throws -> TokenizerError? {
        var caught: TokenizerError?
        try withFiles(vocab.map { ["vocab.txt": $0] } ?? [:]) { dir in
            caught = #expect(throws: TokenizerError.self) {
                try WordPieceTokenizer(vocabularyURL: dir.appendingPathComponent("vocab.txt"), maxLength: maxLength)
            }
        }
        return caught
    }

    static let tinyVocab = #"{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6, "<mask>": 7}"#

    @Test func tinyBPELoadsAndMerges() throws {
        try withFiles(["vocab.json": Data(Self.tinyVocab.utf8), "merges.txt": Data("#version: 0.2\na b\n".utf8)]) { dir in
            let t = try ByteLevelBPETokenizer(vocabularyURL: dir.appendingPathComponent("vocab.json"),
                                              mergesURL: dir.appendingPathComponent("merges.txt"))
            // "abc": 'c' is not in this vocabulary and is dropped, as the reference does.
            #expect(t.encode("ab") == [0, 6, 2])
            #expect(t.encode("aab<mask>") == [0, 4, 6, 7, 2])
            #expect(t.encode("abc") == [0, 6, 2])
            #expect(t.vocabularySize == 8)
        }
    }

    @Test func missingFiles() throws {
        #expect(try bpeError(vocab: nil, merges: "a b\n")?.code == Self.missing)
        #expect(try bpeError(vocab: Self.tinyVocab, merges: nil)?.code == Self.missing)
        #expect(try wordPieceError(nil)?.code == Self.missing)
        let error = #expect(throws: TokenizerError.self) {
            try loadTokenizer(.wordPiece(vocabulary: URL(fileURLWithPath: "/nonexistent/vocab.txt")), maxLength: 256)
        }
        #expect(error?.code == Self.missing)
        #expect(error?.message.contains("/nonexistent/vocab.txt") == true)
        // A directory is not a vocabulary file.
        try withFiles([:]) { dir in
            let e = #expect(throws: TokenizerError.self) {
                try WordPieceTokenizer(vocabularyURL: dir)
            }
            #expect(e?.code == Self.missing)
        }
    }

    @Test(arguments: [
        "", "not json", "[1, 2, 3]", #"{"<s>": "zero"}"#, #"{"<s>": 0, "</s>": -2}"#, #"{"<s>": 0, "</s>": 1.5}"#,
        #"{"<s>": 0, "</s>": true}"#, #"{"<s>": 0}"#, #"{"a": 0, "b": 1}"#, #"{"<s>": 0, "</s>": 1"#,
    ])
    func malformedVocabularyJSON(_ vocab: String) throws {
        let error = try bpeError(vocab: vocab, merges: "#version: 0.2\n")
        #expect(error?.code == Self.malformed)
    }

    @Test(arguments: [
        "a b c\n", "ab\n", "a  b\n", " a b\n", "a b\nq\n", "a x\n", "x a\n", "b a\n",
    ])
    func malformedMerges(_ merges: String) throws {
        // "b a": both tokens exist but the merged "ba" does not.
        let error = try bpeError(vocab: Self.tinyVocab, merges: "#version: 0.2\n" + merges)
        #expect(error?.code == Self.malformed)
        #expect(error?.message.contains("merges.txt") == true)
        #expect(error?.message.contains("line ") == true)
    }

    @Test func invalidUTF8() throws {
        var bytes = Data("#version: 0.2\na b\n".utf8)
        bytes.append(contentsOf: [0xC3, 0x28, 0x0A])
        var caught: TokenizerError?
        try withFiles(["vocab.json": Data(Self.tinyVocab.utf8), "merges.txt": bytes]) { dir in
            caught = #expect(throws: TokenizerError.self) {
                try ByteLevelBPETokenizer(vocabularyURL: dir.appendingPathComponent("vocab.json"),
                                          mergesURL: dir.appendingPathComponent("merges.txt"))
            }
        }
        #expect(caught?.code == Self.malformed)
        #expect(try wordPieceError(Data([0x5B, 0x55, 0x4E, 0x4B, 0x5D, 0x0A, 0xFF, 0xFE, 0x0A]))?.code == Self.malformed)
    }

    @Test func malformedWordPieceVocabulary() throws {
        #expect(try wordPieceError(Data())?.code == Self.malformed)
        #expect(try wordPieceError(Data("[PAD]\n[CLS]\n[SEP]\nhello\n".utf8))?.code == Self.malformed)  // no [UNK]
        let e = try wordPieceError(Data("[UNK]\n[SEP]\n".utf8))
        #expect(e?.code == Self.malformed)
        #expect(e?.message.contains("[CLS]") == true)
    }

    @Test func tinyWordPieceLoads() throws {
        try withFiles(["vocab.txt": Data("[PAD]\r\n[UNK]\n[CLS]\n[SEP]\nun\n##aff\n##able\nhello  \n".utf8)]) { dir in
            let t = try WordPieceTokenizer(vocabularyURL: dir.appendingPathComponent("vocab.txt"))
            #expect(t.encode("unaffable HELLO unable") == [2, 4, 5, 6, 7, 4, 6, 3])
            #expect(t.encode("unknown") == [2, 1, 3])
            #expect(t.padID == 0 && t.maskID == nil && t.vocabularySize == 8)
        }
    }

    @Test(arguments: [1, 0, -5])
    func invalidMaxLength(_ maxLength: Int) throws {
        #expect(try bpeError(vocab: Self.tinyVocab, merges: "a b\n", maxLength: maxLength)?.code
            == "tokenizer_invalid_configuration")
        #expect(try wordPieceError(Data("[UNK]\n[CLS]\n[SEP]\n".utf8), maxLength: maxLength)?.code
            == "tokenizer_invalid_configuration")
    }

    @Test func inMemoryConstructors() throws {
        let t = try ByteLevelBPETokenizer(vocabulary: ["<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4],
                                          merges: [("a", "b")], maxLength: 3)
        #expect(t.encode("abab") == [0, 4, 1])
        #expect(t.encode("abab", maxLength: nil) == [0, 4, 4, 1])
        let e = #expect(throws: TokenizerError.self) {
            try ByteLevelBPETokenizer(vocabulary: ["<s>": 0, "</s>": 1, "a": 2], merges: [("a", "a")])
        }
        #expect(e?.code == Self.malformed)
        let w = try WordPieceTokenizer(vocabulary: ["[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hi": 3], maxLength: 4)
        #expect(w.encode("hi hi hi") == [1, 3, 3, 2])
        #expect(w.encode("hi there") == [1, 3, 0, 2])
    }
}
