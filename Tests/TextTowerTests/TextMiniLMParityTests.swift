import Foundation
import ModelPackage
import Testing
import TestSupport
import TextTower

/// The full all-MiniLM-L6-v2 against sentence-transformers, over the 64 sentences of
/// Fixtures/text_minilm_reference.json. Runs only when MINILM_PACKAGE names a package converted
/// with `Training/convert/text_tower.py minilm --out DIR` (the 90 MB weights are not committed):
///
///     Training/.venv/bin/python Training/convert/text_tower.py minilm --out /tmp/minilm
///     MINILM_PACKAGE=/tmp/minilm swift test --filter TextMiniLMParityTests
@Suite struct TextMiniLMParityTests {
    static let packagePath = ProcessInfo.processInfo.environment["MINILM_PACKAGE"]

    @Test(.enabled(if: packagePath != nil, "set MINILM_PACKAGE to a converted all-MiniLM-L6-v2 package"))
    func fullMiniLMMatchesSentenceTransformers() throws {
        let package = try ModelPackage.load(directory: URL(fileURLWithPath: try #require(Self.packagePath)))
        let encoder = try TextEncoder(package: package)
        try package.weights.requireAllClaimed()
        let url = try #require(Bundle.module.url(forResource: "text_minilm_reference", withExtension: "json",
                                                 subdirectory: "Fixtures"))
        let expected = try JSONDecoder().decode(TextFixture.self, from: Data(contentsOf: url))
        #expect(expected.sequences.count >= 50)
        let out = try encoder.embed(batch: expected.sequences)
        var worstCos = 1.0, worstAbs: Float = 0
        for i in expected.sequences.indices {
            let one = try encoder.embed(expected.sequences[i])
            #expect(maxAbsDiff(one, out[i]) <= 1e-6, "sentence \(i): batch vs single")
            worstCos = min(worstCos, cosine(out[i], expected.embeddings[i]))
            worstAbs = max(worstAbs, maxAbsDiff(out[i], expected.embeddings[i]))
        }
        print("MiniLM parity over \(expected.sequences.count) sentences: min cosine \(worstCos), max abs \(worstAbs)")
        #expect(worstCos >= 0.9999, "min cosine \(worstCos)")
        #expect(worstAbs <= 1e-4, "max abs \(worstAbs)")
    }
}
