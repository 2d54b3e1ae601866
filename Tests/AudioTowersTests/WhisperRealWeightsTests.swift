import AudioFrontEnd
import Foundation
import ModelPackage
import Testing
@testable import AudioTowers
import TestSupport

/// The real Whisper-base encoder, as the shipped default model holds it (f16), against a PyTorch
/// forward of the same converted weights (Training/fixtures/make_whisper_fixtures.py,
/// `real-encoder-reference.safetensors`): per-state mean and std over time and the first frames
/// of the last state, for three clips decoded and featurised by the Swift front end. Another
/// package holding the same encoder can be checked with WHISPER_PACKAGE=DIR.
@Suite struct WhisperRealWeightsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized
    static let clips = repository.appendingPathComponent("Tests/SharedFixtures/whisper-clips")
    static var packageDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["WHISPER_PACKAGE"] { return URL(fileURLWithPath: path) }
        return repository.appendingPathComponent("Models/default")
    }

    @Test(arguments: ["tones_gap", "chirp", "hello"])
    func statisticsMatchPyTorch(clip: String) throws {
        let package = try ModelPackage.load(directory: Self.packageDirectory)
        let section = try package.section("audio", as: WhisperTowerConfiguration.self)
        let encoder = try WhisperEncoder(configuration: section.encoder, parameters: package.weights)
        let frontEnd = try AudioFrontEnd(configuration: package.section("audio", as: AudioFrontEndConfiguration.self))
        let features = try frontEnd.features(encoded: Data(contentsOf: Self.clips.appendingPathComponent("\(clip).wav")))
        let window = try #require(features.windows.first).features.values
        let reference = try WeightStore(url: try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("whisper/real-encoder-reference.safetensors"))
        let states = try encoder.hiddenStates(window)
        let d = section.encoder.dModel, eps = 1e-6
        var mean: [Float] = [], std: [Float] = []
        for state in states {
            let rows = state.count / d
            for j in 0..<d {
                let column = (0..<rows).map { Double(state[$0 * d + j]) }
                let m = column.reduce(0, +) / Double(rows)
                mean.append(Float(m))
                std.append(Float((column.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(rows) + eps).squareRoot()))
            }
        }
        for (name, mine) in [("mean", mean), ("std", std)] {
            let expected = try reference.tensor("\(clip).\(name)").values
            let scale = expected.map { abs($0) }.max() ?? 1
            let relative = maxAbsDiff(mine, expected) / scale
            #expect(relative <= 1e-3, "\(clip) \(name): max abs \(maxAbsDiff(mine, expected)) of \(scale)")
        }
        let last = try #require(states.last)
        let expected = try reference.tensor("\(clip).last_first8").values
        let mine = Array(last.prefix(expected.count))
        let scale = expected.map { abs($0) }.max() ?? 1
        #expect(maxAbsDiff(mine, expected) / scale <= 1e-3, "\(clip) last state: \(maxAbsDiff(mine, expected)) of \(scale)")
    }
}
