import Foundation
import ModelPackage
import Numerics
import Testing
@testable import TextTower
import TestSupport

/// Opt-in benchmark hook (not a regression test; shown as skipped unless enabled): the Swift side
/// of Benchmarks/encoders.sh for the paper-size CLAP text tower. Needs the package that
/// `Benchmarks/reference/clap_text_reference.py prepare --out DIR` writes (RoBERTa-base + pooler
/// + projection, random weights, 500 MB, not committed):
///
///     swift build -c release --build-tests -Xswiftc -enable-testing
///     ENCODER_BENCH_TEXT_PACKAGE=DIR swift test -c release --skip-build -Xswiftc -enable-testing \
///         --filter EncoderBenchmarkTests
///
/// Optional: ENCODER_BENCH_ITERATIONS (default 30), ENCODER_BENCH_WARMUP (3), ENCODER_BENCH_BATCH (1),
/// ENCODER_BENCH_THREADS (2). Checks the embeddings against DIR/io.json (transformers) and prints
/// one JSON line with the same fields as the reference script's `time`. (The audio tower's hook is
/// AudioPaperSizeTests.)
@Suite struct EncoderBenchmarkTests {
    static let environment = ProcessInfo.processInfo.environment

    @Test(.enabled(if: environment["ENCODER_BENCH_TEXT_PACKAGE"] != nil, "opt-in: set ENCODER_BENCH_TEXT_PACKAGE"))
    func textTowerBenchmark() throws {
        let env = Self.environment
        let directory = URL(fileURLWithPath: try #require(env["ENCODER_BENCH_TEXT_PACKAGE"]))
        let iterations = env["ENCODER_BENCH_ITERATIONS"].flatMap(Int.init) ?? 30
        let warmup = env["ENCODER_BENCH_WARMUP"].flatMap(Int.init) ?? 3
        let batchSize = env["ENCODER_BENCH_BATCH"].flatMap(Int.init) ?? 1
        let threads = env["ENCODER_BENCH_THREADS"].flatMap(Int.init) ?? 2

        let package = try ModelPackage.load(directory: directory)
        let encoder = try TextEncoder(package: package, threads: threads)
        try package.weights.requireAllClaimed()

        struct IO: Decodable { let ids: [[Int]]; let embedding: [[Float]] }
        let io = try JSONDecoder().decode(IO.self, from: Data(contentsOf: directory.appendingPathComponent("io.json")))
        let outputs = try encoder.embed(batch: io.ids)
        var worst: Float = 0
        for (b, out) in outputs.enumerated() {
            let err = maxAbsDiff(out, io.embedding[b])
            worst = max(worst, err)
            #expect(err <= 1e-4, "transcript \(b): max abs \(err)")
        }

        let batch = (0..<batchSize).map { io.ids[$0 % io.ids.count] }
        for _ in 0..<warmup { _ = try encoder.embed(batch: batch) }
        var times: [Double] = []
        for _ in 0..<iterations {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try encoder.embed(batch: batch)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        let line: [String: Any] = [
            "engine": "swift", "batch": batchSize, "threads": threads, "iterations": iterations,
            "tokens": batch[0].count, "median_ms": times[times.count / 2], "min_ms": times[0],
            "p90_ms": times[min(times.count - 1, Int((0.9 * Double(times.count)).rounded(.up)) - 1)],
            "peak_rss_mb": peakRSSMegabytes(), "max_abs_err": Double(worst),
        ]
        let json = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }
}
