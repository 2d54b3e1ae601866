import Foundation
import Testing
@testable import Tokenizers

// Fixtures written by Training/fixtures/make_tokenizer_fixtures.py.

struct ReferenceCase: Decodable {
    /// The input, or nil for a long input rebuilt as `repeat` x `count`.
    let text: String?
    let `repeat`: String?
    let count: Int?
    /// Expected ids at the fixture's max_length.
    let ids: [Int]
    /// Expected ids without truncation, when they differ from `ids`.
    let full: [Int]?

    var input: String {
        if let text { return text }
        return String(repeating: `repeat` ?? "", count: count ?? 0)
    }

    var label: String {
        if let text { return String(reflecting: String(text.prefix(60))) }
        return "\(String(reflecting: `repeat` ?? "")) x \(count ?? 0)"
    }
}

struct ReferenceCases: Decodable {
    let max_length: Int
    let reference: String
    let cases: [ReferenceCase]
}

enum Fixtures {
    static func url(_ path: String) throws -> URL {
        let base = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil),
                                "Fixtures missing; run Training/fixtures/make_tokenizer_fixtures.py")
        let url = base.appendingPathComponent(path)
        try #require(FileManager.default.fileExists(atPath: url.path), "fixture \(path) is missing")
        return url
    }

    static func cases(_ path: String) throws -> ReferenceCases {
        try JSONDecoder().decode(ReferenceCases.self, from: Data(contentsOf: url(path)))
    }

    static func bpe(maxLength: Int = ByteLevelBPETokenizer.clapMaxLength) throws -> ByteLevelBPETokenizer {
        try ByteLevelBPETokenizer(vocabularyURL: url("bpe/vocab.json"), mergesURL: url("bpe/merges.txt"),
                                  maxLength: maxLength)
    }

    static func wordPiece(maxLength: Int = WordPieceTokenizer.miniLMMaxLength) throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabularyURL: url("wordpiece/vocab.txt"), maxLength: maxLength)
    }

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("tokenizers-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}


/// Checks every reference case at the fixture's max length and untruncated; reports the first few
/// mismatches in full and the total.
func checkReference(_ tokenizer: any Tokenizer, _ fixture: ReferenceCases) {
    var failures: [String] = []
    for c in fixture.cases {
        let input = c.input
        let ids = tokenizer.encode(input, maxLength: fixture.max_length)
        if ids != c.ids {
            failures.append("\(c.label) at \(fixture.max_length):\n  expected \(c.ids)\n  got      \(ids)")
        }
        if c.text != nil {
            let expectedFull = c.full ?? c.ids
            let full = tokenizer.encode(input, maxLength: nil)
            if full != expectedFull {
                failures.append("\(c.label) untruncated:\n  expected \(expectedFull)\n  got      \(full)")
            }
        }
    }
    for f in failures.prefix(8) { Issue.record(Comment(rawValue: f)) }
    #expect(failures.isEmpty, "\(failures.count) mismatches of \(fixture.cases.count) cases")
}
