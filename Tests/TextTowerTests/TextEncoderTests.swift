import Foundation
import ModelPackage
import Numerics
import Testing
import TestSupport
import TextTower

/// Expected outputs written by Training/fixtures/make_clap_text_fixtures.py.
struct TextFixture: Decodable {
    let sequences: [[Int]]
    let embeddings: [[Float]]
    let hidden_states: [[Float]]?
    let sentence_embeddings: [[Float]]?
    let sentences: [String]?

    static func directory(_ name: String) throws -> URL {
        try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    }

    static func load(_ name: String) throws -> (ModelPackage, TextFixture) {
        let dir = try directory(name)
        let package = try ModelPackage.load(directory: dir)
        let expected = try JSONDecoder().decode(TextFixture.self,
                                                from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        return (package, expected)
    }
}


@Suite struct TextEncoderRobertaTests {
    let package: ModelPackage
    let expected: TextFixture

    init() throws { (package, expected) = try TextFixture.load("text_roberta_small") }

    @Test func matchesClapModelTextFeatures() throws {
        let encoder = try TextEncoder(package: package)
        try package.weights.requireAllClaimed()  // every converted tensor is used
        #expect(encoder.outputSize == 16)
        #expect(encoder.maxTokens == 38)
        for (i, ids) in expected.sequences.enumerated() {
            let out = try encoder.embed(ids)
            let err = maxAbsDiff(out, expected.embeddings[i])
            let cos = cosine(out, expected.embeddings[i])
            #expect(err <= 1e-4, "sequence \(i) (\(ids.count) tokens): max abs \(err)")
            #expect(cos >= 0.9999, "sequence \(i): cosine \(cos)")
        }
    }

    @Test func hiddenStatesOfRealTokensMatchPaddedReference() throws {
        let encoder = try TextEncoder(package: package)
        let hidden = try #require(expected.hidden_states)
        for (i, ids) in expected.sequences.enumerated() {
            let err = maxAbsDiff(try encoder.hiddenStates(ids), hidden[i])
            #expect(err <= 1e-4, "sequence \(i) (\(ids.count) tokens): max abs \(err)")
        }
    }

    @Test func batchEqualsOneAtATimeAndThreadsDoNotChangeResults() throws {
        let two = try TextEncoder(package: package, threads: 2)
        let one = try TextEncoder(package: package, threads: 1)
        let many = try TextEncoder(package: package, threads: 5)
        let batch = try two.embed(batch: expected.sequences)
        #expect(batch.count == expected.sequences.count)
        for (i, ids) in expected.sequences.enumerated() {
            let single = try one.embed(ids)
            // Other part counts split the inner sums differently: equal up to rounding.
            #expect(maxAbsDiff(try two.embed(ids), single) <= 1e-5, "sequence \(i)")
            #expect(maxAbsDiff(try many.embed(ids), single) <= 1e-5, "sequence \(i)")
            #expect(maxAbsDiff(batch[i], try two.embed(ids)) <= 1e-6, "sequence \(i)")
        }
        #expect(try two.embed(batch: []).isEmpty)
    }

    @Test func blasKernelMatchesReference() throws {
        for threads in [1, 2] {
            let encoder = try TextEncoder(package: package, threads: threads, kernel: .blas)
            try package.weights.requireAllClaimed()
            for (i, ids) in expected.sequences.enumerated() {
                let err = maxAbsDiff(try encoder.embed(ids), expected.embeddings[i])
                #expect(err <= 1e-4, "threads \(threads) sequence \(i): max abs \(err)")
            }
        }
    }

    @Test func concurrentCallsAgree() throws {
        let encoder = try TextEncoder(package: package, threads: 2)
        let reference = try encoder.embed(batch: expected.sequences)
        let results = TextResultBox(count: 16)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            let k = i % expected.sequences.count
            results.set(i, (try? encoder.embed(expected.sequences[k])) ?? [])
        }
        for i in 0..<16 {
            #expect(maxAbsDiff(results.get(i), reference[i % expected.sequences.count]) <= 1e-6)
        }
    }

    @Test func firstTokenPoolingWithoutProjectionIsTheFirstHiddenState() throws {
        var config = try package.section("text", as: TextEncoderConfiguration.self)
        config.pooling = .first
        config.projection = nil
        config.normalize = false
        let encoder = try TextEncoder(configuration: config, parameters: package.weights)
        let hidden = try #require(expected.hidden_states)
        let pooled = try encoder.embed(batch: expected.sequences)
        for (i, ids) in expected.sequences.enumerated() {
            let first = Array(hidden[i][0..<32])
            #expect(maxAbsDiff(pooled[i], first) <= 1e-4, "sequence \(i)")
            // The last layer run for the first rows only equals the full pass's first row.
            let full = try encoder.hiddenStates(ids)
            #expect(maxAbsDiff(pooled[i], Array(full[0..<32])) <= 1e-6, "sequence \(i)")
        }
    }

    @Test func badInputsAreRefusedWithCodes() throws {
        let encoder = try TextEncoder(package: package)
        #expect { _ = try encoder.embed([]) } throws: { ($0 as? TextEncoderError)?.code == "empty_input" }
        #expect { _ = try encoder.embed([0, 100, 2]) } throws: { error in
            (error as? TextEncoderError)?.code == "invalid_token_id" && "\(error)".contains("token 1 has id 100")
        }
        #expect { _ = try encoder.embed([0, -1]) } throws: { ($0 as? TextEncoderError)?.code == "invalid_token_id" }
        #expect { _ = try encoder.embed([Int](repeating: 5, count: 39)) } throws: {
            ($0 as? TextEncoderError)?.code == "sequence_too_long"
        }
        #expect { _ = try encoder.embed(batch: [[0, 2], []]) } throws: { error in
            (error as? TextEncoderError)?.code == "empty_input" && "\(error)".contains("sequence 1")
        }
        _ = try encoder.embed([Int](repeating: 5, count: 38))  // the longest that fits
    }
}

@Suite struct TextEncoderBertTests {
    let package: ModelPackage
    let expected: TextFixture

    init() throws { (package, expected) = try TextFixture.load("text_bert_small") }

    @Test func meanPoolingProjectionMatchesReference() throws {
        let encoder = try TextEncoder(package: package)
        try package.weights.requireAllClaimed()  // no pooler in a mean-pooling package
        #expect(encoder.outputSize == 16)
        #expect(encoder.maxTokens == 40)
        let batch = try encoder.embed(batch: expected.sequences)
        for (i, ids) in expected.sequences.enumerated() {
            let err = maxAbsDiff(batch[i], expected.embeddings[i])
            #expect(err <= 1e-4, "sequence \(i) (\(ids.count) tokens): max abs \(err)")
            #expect(cosine(batch[i], expected.embeddings[i]) >= 0.9999)
        }
    }

    @Test func sentenceEmbeddingWithoutProjection() throws {
        var config = try package.section("text", as: TextEncoderConfiguration.self)
        config.projection = nil
        config.normalizePooled = false
        let encoder = try TextEncoder(configuration: config, parameters: package.weights)
        #expect(encoder.outputSize == 32)
        let sentences = try #require(expected.sentence_embeddings)
        for (i, ids) in expected.sequences.enumerated() {
            let out = try encoder.embed(ids)
            #expect(maxAbsDiff(out, sentences[i]) <= 1e-4, "sequence \(i)")
            let norm = out.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
    }

    @Test func hiddenStatesMatch() throws {
        let encoder = try TextEncoder(package: package)
        let hidden = try #require(expected.hidden_states)
        for (i, ids) in expected.sequences.enumerated() {
            #expect(maxAbsDiff(try encoder.hiddenStates(ids), hidden[i]) <= 1e-4, "sequence \(i)")
        }
    }
}

@Suite struct TextEncoderMiniLMTruncatedTests {
    @Test func realMiniLMWeightsFirstLayer() throws {
        let (package, expected) = try TextFixture.load("text_minilm_truncated")
        let encoder = try TextEncoder(package: package)
        try package.weights.requireAllClaimed()
        #expect(encoder.outputSize == 384)
        let out = try encoder.embed(batch: expected.sequences)
        var worstCos = 1.0
        var worstAbs: Float = 0
        for i in expected.sequences.indices {
            worstCos = min(worstCos, cosine(out[i], expected.embeddings[i]))
            worstAbs = max(worstAbs, maxAbsDiff(out[i], expected.embeddings[i]))
        }
        #expect(expected.sequences.count >= 50)
        #expect(worstCos >= 0.9999, "min cosine \(worstCos)")
        #expect(worstAbs <= 1e-4, "max abs \(worstAbs)")
    }
}

@Suite struct TextEncoderLoadingTests {
    func robertaPackage() throws -> ModelPackage {
        try ModelPackage.load(directory: TextFixture.directory("text_roberta_small"))
    }

    @Test func missingTensorIsNamed() throws {
        let package = try robertaPackage()
        var config = try package.section("text", as: TextEncoderConfiguration.self)
        config.numLayers = 3
        #expect { _ = try TextEncoder(configuration: config, parameters: package.weights) } throws: { error in
            (error as? ParameterError)?.code == "missing_tensor"
                && "\(error)".contains("text_model.encoder.layer.2.attention.self.query.weight")
        }
        let weights = package.weights
        #expect {
            _ = try TextEncoder(configuration: config, parameters: weights, projectionPrefix: "projection.")
        } throws: { ($0 as? ParameterError)?.code == "missing_tensor" }
        config.numLayers = 2
        #expect {
            _ = try TextEncoder(configuration: config, parameters: weights, projectionPrefix: "projection.")
        } throws: { error in
            (error as? ParameterError)?.code == "missing_tensor" && "\(error)".contains("projection.linear1.weight")
        }
        config.pooling = .firstPooler
        #expect {
            _ = try TextEncoder(configuration: config, parameters: weights, prefix: "text.")
        } throws: { error in
            "\(error)".contains("text.embeddings.word_embeddings.weight")
        }
    }

    @Test func misshapenTensorIsNamed() throws {
        let package = try robertaPackage()
        let base = try package.section("text", as: TextEncoderConfiguration.self)
        var config = base
        config.intermediateSize = 48
        #expect { _ = try TextEncoder(configuration: config, parameters: package.weights) } throws: { error in
            (error as? ParameterError)?.code == "tensor_shape_mismatch"
                && "\(error)".contains("text_model.encoder.layer.0.intermediate.dense.weight")
        }
        config = base
        config.vocabSize = 101
        #expect { _ = try TextEncoder(configuration: config, parameters: package.weights) } throws: { error in
            (error as? ParameterError)?.code == "tensor_shape_mismatch"
                && "\(error)".contains("text_model.embeddings.word_embeddings.weight")
        }
        config = base
        config.projection = .init(hiddenSize: 16, outputSize: 8)
        #expect { _ = try TextEncoder(configuration: config, parameters: package.weights) } throws: { error in
            (error as? ParameterError)?.code == "tensor_shape_mismatch"
                && "\(error)".contains("text_projection.linear2.weight")
        }
    }

    @Test func invalidConfigurationIsRefused() throws {
        let package = try robertaPackage()
        var config = try package.section("text", as: TextEncoderConfiguration.self)
        config.numHeads = 5
        #expect { _ = try TextEncoder(configuration: config, parameters: package.weights) } throws: { error in
            (error as? TextEncoderError)?.code == "invalid_configuration" && "\(error)".contains("num_heads")
        }
        config.numHeads = 4
        config.hiddenAct = "relu"
        #expect(config.validationError() != nil)
        config.hiddenAct = "gelu"
        config.maxPositionEmbeddings = 2
        #expect(config.validationError()?.contains("max_position_embeddings") == true)
    }

    @Test func sectionDecodingDefaultsAndTokenizerKey() throws {
        let json = """
        {"architecture": "bert", "vocab_size": 30522, "hidden_size": 384, "num_layers": 6, "num_heads": 12,
         "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2,
         "layer_norm_eps": 1e-12, "pooling": "mean", "projection": null,
         "tokenizer": {"type": "wordpiece", "vocab": "tokenizer/vocab.txt"}}
        """
        let config = try JSONDecoder().decode(TextEncoderConfiguration.self, from: Data(json.utf8))
        #expect(config == .allMiniLML6V2)
        #expect(config.maxTokens == 512)
        #expect(config.outputSize == 384)

        let roberta = """
        {"architecture": "roberta", "vocab_size": 50265, "hidden_size": 768, "num_layers": 12, "num_heads": 12,
         "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1,
         "layer_norm_eps": 1e-5, "pad_token_id": 1, "pooling": "first_pooler",
         "projection": {"hidden_size": 512, "output_size": 512}}
        """
        let clap = try JSONDecoder().decode(TextEncoderConfiguration.self, from: Data(roberta.utf8))
        #expect(clap == .clapRobertaBase)
        #expect(clap.maxTokens == 512)
        #expect(clap.outputSize == 512)
        // transformers' ClapTextModelWithProjection at default size has 125 302 016 parameters.
        #expect(clap.parameterCount == 125_302_016)

        let noPad = roberta.replacingOccurrences(of: "\"pad_token_id\": 1,", with: "")
        #expect(throws: DecodingError.self) {
            _ = try JSONDecoder().decode(TextEncoderConfiguration.self, from: Data(noPad.utf8))
        }
        let badPooling = roberta.replacingOccurrences(of: "first_pooler", with: "max")
        #expect(throws: DecodingError.self) {
            _ = try JSONDecoder().decode(TextEncoderConfiguration.self, from: Data(badPooling.utf8))
        }
    }

    @Test func unusedPoolerIsLeftUnclaimed() throws {
        // A `first` pooling configuration over a package with a pooler leaves the pooler's
        // tensors for requireAllClaimed to refuse.
        let package = try robertaPackage()
        var config = try package.section("text", as: TextEncoderConfiguration.self)
        config.pooling = .first
        _ = try TextEncoder(configuration: config, parameters: package.weights)
        #expect { try package.weights.requireAllClaimed() } throws: { error in
            "\(error)".contains("text_model.pooler.dense.weight")
        }
    }
}

/// Thread-safe result slots for concurrency tests.
final class TextResultBox: @unchecked Sendable {
    private var values: [[Float]]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Float]) { lock.lock(); values[i] = v; lock.unlock() }
    func get(_ i: Int) -> [Float] { lock.lock(); defer { lock.unlock() }; return values[i] }
}
