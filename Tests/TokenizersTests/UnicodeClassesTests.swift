import Foundation
import Testing
@testable import Tokenizers

/// Every Unicode scalar classified as the reference classifies it (Fixtures/unicode_classes.tsv,
/// probed from Rust `tokenizers` one scalar at a time by make_tokenizer_fixtures.py).
@Suite("Per-scalar classes of the reference, all 1,112,064 scalars")
struct UnicodeClassesTests {
    struct Table {
        var classes: [UInt32: (normalizer: Character, preTokenizer: Character, regex: Character)] = [:]
        var runs: [(first: UInt32, last: UInt32, classes: [Character])] = []
        var lowered: [UInt32: [UInt32]] = [:]
    }

    static func table() throws -> Table {
        let text = try String(contentsOf: Fixtures.url("unicode_classes.tsv"), encoding: .utf8)
        var table = Table()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            if f[0] == "R" {
                table.runs.append((UInt32(f[1], radix: 16)!, UInt32(f[2], radix: 16)!, Array(f[3])))
            } else if f[0] == "M" {
                table.lowered[UInt32(f[1], radix: 16)!] = f[2].split(separator: " ").map { UInt32($0, radix: 16)! }
            }
        }
        return table
    }

    @Test("Run table covers every scalar exactly once")
    func coverage() throws {
        let t = try Self.table()
        var expected: UInt32 = 0
        var count = 0
        for run in t.runs {
            if expected == 0xD800 { expected = 0xE000 }
            #expect(run.first == expected, "gap or overlap at \(String(run.first, radix: 16))")
            count += Int(run.last - run.first) + 1
            expected = run.last + 1
        }
        #expect(expected == 0x110000)
        #expect(count == 1_112_064)
    }

    @Test("BERT normaliser, BERT pre-tokeniser and GPT-2 regex classes")
    func classes() throws {
        let t = try Self.table()
        var mismatches: [String] = []
        for run in t.runs {
            for v in run.first...run.last {
                let s = Unicode.Scalar(v)!
                let flags = UnicodeClasses.bertFlags(s)
                let normalizer: Character = flags.contains(.removed) ? "X" : flags.contains(.whitespace) ? "W"
                    : flags.contains(.cjk) ? "C" : "."
                let pre: Character = flags.contains(.whitespace) ? "W" : flags.contains(.punctuation) ? "P" : "."
                let regex: Character = switch UnicodeClasses.gpt2Class(s) {
                case .letter: "L"
                case .number: "N"
                case .whitespace: "W"
                case .other: "O"
                }
                let got = [normalizer, pre, regex]
                if got != run.classes && mismatches.count < 20 {
                    mismatches.append("U+\(String(v, radix: 16, uppercase: true)): reference \(String(run.classes)), got \(String(got))")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
    }

    @Test("Uncased normalisation (NFD, drop non-spacing marks, lower-case) of every kept scalar")
    func lowercasing() throws {
        let t = try Self.table()
        var mismatches: [String] = []
        var checked = 0
        for run in t.runs where run.classes[0] == "." {
            for v in run.first...run.last {
                let s = Unicode.Scalar(v)!
                let got = WordPieceTokenizer.normalize([s][...], lowercase: true).map(\.value)
                let expected = t.lowered[v] ?? [v]
                checked += 1
                if got != expected && mismatches.count < 20 {
                    mismatches.append("U+\(String(v, radix: 16, uppercase: true)): reference \(expected.map { String($0, radix: 16) }), got \(got.map { String($0, radix: 16) })")
                }
            }
        }
        #expect(checked > 850_000)
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
    }
}
