import Foundation
import ModelPackage
import Numerics
import Testing
@testable import GatedXLSTM

/// The whole 12-stream classifier against the PyTorch reference at a small size
/// (Training/fixtures/make_xlstm_fixtures.py: embedding 128 = 16 x 8, width 32, 2 blocks, 4 heads).
@Suite struct ClassifierTests {
    let directory: URL
    let io: WeightStore

    init() throws {
        directory = try #require(Bundle.module.url(forResource: "classifier_small", withExtension: nil,
                                                   subdirectory: "Fixtures"))
        io = try WeightStore(url: directory.appendingPathComponent("io.safetensors"))
    }

    func batch() throws -> [[[Float]]] {
        let input = try io.tensor("input")
        let (b, n, e) = (input.shape[0], input.shape[1], input.shape[2])
        let v = input.values
        return (0..<b).map { i in (0..<n).map { s in Array(v[((i * n + s) * e)..<((i * n + s + 1) * e)]) } }
    }

    func load() throws -> GatedXLSTMClassifier {
        let package = try ModelPackage.load(directory: directory)
        return try GatedXLSTMClassifier(package: package)
    }

    @Test func matchesReferenceLogitsGatesAndProbabilities() throws {
        let classifier = try load()
        let out = try classifier.classify(try batch())
        let logits = try io.tensor("logits").values, gates = try io.tensor("gates").values
        let probs = try io.tensor("probabilities").values
        let l = classifier.labels.count
        #expect(out.count == 5)
        for (i, c) in out.enumerated() {
            for j in 0..<l {
                #expect(abs(c.logits[j] - logits[i * l + j]) <= 1e-4, "item \(i) logit \(j)")
                #expect(abs(c.probabilities[j] - probs[i * l + j]) <= 1e-4)
            }
            #expect(c.gates.count == 12 && c.gates[0] == 1)
            for j in 0..<11 { #expect(abs(c.gates[j + 1] - gates[i * 11 + j]) <= 1e-5, "item \(i) gate \(j)") }
        }
    }

    /// Context streams run ahead (`prepareContext` from the turn's t-1 and t-2 tuples), mixed in
    /// one batch with items run whole: the PyTorch reference's logits and gates either way.
    @Test func preparedContextsGiveTheReferenceAnswers() throws {
        let classifier = try load()
        let items = try batch()
        let logits = try io.tensor("logits").values, gates = try io.tensor("gates").values
        let l = classifier.labels.count
        let prepared = try items.enumerated().map { i, streams -> PreparedContext? in
            i % 2 == 1 ? nil : try classifier.prepareContext(previous: Array(streams[4..<8]), beforePrevious: Array(streams[8..<12]))
        }
        let out = try classifier.classify(items, prepared: prepared)
        for (i, c) in out.enumerated() {
            for j in 0..<l { #expect(abs(c.logits[j] - logits[i * l + j]) <= 1e-4, "item \(i) logit \(j)") }
            for j in 0..<11 { #expect(abs(c.gates[j + 1] - gates[i * 11 + j]) <= 1e-5, "item \(i) gate \(j)") }
        }
        // Absent context turns are zeros, as in the streams.
        let zeros = [[Float]](repeating: [Float](repeating: 0, count: 128), count: 4)
        var first = items[0]
        first.replaceSubrange(4..<12, with: zeros + zeros)
        let whole = try classifier.classify([first])[0]
        let ahead = try classifier.classify([first], prepared: [try classifier.prepareContext(previous: nil, beforePrevious: nil)])[0]
        #expect(zip(whole.logits, ahead.logits).allSatisfy { abs($0 - $1) <= 1e-5 })
        // A context of another size or count is refused.
        #expect(throws: ClassifierError.self) { try classifier.classify(items, prepared: [nil]) }
        #expect(throws: ClassifierError.self) { try classifier.prepareContext(previous: [[1]], beforePrevious: nil) }
    }

    @Test func singleTurnsEqualTheBatch() throws {
        let classifier = try load()
        let items = try batch()
        let all = try classifier.classify(items)
        for (i, item) in items.enumerated() {
            let one = try classifier.classify([item])[0]
            #expect(zip(one.logits, all[i].logits).allSatisfy { abs($0 - $1) <= 1e-5 })
        }
    }

    @Test func concurrentCallsGiveTheSameAnswers() throws {
        let classifier = try load()
        let items = try batch()
        let expected = try classifier.classify(items)
        let results = ResultBox(count: 8)
        DispatchQueue.concurrentPerform(iterations: 8) { k in
            results.set(k, (try? classifier.classify([items[k % items.count]]))?.first)
        }
        for k in 0..<8 {
            let got = try #require(results.get(k))
            #expect(zip(got.logits, expected[k % items.count].logits).allSatisfy { abs($0 - $1) <= 1e-5 })
        }
    }

    @Test func badStreamsAreRefusedWithACode() throws {
        let classifier = try load()
        var items = try batch()
        #expect(throws: ClassifierError.self) { try classifier.classify([Array(items[0].prefix(11))]) }
        items[0][5] = [1, 2, 3]
        #expect { try classifier.classify([items[0]]) } throws: { ($0 as? ClassifierError)?.code == "invalid_streams" }
        var nan = try batch()[1]
        nan[0][0] = .nan
        #expect { try classifier.classify([nan]) } throws: { "\($0)".contains("non-finite") }
        #expect(try classifier.classify([]).isEmpty)
    }

    @Test func parameterCountMatchesTheReference() throws {
        let package = try ModelPackage.load(directory: directory)
        let config = try package.section("classifier", as: ClassifierConfiguration.self)
        let total = package.weights.names.reduce(0) { $0 + (package.weights.shape(of: $1) ?? []).reduce(1, *) }
        #expect(config.parameterCount(labels: 4) == total)
        // Paper size: about 155 M parameters in the 12 stacks and heads.
        let paper = ClassifierConfiguration.paper.parameterCount(labels: 4)
        #expect(paper > 150_000_000 && paper < 160_000_000)
    }

    @Test func wrongConfigurationNamesTheProblem() throws {
        let package = try ModelPackage.load(directory: directory)
        var config = try package.section("classifier", as: ClassifierConfiguration.self)
        config.stepDim = 16
        #expect { _ = try GatedXLSTMClassifier(configuration: config, labels: ["a", "b", "c", "d"], parameters: package.weights) }
            throws: { ($0 as? ClassifierError)?.code == "invalid_configuration" }
        config = try package.section("classifier", as: ClassifierConfiguration.self)
        #expect { _ = try GatedXLSTMClassifier(configuration: config, labels: ["a", "b", "c"], parameters: package.weights) }
            throws: { "\($0)".contains("classifier.weight") }
    }
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Classification?]
    init(count: Int) { items = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ v: Classification?) { lock.lock(); items[i] = v; lock.unlock() }
    func get(_ i: Int) -> Classification? { lock.lock(); defer { lock.unlock() }; return items[i] }
}

@Suite struct ClassifierConfigurationTests {
    @Test func flatJSONRoundTrips() throws {
        let json = """
        {"embedding_dim": 128, "steps": 16, "step_dim": 8, "width": 32, "blocks": 2, "heads": 4,
         "conv1d_kernel_size": 4, "qkv_proj_blocksize": 4, "proj_factor": 2.0,
         "streams": [\(StreamLayout.names.map { "\"\($0)\"" }.joined(separator: ", "))]}
        """
        let config = try JSONDecoder().decode(ClassifierConfiguration.self, from: Data(json.utf8))
        #expect(config.width == 32 && config.stack.blocks == 2 && config.stepDim == 8)
        let again = try JSONDecoder().decode(ClassifierConfiguration.self, from: JSONEncoder().encode(config))
        #expect(again == config)
        #expect(config.validationError() == nil)
    }
}
