import Foundation
import Numerics

/// How one piece of the tower runs: serially on the calling thread (a chunk of windows that is
/// itself one of several parallel tasks), or spread over the cores (one big step at a time: the
/// row loops split by rows, the products split by output columns, attention by window and head).
/// BLAS stays single-threaded either way, so concurrent requests never contend inside OpenBLAS.
struct SwinExecution {
    let parallel: Bool
    /// Pieces a parallel product is cut into (the core count).
    let parts: Int

    static let serial = SwinExecution(parallel: false, parts: 1)

    static func spread(cores: Int) -> SwinExecution {
        SwinExecution(parallel: cores > 1, parts: max(cores, 1))
    }

    func forEach(_ count: Int, _ body: (Int) -> Void) {
        if parallel && count > 1 {
            Parallel.forEach(count, body)
        } else {
            for i in 0..<count { body(i) }
        }
    }

    /// Splits `0..<count` into at most `pieces` contiguous ranges of whole `granule`s.
    static func ranges(_ count: Int, pieces: Int, granule: Int = 1) -> [Range<Int>] {
        guard count > 0 else { return [] }
        let units = (count + granule - 1) / granule
        let p = max(1, min(pieces, units))
        var result: [Range<Int>] = []
        var start = 0
        for i in 0..<p {
            let endUnit = units * (i + 1) / p
            let end = min(count, endUnit * granule)
            if end > start { result.append(start..<end) }
            start = end
        }
        return result
    }

    /// `y = x W^T + bias (+ y)` over `rows` rows; when parallel, the output columns are cut into
    /// blocks of whole 16-column panels, one task each. `epilogue(columns)` runs on each block after
    /// its product (e.g. the activation), on the same thread.
    func linear(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outFeatures: Int,
                into y: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                epilogue: ((Range<Int>) -> Void)? = nil) {
        let blocks = parallel ? SwinExecution.ranges(outFeatures, pieces: parts, granule: 16) : [0..<outFeatures]
        forEach(blocks.count) { b in
            let cols = blocks[b]
            BLAS.linear(x, rows: rows, inFeatures: inFeatures, weight: weight + cols.lowerBound * inFeatures,
                        bias: bias.map { $0 + cols.lowerBound }, outFeatures: cols.count,
                        into: y + cols.lowerBound, ldy: outFeatures, accumulate: accumulate)
            epilogue?(cols)
        }
    }

    /// Runs `body(range)` over row ranges covering `0..<rows` (one range when serial).
    func rows(_ rows: Int, _ body: (Range<Int>) -> Void) {
        let pieces = parallel ? SwinExecution.ranges(rows, pieces: parts) : [0..<rows]
        forEach(pieces.count) { body(pieces[$0]) }
    }
}

/// Scratch memory for one task; pooled so the hot path does not allocate and concurrent tasks
/// never share it.
final class SwinScratch {
    private(set) var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var capacity = 0

    func reserve(_ floats: Int) -> UnsafeMutablePointer<Float> {
        if floats > capacity {
            pointer.deallocate()
            pointer = .allocate(capacity: floats)
            capacity = floats
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}

final class SwinScratchPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [SwinScratch] = []

    func with<R>(_ floats: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        lock.lock()
        let scratch = free.popLast() ?? SwinScratch()
        lock.unlock()
        defer {
            lock.lock()
            free.append(scratch)
            lock.unlock()
        }
        return body(scratch.reserve(floats))
    }
}
