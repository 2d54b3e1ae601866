import Foundation
import Testing
@testable import Tokenizers

@Suite("Token ids identical to the reference tokenizers")
struct ReferenceTests {
    @Test("Byte-level BPE: RobertaTokenizer on the trained vocabulary (max length 77 and untruncated)")
    func byteLevelBPE() throws {
        let fixture = try Fixtures.cases("bpe/cases.json")
        #expect(fixture.cases.count >= 300)
        #expect(fixture.max_length == 77)
        checkReference(try Fixtures.bpe(), fixture)
    }

    @Test("WordPiece: all-MiniLM-L6-v2's BertTokenizer (max length 256 and untruncated)")
    func wordPiece() throws {
        let fixture = try Fixtures.cases("wordpiece/cases.json")
        #expect(fixture.cases.count >= 300)
        #expect(fixture.max_length == 256)
        checkReference(try Fixtures.wordPiece(), fixture)
    }

    @Test("Special ids come from the vocabulary")
    func specialIDs() throws {
        let bpe = try Fixtures.bpe()
        #expect(bpe.bosID == 0 && bpe.padID == 1 && bpe.eosID == 2 && bpe.unknownID == 3)
        #expect(bpe.maskID == 2712 && bpe.vocabularySize == 2713)
        #expect(bpe.encode("") == [0, 2])
        let wp = try Fixtures.wordPiece()
        #expect(wp.clsID == 101 && wp.sepID == 102 && wp.unknownID == 100 && wp.padID == 0 && wp.maskID == 103)
        #expect(wp.vocabularySize == 30522)
        #expect(wp.encode("") == [101, 102])
        #expect(wp.encode("Hello, world!") == [101, 7592, 1010, 2088, 999, 102])
    }

    @Test("The protocol loader builds both kinds")
    func loader() throws {
        let bpe = try loadTokenizer(.byteLevelBPE(vocabulary: Fixtures.url("bpe/vocab.json"),
                                                  merges: Fixtures.url("bpe/merges.txt")), maxLength: 77)
        #expect(bpe.maxLength == 77)
        #expect(bpe is ByteLevelBPETokenizer)
        let wp = try loadTokenizer(.wordPiece(vocabulary: Fixtures.url("wordpiece/vocab.txt")), maxLength: 256)
        #expect(wp.maxLength == 256)
        #expect(wp.encode("naïve") == (try Fixtures.wordPiece()).encode("naive"))
        let cased = try loadTokenizer(.wordPiece(vocabulary: Fixtures.url("wordpiece/vocab.txt"), lowercase: false),
                                      maxLength: 256)
        #expect(cased.encode("Hello") == [101, 100, 102])  // no "Hello" in an uncased vocabulary
    }
}
