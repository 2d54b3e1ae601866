#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The two score terms of DED: emission (classifier log-probability) and transition prior.
///
/// Operations are done in a fixed order, with the C library's `exp`/`log`, so that results are
/// bit-identical to the Python reference (Training/reference/ded_reference.py).
enum Scoring {
    /// log_softmax in float64: `x - (m + log(sum(exp(x - m))))` with `m = max(x)`.
    /// `x` must be non-empty and finite (checked by the callers).
    static func logSoftmax(_ x: [Double]) -> [Double] {
        var m = -Double.infinity
        for v in x where v > m { m = v }
        var s = 0.0
        for v in x { s = s + exp(v - m) }
        let lse = m + log(s)
        return x.map { $0 - lse }
    }

    /// Precomputed logs of the parameters.
    struct Prior: Sendable {
        let alpha: Double
        let logP0: Double
        let logStay: Double
        let logAlpha: Double

        init(_ p: DEDParameters) {
            alpha = p.alpha
            logP0 = log(p.p0)
            logStay = log(1 - p.p0)
            logAlpha = log(p.alpha)
        }

        /// Log prior of label `e` for a turn whose speaker's last label is `last` (nil on the
        /// speaker's first turn), given entry count `ne` of state e and total entries `total`.
        @inline(__always)
        func logPrior(last: Int?, e: Int, ne: Int, total: Int) -> Double {
            guard let last else {
                // First turn of this speaker: a ddCRP draw.
                if ne > 0 { return log(Double(ne) / (Double(total) + alpha)) }
                return log(alpha / (Double(total) + alpha))
            }
            if e == last { return logStay }
            if ne > 0 { return logP0 + log(Double(ne)) - log(Double(total) + alpha) }
            return logP0 + logAlpha - log(Double(total) + alpha)
        }
    }
}
