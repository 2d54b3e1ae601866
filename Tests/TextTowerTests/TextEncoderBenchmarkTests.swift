import Foundation
import Numerics
import Testing
import TestSupport
import TextTower

/// Paper-size CLAP text tower (RoBERTa-base + pooler + projection, 125.3 M parameters, random
/// weights) on one transcript: timing only, no assertion on speed. Runs only when
/// CLAP_TEXT_BENCH is set (its value: tokens per transcript, default 20), in a release build:
///
///     swift build -c release --build-tests
///     CLAP_TEXT_BENCH=20 swift test -c release --skip-build --filter TextEncoderBenchmarkTests
///
/// Optional: CLAP_TEXT_BENCH_THREADS (default 2), CLAP_TEXT_BENCH_ITERATIONS (default 30),
/// CLAP_TEXT_BENCH_BATCH (default 8, a second measurement with that many transcripts),
/// CLAP_TEXT_BENCH_KERNEL (packed or blas, default packed).
@Suite struct TextEncoderBenchmarkTests {
    static let environment = ProcessInfo.processInfo.environment

    @Test(.enabled(if: environment["CLAP_TEXT_BENCH"] != nil, "set CLAP_TEXT_BENCH to run"))
    func paperSizeTextTower() throws {
        let env = Self.environment
        let tokens = Int(env["CLAP_TEXT_BENCH"] ?? "") ?? 20
        let threads = Int(env["CLAP_TEXT_BENCH_THREADS"] ?? "") ?? 2
        let iterations = Int(env["CLAP_TEXT_BENCH_ITERATIONS"] ?? "") ?? 30
        let batchSize = Int(env["CLAP_TEXT_BENCH_BATCH"] ?? "") ?? 8
        let config = TextEncoderConfiguration.clapRobertaBase

        let start = Date()
        let parameters = RandomTextParameters(config: config, seed: 1234)
        let kernel = TextEncoder.ProductKernel(rawValue: env["CLAP_TEXT_BENCH_KERNEL"] ?? "") ?? .packed
        let encoder = try TextEncoder(configuration: config, parameters: parameters, threads: threads, kernel: kernel)
        let loadSeconds = Date().timeIntervalSince(start)

        var rng = SplitMix64(seed: 99)
        func transcript(_ n: Int) -> [Int] {
            [0] + (0..<(n - 2)).map { _ in 3 + Int(rng.next() % UInt64(config.vocabSize - 3)) } + [2]
        }
        let ids = transcript(tokens)
        func measure(_ body: () throws -> Void) rethrows -> [Double] {
            for _ in 0..<3 { try body() }
            var times: [Double] = []
            for _ in 0..<iterations {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            return times.sorted()
        }
        let single = try measure { _ = try encoder.embed(ids) }
        let batch = (0..<batchSize).map { transcript(tokens - 4 + $0 % 9) }
        let batched = try measure { _ = try encoder.embed(batch: batch) }
        let out = try encoder.embed(ids)
        #expect(out.count == 512 && out.allSatisfy(\.isFinite))
        func summary(_ t: [Double]) -> String {
            String(format: "min %.2f ms, median %.2f ms, p90 %.2f ms", t[0], t[t.count / 2], t[t.count * 9 / 10])
        }
        print("""
        CLAP text tower (RoBERTa-base, \(config.parameterCount) parameters), \(threads) threads, kernel \(kernel.rawValue), \
        vectorised kernel: \(KernelPath.isVectorized), set-up \(String(format: "%.1f", loadSeconds)) s
          1 x \(tokens) tokens: \(summary(single))
          batch of \(batchSize) (\(batch.map(\.count).reduce(0, +)) tokens): \(summary(batched)), \
        per transcript \(String(format: "%.2f", batched[batched.count / 2] / Double(batchSize))) ms
        """)
    }
}

/// Generated weights for every tensor a configuration asks for (uniform, std about 0.02 for
/// matrices; LayerNorm weights near 1), without holding a second copy: each tensor is made on
/// request.
final class RandomTextParameters: ParameterSource, @unchecked Sendable {
    private var rng: SplitMix64
    private let lock = NSLock()

    init(config: TextEncoderConfiguration, seed: UInt64) { rng = SplitMix64(seed: seed) }

    func parameter(_ name: String, shape: [Int]) throws -> Parameter {
        lock.lock()
        defer { lock.unlock() }
        let count = shape.reduce(1, *)
        let storage = FloatStorage(count: count)
        let p = storage.pointer
        if name.hasSuffix("LayerNorm.weight") {
            for i in 0..<count { p[i] = 1 + 0.1 * rng.uniform() }
        } else {
            let scale: Float = name.hasSuffix("bias") ? 0.02 : 0.035
            for i in 0..<count { p[i] = scale * rng.uniform() }
        }
        return Parameter(name: name, shape: shape, pointer: UnsafePointer(p), owner: storage)
    }
}

