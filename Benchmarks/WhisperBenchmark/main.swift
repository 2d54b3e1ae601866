import AudioTowers
import Foundation
import ModelPackage
import Numerics

/// `whisper-bench --model DIR --clip NAME [--iterations N] [--warmup W] [--threads T]`
///
/// Times the Swift Whisper encoder (the default model's audio tower without its pooling) on the
/// log-mel input `NAME.mel` ([80, frames]) of DIR/io.safetensors, written by
/// Benchmarks/reference/whisper_reference.py, and checks the last hidden state against the
/// PyTorch one stored there (`NAME.last`). Prints one JSON line, the shape of the reference's.

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("whisper-bench: \(message)\n".utf8))
    exit(2)
}

var options: [String: String] = [:]
var args = CommandLine.arguments.dropFirst()
while let key = args.popFirst() {
    guard key.hasPrefix("--"), let value = args.popFirst() else {
        fail("usage: --model DIR --clip NAME [--iterations N] [--warmup W] [--threads T]")
    }
    options[String(key.dropFirst(2))] = value
}
guard let modelPath = options["model"], let clip = options["clip"] else { fail("--model and --clip are required") }
let iterations = Int(options["iterations"] ?? "20") ?? 20
let warmup = Int(options["warmup"] ?? "3") ?? 3
let threads = Int(options["threads"] ?? "\(ProcessInfo.processInfo.activeProcessorCount)") ?? 2

func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return (line.split(separator: " ").compactMap { Double($0) }.first ?? -1) / 1024
    }
    return -1
}

let directory = URL(fileURLWithPath: modelPath)
let loadStart = DispatchTime.now()
let encoder: WhisperEncoder
let mel: Parameter, reference: Parameter
do {
    let package = try ModelPackage.load(directory: directory)
    let section = try package.section("audio", as: WhisperTowerConfiguration.self)
    encoder = try WhisperEncoder(configuration: section.encoder, parameters: package.weights, threads: threads)
    let io = try WeightStore(url: directory.appendingPathComponent("io.safetensors"))
    mel = try io.tensor("\(clip).mel")
    reference = try io.tensor("\(clip).last")
} catch {
    fail("\(error)")
}
let loadMs = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6
let (mels, frames) = (mel.shape[0], mel.shape[1])
let values = mel.values
var frameMajor = [Float](repeating: 0, count: values.count)
for m in 0..<mels { for t in 0..<frames { frameMajor[t * mels + m] = values[m * frames + t] } }
let input = frameMajor

@MainActor func run() -> [Float] {
    do { return try encoder.hiddenStates(input).last ?? [] } catch { fail("\(error)") }
}
var last: [Float] = []
for _ in 0..<warmup { last = run() }
var times: [Double] = []
for _ in 0..<iterations {
    let start = DispatchTime.now().uptimeNanoseconds
    last = run()
    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
}
times.sort()
let expected = reference.values
guard last.count == expected.count else { fail("last hidden state has \(last.count) values, reference \(expected.count)") }
var maxAbs: Float = 0, scale: Float = 0
for i in 0..<last.count {
    maxAbs = max(maxAbs, abs(last[i] - expected[i]))
    scale = max(scale, abs(expected[i]))
}
let kernelPath = KernelPath.current
let line: [String: Any] = [
    "engine": "swift", "kernels": kernelPath.kernels, "cpu": kernelPath.cpu, "clip": clip, "frames": frames, "threads": threads, "iterations": iterations,
    "median_ms": times[times.count / 2], "min_ms": times[0],
    "p90_ms": times[min(times.count - 1, Int((0.9 * Double(times.count)).rounded(.up)) - 1)],
    "load_ms": loadMs, "peak_rss_mb": peakRSSMegabytes(),
    "max_abs_err": Double(maxAbs), "max_rel_err": Double(maxAbs / max(scale, 1e-12)),
]
let json = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
