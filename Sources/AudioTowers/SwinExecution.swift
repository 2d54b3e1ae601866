import Foundation
import Numerics

/// How the row-parallel pieces of the tower (image, patch embedding, patch merging, final norm)
/// run: serially on the calling thread, or spread over the cores. BLAS stays single-threaded
/// either way, so concurrent requests never contend inside OpenBLAS.
struct SwinExecution {
    let parallel: Bool
    /// Pieces a parallel loop is cut into (the core count).
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

    /// Runs `body(range)` over row ranges covering `0..<rows` (one range when serial).
    func rows(_ rows: Int, _ body: (Range<Int>) -> Void) {
        let pieces = parallel ? SwinExecution.ranges(rows, pieces: parts) : [0..<rows]
        forEach(pieces.count) { body(pieces[$0]) }
    }
}
