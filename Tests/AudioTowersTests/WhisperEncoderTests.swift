import AudioFrontEnd
import Foundation
import ModelPackage
import Numerics
import Testing
@testable import AudioTowers
import TestSupport

/// The Swift Whisper encoder and tower against PyTorch (Training/fixtures/make_whisper_fixtures.py):
/// `encoder_small` is a random 3-layer encoder at d_model 12 with 3 heads and 20 mel bins;
/// at 74 frames (the whole positional table) the reference is transformers' `WhisperEncoder`
/// itself, at 51 and 9 frames its submodules run unpadded (`whisper_audio.encoder_forward`). The
/// tower's pooling and projection (random weights) are `Training/pipeline/whisper_tower.Tower`.
@Suite struct WhisperEncoderTests {
    static let directory = try! #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        .appendingPathComponent("whisper")

    static func small(threads: Int? = nil) throws -> (WhisperAudioTower, ModelPackage) {
        let package = try ModelPackage.load(directory: directory.appendingPathComponent("encoder_small"))
        let tower = try WhisperAudioTower(package: package, threads: threads)
        return (tower, package)
    }

    /// `[mels, T]` -> frame-major `[T, mels]`.
    static func frameMajor(_ p: Parameter) -> [Float] {
        let rows = p.shape[0], cols = p.shape[1], v = p.values
        var out = [Float](repeating: 0, count: v.count)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = v[r * cols + c] } }
        return out
    }

    @Test(arguments: ["full", "odd51", "odd9"], [1, 2, 3])
    func hiddenStatesMatchPyTorch(case name: String, threads: Int) throws {
        let (tower, package) = try Self.small(threads: threads)
        try package.weights.requireAllClaimed()
        let io = try WeightStore(url: Self.directory.appendingPathComponent("encoder_small_io.safetensors"))
        let input = Self.frameMajor(try io.tensor("\(name).input"))
        let states = try tower.encoder.hiddenStates(input)
        #expect(states.count == 4)
        for (i, state) in states.enumerated() {
            let expected = try io.tensor("\(name).state\(i)")
            #expect(state.count == expected.count, "\(name) state \(i): \(state.count) values, expected \(expected.shape)")
            let err = maxAbsDiff(state, expected.values)
            #expect(err <= 1e-4, "\(name) state \(i) (\(threads) threads): max abs \(err)")
        }
    }

    @Test func towerEmbeddingMatchesPyTorch() throws {
        let (tower, _) = try Self.small()
        let io = try WeightStore(url: Self.directory.appendingPathComponent("encoder_small_io.safetensors"))
        let names = ["full", "odd51", "odd9"]
        // One batch of three windows of different lengths: sequences never see each other.
        let embeddings = try tower.embed(batch: names.map { Self.frameMajor(try io.tensor("\($0).input")) })
        for (name, e) in zip(names, embeddings) {
            let expected = try io.tensor("\(name).embedding").values
            #expect(maxAbsDiff(e, expected) <= 1e-5, "\(name): \(maxAbsDiff(e, expected))")
        }
    }

    @Test func refusesBadInput() throws {
        let (tower, _) = try Self.small()
        #expect(throws: AudioTowerError.self) { try tower.embed(batch: [[Float](repeating: 0, count: 19)]) }
        #expect(throws: AudioTowerError.self) { try tower.embed(batch: [[Float](repeating: 0, count: 20 * 75)]) }
        var bad = [Float](repeating: 0, count: 40)
        bad[3] = .nan
        #expect(throws: AudioTowerError.self) { try tower.embed(batch: [bad]) }
        #expect(try tower.embed(batch: [[Float](repeating: 0.1, count: 20 * 74)])[0].count == 6)
    }

    /// A missing pooling tensor is named in the error.
    @Test func missingTensorIsNamed() throws {
        let package = try ModelPackage.load(directory: Self.directory.appendingPathComponent("encoder_small"))
        let section = try package.section("audio", as: WhisperTowerConfiguration.self)
        let source = RenamedParameters(base: package.weights, hiding: "audio_model.state_scale")
        #expect {
            _ = try WhisperAudioTower(configuration: section, parameters: source)
        } throws: { ($0 as? ParameterError)?.code == "missing_tensor" && "\($0)".contains("audio_model.state_scale") }
    }
}

/// A parameter source with one tensor hidden.
struct RenamedParameters: ParameterSource {
    let base: ParameterSource
    let hiding: String
    func parameter(_ name: String, shape: [Int]) throws -> Parameter {
        guard name != hiding else { throw ParameterError.missing(name) }
        return try base.parameter(name, shape: shape)
    }
}
