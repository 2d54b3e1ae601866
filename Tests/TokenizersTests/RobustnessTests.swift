import Foundation
import Testing
@testable import Tokenizers
import TestSupport

@Suite("Any input: long, random, concurrent")
struct RobustnessTests {
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// 100k-character transcripts finish quickly (linear time) and truncate to the reference's ids.
    /// The expected ids come from the "repeat" cases of the fixtures; the bound is generous because
    /// tests run in debug builds on a shared machine.
    @Test("100k-character inputs: fast, truncated exactly as the reference")
    func longInputs() throws {
        let bpe = try Fixtures.bpe()
        let wp = try Fixtures.wordPiece()
        for (tokenizer, path) in [(bpe as any Tokenizer, "bpe/cases.json"), (wp, "wordpiece/cases.json")] {
            let fixture = try Fixtures.cases(path)
            let long = fixture.cases.filter { $0.repeat != nil }
            #expect(long.count == 6)
            for c in long {
                let input = c.input
                #expect(input.unicodeScalars.count >= 50_000)
                let clock = ContinuousClock()
                var ids: [Int] = []
                let truncated = clock.measure { ids = tokenizer.encode(input, maxLength: fixture.max_length) }
                #expect(ids == c.ids, "\(c.label)")
                #expect(ids.count <= fixture.max_length)
                var full: [Int] = []
                let untruncated = clock.measure { full = tokenizer.encode(input, maxLength: nil) }
                if full.count > fixture.max_length {
                    #expect(Array(full.prefix(fixture.max_length - 1)) == Array(ids.dropLast()), "\(c.label)")
                } else {
                    #expect(full == ids, "\(c.label)")
                }
                #expect(Self.seconds(truncated) < 5, "\(c.label): \(truncated) truncated")
                #expect(Self.seconds(untruncated) < 10, "\(c.label): \(untruncated) untruncated")
            }
        }
    }

    /// Sixteen times the input takes about sixteen times as long (quadratic would be 256 times),
    /// on the worst pieces: one huge word, one huge whitespace run, one huge CJK or emoji run.
    /// The bound is loose because other processes share the machine.
    @Test("Time grows linearly with the input", arguments: ["a", " ", "中", "ab ", "😀"])
    func linearTime(_ unit: String) throws {
        let bpe = try Fixtures.bpe()
        let wp = try Fixtures.wordPiece()
        let clock = ContinuousClock()
        for tokenizer in [bpe as any Tokenizer, wp] {
            let small = String(repeating: unit, count: 5_000)
            let large = String(repeating: unit, count: 80_000)
            let t1 = (0..<3).map { _ in Self.seconds(clock.measure { _ = tokenizer.encode(small, maxLength: nil) }) }.min()!
            let t16 = Self.seconds(clock.measure { _ = tokenizer.encode(large, maxLength: nil) })
            #expect(t16 < max(64 * t1, 0.25), "\(String(reflecting: unit)): \(t1) s for 5k, \(t16) s for 80k")
        }
    }

    static func randomText(_ rng: inout SplitMix64) -> String {
        var view = String.UnicodeScalarView()
        let n = Int.random(in: 0...60, using: &rng)
        for _ in 0..<n {
            let pick = Int.random(in: 0..<10, using: &rng)
            let v: UInt32 = switch pick {
            case 0...3: UInt32.random(in: 0...0x7F, using: &rng)
            case 4: UInt32.random(in: 0x80...0x7FF, using: &rng)
            case 5: UInt32.random(in: 0x300...0x36F, using: &rng)
            case 6: UInt32.random(in: 0x1F300...0x1FAFF, using: &rng)
            case 7: UInt32.random(in: 0x3000...0x9FFF, using: &rng)
            default: UInt32.random(in: 0...0x10FFFF, using: &rng)
            }
            if let s = Unicode.Scalar(v) { view.append(s) }
            if pick == 9 { view.append(contentsOf: ["<mask>", " ", "[SEP]", "'s", "\u{200D}"].randomElement(using: &rng)!.unicodeScalars) }
        }
        return String(view)
    }

    /// Random scalars, including NUL, controls, surrogate neighbours, unassigned and private-use
    /// scalars: never a crash, framed by the special tokens, ids within the vocabulary, and
    /// truncation at any length is a prefix of the untruncated encoding plus the closing token.
    @Test("Random Unicode: well-formed output and consistent truncation")
    func randomInputs() throws {
        let bpe = try Fixtures.bpe()
        let wp = try Fixtures.wordPiece()
        var rng = SplitMix64(seed: 42)
        for _ in 0..<1500 {
            let text = Self.randomText(&rng)
            for (tokenizer, first, last) in [(bpe as any Tokenizer, bpe.bosID, bpe.eosID), (wp, wp.clsID, wp.sepID)] {
                let full = tokenizer.encode(text, maxLength: nil)
                #expect(full.first == first && full.last == last && full.count >= 2)
                #expect(full.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize })
                let m = Int.random(in: 2...12, using: &rng)
                let cut = tokenizer.encode(text, maxLength: m)
                #expect(cut.count == min(m, full.count))
                #expect(cut == Array(full.prefix(cut.count - 1)) + [last])
                #expect(tokenizer.encode(text) == tokenizer.encode(text, maxLength: tokenizer.maxLength))
            }
        }
    }

    @Test("Whitespace-only, control-only and special-only inputs")
    func degenerateInputs() throws {
        let bpe = try Fixtures.bpe()
        let wp = try Fixtures.wordPiece()
        for text in ["", " ", "\n", "\t\t", "\u{0}", "\u{0}\u{1}\u{7F}", "\u{FFFD}", "\u{200B}", "\u{FEFF}"] {
            #expect(wp.encode(text).count >= 2)
            #expect(bpe.encode(text).first == bpe.bosID)
        }
        #expect(wp.encode("\u{0}\u{1}\u{7F}\u{FFFD}") == [101, 102])
        #expect(bpe.encode("<s></s><mask>") == [0, 0, 2, 2712, 2])
        #expect(bpe.encode(" <mask>") == [0, 2712, 2])
        #expect(wp.encode("[CLS][SEP]") == [101, 101, 102, 102])
        #expect(bpe.encode("<s>", maxLength: 2) == [0, 2])
        #expect(wp.encode("hello", maxLength: 2) == [101, 102])
    }

    @Test("Concurrent encoding gives the same ids")
    func concurrentUse() async throws {
        let bpe = try Fixtures.bpe()
        let wp = try Fixtures.wordPiece()
        let texts = (0..<64).map { "Turn \($0): I've been waiting 45 minutes, naïve café 😀 中文 \($0 * 7919)" }
        let expected = texts.map { (bpe.encode($0), wp.encode($0)) }
        try await withThrowingTaskGroup(of: (Int, [Int], [Int]).self) { group in
            for (i, t) in texts.enumerated() {
                group.addTask { (i, bpe.encode(t), wp.encode(t)) }
            }
            for try await (i, a, b) in group {
                #expect(a == expected[i].0 && b == expected[i].1)
            }
        }
    }
}
