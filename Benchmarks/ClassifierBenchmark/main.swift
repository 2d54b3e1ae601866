import Foundation
import GatedXLSTM
import ModelPackage
import Numerics

/// `classifier-bench --model DIR --batch B [--iterations N] [--warmup W] [--weight-precision f32|bf16]`
///
/// Times the Swift gated xLSTM classifier on the inputs of DIR/io.safetensors (written by
/// Benchmarks/reference/classifier_reference.py) and checks parity against the PyTorch logits
/// stored there. Prints one JSON line, the same shape as the Python reference's.

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("classifier-bench: \(message)\n".utf8))
    exit(2)
}

var options: [String: String] = [:]
var args = CommandLine.arguments.dropFirst()
while let key = args.popFirst() {
    guard key.hasPrefix("--"), let value = args.popFirst() else { fail("usage: --model DIR --batch B [--iterations N] [--warmup W]") }
    options[String(key.dropFirst(2))] = value
}
guard let modelPath = options["model"] else { fail("--model is required") }
let batchSize = Int(options["batch"] ?? "1") ?? 1
let iterations = Int(options["iterations"] ?? "30") ?? 30
let warmup = Int(options["warmup"] ?? "3") ?? 3
let precision = options["weight-precision"].map { raw -> Linear.Precision in
    guard let p = Linear.Precision(rawValue: raw) else { fail("--weight-precision must be f32 or bf16") }
    return p
}

func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? -1
        return kb / 1024
    }
    return -1
}

let directory = URL(fileURLWithPath: modelPath)
let loadStart = DispatchTime.now()
let classifier: GatedXLSTMClassifier
let io: WeightStore
do {
    let package = try ModelPackage.load(directory: directory, weightPrecision: precision)
    classifier = try GatedXLSTMClassifier(package: package)
    io = try WeightStore(url: directory.appendingPathComponent("io.safetensors"))
} catch {
    fail("\(error)")
}
let loadMs = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6

let input: Parameter, reference: Parameter
do {
    input = try io.tensor("input")
    reference = try io.tensor("logits")
} catch { fail("\(error)") }
let (rows, streams, dim) = (input.shape[0], input.shape[1], input.shape[2])
let values = input.values, refLogits = reference.values
let batch: [[[Float]]] = (0..<batchSize).map { i in
    let r = i % rows
    return (0..<streams).map { s in Array(values[((r * streams + s) * dim)..<((r * streams + s + 1) * dim)]) }
}

var maxAbs: Float = 0, maxRef: Float = 0
var timings: [Double] = []
do {
    for _ in 0..<warmup { _ = try classifier.classify(batch) }
    for _ in 0..<iterations {
        let t0 = DispatchTime.now()
        let out = try classifier.classify(batch)
        timings.append(Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6)
        if maxRef == 0 {
            let l = reference.shape[1]
            for (i, c) in out.enumerated() {
                for j in 0..<l {
                    let ref = refLogits[(i % rows) * l + j]
                    maxAbs = max(maxAbs, abs(c.logits[j] - ref))
                    maxRef = max(maxRef, abs(ref))
                }
            }
        }
    }
} catch { fail("\(error)") }

// The critical path with work ahead: the batch's context stacks prepared between turns (as the
// server does when no turn waits), only the current turns' 4 stacks timed; checked the same way.
var preparedTimings: [Double] = []
var preparedMaxAbs: Float = 0
do {
    let prepared = try batch.map { try classifier.prepareContext(previous: Array($0[4..<8]), beforePrevious: Array($0[8..<12])) }
    for _ in 0..<warmup { _ = try classifier.classify(batch, prepared: prepared) }
    for _ in 0..<iterations {
        let t0 = DispatchTime.now()
        let out = try classifier.classify(batch, prepared: prepared)
        preparedTimings.append(Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6)
        let l = reference.shape[1]
        for (i, c) in out.enumerated() {
            for j in 0..<l { preparedMaxAbs = max(preparedMaxAbs, abs(c.logits[j] - refLogits[(i % rows) * l + j])) }
        }
    }
} catch { fail("\(error)") }

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return .nan }
    let pos = p * Double(s.count - 1)
    let lo = Int(pos.rounded(.down)), hi = Int(pos.rounded(.up))
    return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
}

let b = Double(batchSize)
let kernelPath = KernelPath.current
let result: [String: Any] = [
    "engine": "swift", "kernels": kernelPath.kernels, "cpu": kernelPath.cpu,
    "weight_precision": (precision ?? .f32).rawValue,
    "batch": batchSize,
    "threads": ProcessInfo.processInfo.activeProcessorCount,
    "median_ms_per_batch": percentile(timings, 0.5),
    "median_ms_per_turn": percentile(timings, 0.5) / b,
    "p10_ms_per_turn": percentile(timings, 0.1) / b,
    "p90_ms_per_turn": percentile(timings, 0.9) / b,
    "prepared_median_ms_per_turn": percentile(preparedTimings, 0.5) / b,
    "prepared_max_abs_err_vs_reference": Double(preparedMaxAbs),
    "iterations": iterations,
    "load_ms": loadMs,
    "peak_rss_mb": peakRSSMegabytes(),
    "max_abs_err_vs_reference": Double(maxAbs),
    "max_rel_err_vs_reference": Double(maxAbs / max(maxRef, 1e-12)),
]
let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
