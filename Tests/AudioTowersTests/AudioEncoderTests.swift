import Foundation
import ModelPackage
import Numerics
import Testing
@testable import AudioTowers
import TestSupport

/// The Swift HTSAT audio tower against transformers' ClapAudioModelWithProjection with random
/// weights (Training/fixtures/make_clap_audio_fixtures.py):
/// - `audio_small`: embed 8, depths 2/1/2/2, heads 2/2/4/4, window 8 (shifted windows with masks in
///   stages 1-3; the last stage is one 8x8 window, unshifted), projection 32; random and realistic
///   (ClapFeatureExtractor on synthetic signals) features, 1001 x 64.
/// - `audio_pad`: patch 6 / stride 4 (padded convolution), window 6 (every stage's grid padded to
///   whole windows, shifted masks on the padded grid), no q/k/v bias, layer_norm_eps 1e-4; inputs of
///   1001, 1024 (no interpolation) and 300 frames.
@Suite struct AudioEncoderTests {
    static func fixture(_ name: String) throws -> URL {
        let base = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return base.appendingPathComponent(name)
    }

    static func load(_ name: String, cores: Int = ProcessInfo.processInfo.activeProcessorCount) throws
        -> (CLAPAudioEncoder, ModelPackage) {
        let package = try ModelPackage.load(directory: try fixture(name))
        let configuration = try package.section("audio", as: HTSATConfiguration.self)
        let encoder = try CLAPAudioEncoder(configuration: configuration, parameters: package.weights, cores: cores)
        return (encoder, package)
    }

    /// Rows of a `[items, ...]` reference tensor.
    static func items(_ io: WeightStore, _ name: String) throws -> [[Float]] {
        let t = try io.tensor(name)
        let n = t.shape[0], per = t.count / n
        let v = t.values
        return (0..<n).map { Array(v[($0 * per)..<(($0 + 1) * per)]) }
    }


    /// Checks embeddings, projections and pooled outputs of set `prefix`, and the F16 intermediates.
    static func checkParity(_ fixture: String, io ioName: String, sets: [String], cores: Int? = nil) throws {
        let (encoder, package) = try load(fixture, cores: cores ?? ProcessInfo.processInfo.activeProcessorCount)
        try package.weights.requireAllClaimed()  // every reference tensor is used
        let io = try WeightStore(url: try Self.fixture(ioName))
        for set in sets {
            let features = try items(io, "\(set).features")
            var seen: [String: [Float]] = [:]
            let outputs = try encoder.encode(features) { name, buffer in seen[name] = Array(buffer) }
            for (b, out) in outputs.enumerated() {
                let embedding = try items(io, "\(set).embedding")[b]
                let err = maxAbsDiff(out.embedding, embedding), cos = cosine(out.embedding, embedding)
                #expect(err <= 1e-4 && cos >= 0.9999, "\(fixture) \(set)[\(b)] embedding: max abs \(err), cosine \(cos)")
                let projected = try items(io, "\(set).projected")[b]
                #expect(maxAbsDiff(out.projected, projected) <= 2e-4, "\(set)[\(b)] projected: \(maxAbsDiff(out.projected, projected))")
                let pooled = try items(io, "\(set).pooled")[b]
                #expect(maxAbsDiff(out.pooled, pooled) <= 2e-4, "\(set)[\(b)] pooled: \(maxAbsDiff(out.pooled, pooled))")
            }
            // Intermediates are stored as float16: compare within its rounding.
            for name in io.names where name.hasPrefix(set + ".") && !name.hasSuffix("features") {
                let key = String(name.dropFirst(set.count + 1))
                guard let mine = seen[key] else { continue }
                let reference = try io.tensor(name).values
                let tolerance = 2e-3 * max(1, reference.map { abs($0) }.max() ?? 1)
                #expect(maxAbsDiff(mine, reference) <= tolerance, "\(set).\(key): \(maxAbsDiff(mine, reference))")
            }
            #expect(Set(seen.keys).isSuperset(of: ["patch_embed", "stage0"]))
        }
    }

    @Test func smallModelMatchesTransformers() throws {
        try Self.checkParity("audio_small", io: "audio_small_io.safetensors", sets: ["random", "real"])
    }

    @Test func paddedWindowsMatchTransformers() throws {
        try Self.checkParity("audio_pad", io: "audio_pad_io.safetensors", sets: ["random", "full", "short"])
    }

    @Test(arguments: [1, 2, 3, 5])
    func resultsDoNotDependOnCoreCount(cores: Int) throws {
        try Self.checkParity("audio_small", io: "audio_small_io.safetensors", sets: ["random"], cores: cores)
    }

    @Test func batchItemsAreIndependent() throws {
        let (encoder, _) = try Self.load("audio_small")
        let io = try WeightStore(url: try Self.fixture("audio_small_io.safetensors"))
        let batch = try Self.items(io, "random.features") + Self.items(io, "real.features")
        let together = try encoder.embed(batch: batch)
        // A batch may be scheduled differently from one window (window chunks vs heads split),
        // which changes the order of some float sums: equal within 1e-5, not bit for bit.
        for (b, item) in batch.enumerated() {
            let alone = try encoder.embed(item)
            #expect(maxAbsDiff(alone, together[b]) <= 1e-5, "item \(b)")
        }
        // Different frame counts in one batch.
        let mixed = [Array(batch[0].prefix(300 * 64)), batch[1]]
        let outputs = try encoder.embed(batch: mixed)
        #expect(maxAbsDiff(outputs[0], try encoder.embed(mixed[0])) <= 1e-5)
        #expect(maxAbsDiff(outputs[1], together[1]) <= 1e-5)
        #expect(try encoder.embed(batch: []).isEmpty)
    }

    @Test func concurrentCallsAgree() async throws {
        let (encoder, _) = try Self.load("audio_small")
        let io = try WeightStore(url: try Self.fixture("audio_small_io.safetensors"))
        let features = try Self.items(io, "real.features")
        let expected = try encoder.embed(batch: features)
        try await withThrowingTaskGroup(of: [[Float]].self) { group in
            for _ in 0..<4 { group.addTask { try encoder.embed(batch: features) } }
            for try await result in group {
                for (a, b) in zip(result, expected) { #expect(maxAbsDiff(a, b) <= 1e-6) }
            }
        }
    }

    @Test func invalidFeaturesAreRefused() throws {
        let (encoder, _) = try Self.load("audio_small")
        func code(_ features: [Float]) -> String? {
            do { _ = try encoder.embed(features); return nil } catch let e as AudioTowerError { return e.code } catch { return "other" }
        }
        #expect(code([Float](repeating: 0, count: 64 * 10 + 3)) == "invalid_features")
        #expect(code([]) == "invalid_features")
        #expect(code([Float](repeating: 0, count: 64 * 1025)) == "invalid_features")
        var nan = [Float](repeating: -40, count: 64 * 1001)
        nan[77] = .nan
        #expect(code(nan) == "invalid_features")
        #expect(code([Float](repeating: -40, count: 64)) == nil)  // one frame is stretched
        #expect(code([Float](repeating: -40, count: 64 * 1024)) == nil)
    }

    /// Hides some tensors of a source.
    struct Hiding: ParameterSource {
        let base: ParameterSource
        let hidden: Set<String>
        func parameter(_ name: String, shape: [Int]) throws -> Parameter {
            if hidden.contains(name) { throw ParameterError.missing(name) }
            return try base.parameter(name, shape: shape)
        }
    }

    @Test func missingOrMisshapenTensorIsNamed() throws {
        let package = try ModelPackage.load(directory: try Self.fixture("audio_small"))
        let config = try package.section("audio", as: HTSATConfiguration.self)
        for name in ["audio_model.audio_encoder.layers.2.blocks.1.attention.self.relative_position_bias_table",
                     "audio_model.audio_encoder.batch_norm.running_var",
                     "audio_model.audio_encoder.layers.0.downsample.reduction.weight",
                     "audio_projection.linear2.bias"] {
            #expect {
                _ = try CLAPAudioEncoder(configuration: config, parameters: Hiding(base: package.weights, hidden: [name]))
            } throws: { error in
                (error as? ParameterError)?.code == "missing_tensor" && "\(error)".contains(name)
            }
        }
        var moreHeads = config
        moreHeads.numHeads = [2, 4, 4, 4]
        #expect {
            _ = try CLAPAudioEncoder(configuration: moreHeads, parameters: package.weights)
        } throws: { error in
            (error as? ParameterError)?.code == "tensor_shape_mismatch"
                && "\(error)".contains("layers.1.blocks.0.attention.self.relative_position_bias_table")
        }
        var wider = config
        wider.projectionDim = 48
        #expect {
            _ = try CLAPAudioEncoder(configuration: wider, parameters: package.weights)
        } throws: { error in
            (error as? ParameterError)?.code == "tensor_shape_mismatch" && "\(error)".contains("audio_projection.linear1.weight")
        }
        var deeper = config
        deeper.depths = [2, 1, 2, 3]
        #expect {
            _ = try CLAPAudioEncoder(configuration: deeper, parameters: package.weights)
        } throws: { error in
            (error as? ParameterError)?.code == "missing_tensor" && "\(error)".contains("layers.3.blocks.2.")
        }
    }

    @Test func configurationDecodesAndValidates() throws {
        let paper = HTSATConfiguration.paper
        #expect(paper.validationError() == nil)
        #expect(paper.parameterCount == 28_191_000)  // float tensors of ClapAudioModelWithProjection()
        #expect(paper.outputWidth == 768 && paper.freqRatio == 4 && paper.specFrames == 1024)
        #expect(paper.grid == .init(64) && paper.resolution(stage: 3) == .init(8))

        let json = #"{"patch_embeds_hidden_size": 16, "depths": [2, 2], "num_attention_heads": [2, 4], "patch_stride": [4, 4], "projection_dim": 64, "sample_rate": 48000}"#
        let small = try JSONDecoder().decode(HTSATConfiguration.self, from: Data(json.utf8))
        #expect(small.embedDim == 16 && small.depths == [2, 2] && small.patchStride == .init(4) && small.windowSize == 8)
        #expect(small.validationError() == nil)
        let roundTrip = try JSONDecoder().decode(HTSATConfiguration.self, from: JSONEncoder().encode(small))
        #expect(roundTrip == small)

        // The front-end's n_mels stands in for num_mel_bins; both given, they must agree.
        let frontEnd = try JSONDecoder().decode(HTSATConfiguration.self, from: Data(#"{"n_mels": 32, "spec_size": 128, "depths": [2, 2], "num_attention_heads": [4, 8]}"#.utf8))
        #expect(frontEnd.numMelBins == 32 && frontEnd.freqRatio == 4 && frontEnd.validationError() == nil)
        let clash = try JSONDecoder().decode(HTSATConfiguration.self, from: Data(#"{"n_mels": 40, "num_mel_bins": 64}"#.utf8))
        #expect(clash.validationError()?.contains("n_mels") == true)

        func problem(_ change: (inout HTSATConfiguration) -> Void) -> String {
            var c = HTSATConfiguration.paper
            change(&c)
            return c.validationError() ?? ""
        }
        #expect(problem { $0.enableFusion = true }.contains("enable_fusion"))
        #expect(problem { $0.specSize = 200 }.contains("spec_size"))
        #expect(problem { $0.numHeads = [4, 8, 16] }.contains("num_attention_heads"))
        #expect(problem { $0.numHeads = [5, 8, 16, 32] }.contains("stage 0"))
        #expect(problem { $0.windowSize = 16 }.contains("smaller than window_size"))
        #expect(problem { $0.depths = [2, 2, 2, 2, 2, 2, 2, 2] ; $0.numHeads = [1, 1, 1, 1, 1, 1, 1, 1] }.contains("divisible"))
        #expect(problem { $0.hiddenSize = 512 }.contains("hidden_size"))
        #expect(problem { $0.hiddenAct = "relu" }.contains("hidden_act"))
        #expect(problem { $0.patchSize = .init(2) }.contains("patch_size"))

        #expect {
            _ = try CLAPAudioEncoder(configuration: HTSATConfiguration(enableFusion: true), parameters: InMemoryParameters())
        } throws: { ($0 as? AudioTowerError)?.code == "invalid_configuration" }
    }

    @Test func packageLoaderReadsTheAudioSection() throws {
        let package = try ModelPackage.load(directory: try Self.fixture("audio_small"))
        let encoder = try CLAPAudioEncoder(package: package)
        #expect(encoder.configuration.depths == [2, 1, 2, 2] && encoder.configuration.projectionDim == 32)
        try package.weights.requireAllClaimed()
    }

    @Test func bicubicTapsFollowPyTorch() {
        // Identity when sizes agree (align_corners): weights (0, 1, 0, 0) on the sample itself.
        let same = HTSATImageBuilder.bicubicTaps(input: 64, output: 64)
        for i in 0..<64 {
            #expect(same.weights[(4 * i)..<(4 * i + 4)] == [0, 1, 0, 0])
            #expect(same.indices[4 * i + 1] == i)
        }
        // Endpoints map to endpoints; indices clamp at the borders.
        let up = HTSATImageBuilder.bicubicTaps(input: 1001, output: 1024)
        #expect(up.indices[0..<4] == [0, 0, 1, 2] && up.weights[0..<4] == [0, 1, 0, 0])
        #expect(up.indices[4 * 1023 + 1] == 1000 && up.indices[4 * 1023 + 3] == 1000)
        for i in 0..<1024 { #expect(abs(up.weights[(4 * i)..<(4 * i + 4)].reduce(0, +) - 1) < 1e-6) }
    }

    @Test func windowLayoutMatchesTransformersPartition() {
        // 16x16 grid, window 8, shift 4: 4 windows; window 0 starts at grid (4, 4).
        let shifted = SwinWindowLayout(height: 16, width: 16, window: 8, shift: 4)
        #expect(shifted.windowsPerItem == 4 && !shifted.hasPadding)
        #expect(shifted.tokenIndex[0] == Int32(4 * 16 + 4))
        // Window 3 (bottom right) wraps around: its token (4, 4) is grid (0, 0).
        #expect(shifted.tokenIndex[3 * 64 + 4 * 8 + 4] == 0)
        // Only the last column/row/corner windows are masked; three distinct masks.
        #expect(shifted.maskIndex[0] == -1 && shifted.masks.count == 3)
        // Every token appears exactly once.
        #expect(Set(shifted.tokenIndex).count == 256 && !shifted.tokenIndex.contains(-1))
        // Padding: 10x10 grid, window 6 -> 12x12 padded, 4 windows, 44 padding slots.
        let padded = SwinWindowLayout(height: 10, width: 10, window: 6, shift: 3)
        #expect(padded.windowsPerItem == 4 && padded.hasPadding)
        #expect(padded.tokenIndex.filter { $0 < 0 }.count == 44)
        #expect(Set(padded.tokenIndex.filter { $0 >= 0 }).count == 100)
    }
}
