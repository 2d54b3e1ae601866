import Foundation
import CKernels

/// Products whose right operand is not a pre-packed weight (attention's `q k^T` and `P v`, the
/// mLSTM's, a convolution's im2col rows by its weight), on the project's kernels: `B` is packed
/// per call into a per-thread buffer and multiplied by the same kernels as `Linear`, chosen
/// by the CPU's feature bits (`KernelPath`). So no product of the towers or the classifier
/// depends on a BLAS library's CPU table; OpenBLAS (`BLAS`) remains a reference and an explicit
/// backend only.
public enum Gemm {
    /// `C = alpha * A * op(B) (+ C if accumulate)`, row-major: `A` is `m x k`; `B` is `n x k`
    /// when `transposeB` (C = A B^T), else `k x n` (C = A B).
    @inlinable
    public static func multiply(
        transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        accumulate: Bool = false, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        let done = ck_gemm(Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), transposeB ? 1 : 0,
                           nil, c, Int32(ldc), accumulate ? 1 : 0)
        if done == 0 {  // no memory for the packing buffer: OpenBLAS computes the same product
            BLAS.gemm(transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                      beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }

    /// `y[r] = x[r] W^T + bias (+ y[r] if accumulate)` for `rows` rows: a PyTorch `nn.Linear`
    /// whose weight is stored `[out, in]` and is not packed.
    @inlinable
    public static func linear(
        _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, ldx: Int? = nil,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outFeatures: Int,
        into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, accumulate: Bool = false
    ) {
        guard rows > 0, outFeatures > 0 else { return }
        let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
        let done = ck_gemm(Int32(rows), Int32(outFeatures), Int32(inFeatures), 1, x, Int32(ldx), weight,
                           Int32(inFeatures), 1, bias, y, Int32(ldy), accumulate ? 1 : 0)
        if done == 0 {
            BLAS.linear(x, rows: rows, inFeatures: inFeatures, ldx: ldx, weight: weight, bias: bias,
                        outFeatures: outFeatures, into: y, ldy: ldy, accumulate: accumulate)
        }
    }
}

/// Which kernels this process runs, from the CPU's feature bits (cpuid), never from a model
/// name: AVX-512F with AVX512-BF16 (bf16 weights multiplied by VDPBF16PS), else AVX-512F, else
/// AVX2 + FMA, else scalar; capped by `EMOTION_KERNELS` (`scalar`, `avx2`, `avx512`,
/// `avx512_bf16`). Logged once at start, reported in `/v1/model` and by the benchmarks.
public struct KernelPath: Sendable, Equatable, Encodable, CustomStringConvertible {
    /// `avx512_bf16`, `avx512`, `avx2` or `scalar`: the instruction set of the products and
    /// activations (`avx512_bf16`: float32 products as `avx512`, bf16 weights by VDPBF16PS).
    public let kernels: String
    /// The CPU as `/proc/cpuinfo` names it (VMs may mask it), for reports only.
    public let cpu: String
    /// The feature bits that choose kernels or may in future (`avx2`, `fma`, `avx512f`,
    /// `avx512_bf16`, `avx512_fp16`, `avx512_vnni`, `amx_bf16`), those the CPU has.
    public let features: [String]
    /// The core OpenBLAS chose by its own table (only its reference backend uses it).
    public let openBLASCore: String

    /// The kernel level in use on this thread: 0 scalar, 1 AVX2 + FMA, 2 AVX-512, 3 AVX-512 with
    /// AVX512-BF16.
    public static var level: Int { Int(ck_level()) }

    /// True when a vectorised level (AVX2 + FMA or AVX-512) is in use.
    public static var isVectorized: Bool { ck_vectorized() != 0 }

    /// Caps the level on the calling thread (nil: the best the process may use); for tests and
    /// comparisons. Products on other threads are not affected. Returns the level now in use.
    @discardableResult
    public static func limitLevel(_ level: Int?) -> Int { Int(ck_force_level(Int32(level ?? -1))) }

    public static var current: KernelPath {
        let names = ["scalar", "avx2", "avx512", "avx512_bf16"]
        let level = Int(ck_level())
        let info = CPUInfo.first
        let wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16"]
        return KernelPath(kernels: names[max(0, min(level, names.count - 1))], cpu: info.model,
                          features: wanted.filter(info.flags.contains), openBLASCore: BLAS.coreName)
    }

    enum CodingKeys: String, CodingKey {
        case kernels, cpu, features, openBLASCore = "openblas_core"
    }

    public var description: String {
        "kernels \(kernels) on \(cpu) [\(features.joined(separator: " "))]; OpenBLAS core \(openBLASCore) (reference only)"
    }
}

/// The CPU model and feature flags of the first processor in `/proc/cpuinfo` (empty elsewhere).
enum CPUInfo {
    /// Read once: the CPU does not change under a running process.
    static let first = read()

    static func read() -> (model: String, flags: Set<String>) {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return ("unknown", []) }
        var model = "unknown", flags: Set<String> = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", model == "unknown" { model = parts[1] }
            if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
            if model != "unknown" && !flags.isEmpty { break }
        }
        return (model, flags)
    }
}
