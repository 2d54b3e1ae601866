import CBLAS
import Foundation
import ModelPackage
import Numerics
import Testing
@testable import AudioTowers
import TestSupport

/// Paper-size HTSAT-tiny (+ projection) with random weights against transformers, and its speed:
/// the Swift side of the audio-tower benchmark. Needs the package that
/// `Benchmarks/reference/clap_audio_reference.py prepare --out DIR` writes (113 MB, not committed):
///
///     Training/.venv/bin/python Benchmarks/reference/clap_audio_reference.py prepare --out /tmp/clap-paper
///     CLAP_AUDIO_PAPER_PACKAGE=/tmp/clap-paper swift test -c release --filter AudioPaperSizeTests
///
/// Optional: CLAP_AUDIO_ITERATIONS (default 20), CLAP_AUDIO_BATCH (default 1), CLAP_AUDIO_CORES.
/// Prints one JSON line with the timings (same fields as the reference script's `time`).
@Suite struct AudioPaperSizeTests {
    static let environment = ProcessInfo.processInfo.environment

    @Test(.enabled(if: environment["CLAP_AUDIO_PAPER_PACKAGE"] != nil, "set CLAP_AUDIO_PAPER_PACKAGE"))
    func paperSizeMatchesTransformersAndIsTimed() throws {
        let env = Self.environment
        let directory = URL(fileURLWithPath: try #require(env["CLAP_AUDIO_PAPER_PACKAGE"]))
        let package = try ModelPackage.load(directory: directory)
        let configuration = try package.section("audio", as: HTSATConfiguration.self)
        #expect(configuration == .paper)
        let cores = env["CLAP_AUDIO_CORES"].flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount
        let encoder = try CLAPAudioEncoder(configuration: configuration, parameters: package.weights, cores: cores)
        try package.weights.requireAllClaimed()

        let io = try WeightStore(url: directory.appendingPathComponent("io.safetensors"))
        let features = try AudioEncoderTests.items(io, "features")
        let embeddings = try AudioEncoderTests.items(io, "embedding")
        let pooled = try AudioEncoderTests.items(io, "pooled")
        let outputs = try encoder.encode(features)
        var worst: Float = 0
        for (b, out) in outputs.enumerated() {
            let err = maxAbsDiff(out.embedding, embeddings[b])
            let cos = cosine(out.embedding, embeddings[b])
            worst = max(worst, err)
            #expect(err <= 1e-4 && cos >= 0.9999, "window \(b): max abs \(err), cosine \(cos)")
            #expect(maxAbsDiff(out.pooled, pooled[b]) <= 1e-3)
        }

        let iterations = env["CLAP_AUDIO_ITERATIONS"].flatMap(Int.init) ?? 20
        let batchSize = env["CLAP_AUDIO_BATCH"].flatMap(Int.init) ?? 1
        let batch = (0..<batchSize).map { features[$0 % features.count] }
        for _ in 0..<3 { _ = try encoder.embed(batch: batch) }
        var times: [Double] = []
        for _ in 0..<iterations {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try encoder.embed(batch: batch)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        let kernelPath = KernelPath.current
        let line: [String: Any] = [
            "engine": "swift", "batch": batchSize, "threads": cores, "iterations": iterations,
            "median_ms": times[times.count / 2], "min_ms": times[0],
            "p90_ms": times[min(times.count - 1, Int((0.9 * Double(times.count)).rounded(.up)) - 1)],
            "peak_rss_mb": peakRSSMegabytes(), "max_abs_err": Double(worst),
            "openblas_core": String(cString: openblas_get_corename()),
            "kernels": kernelPath.kernels, "cpu": kernelPath.cpu,
        ]
        let json = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }
}
