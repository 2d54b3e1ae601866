import Foundation

/// The server-wide budget of request-body bytes held in memory at once.
///
/// Each connection may buffer up to `HTTPServerLimits.maxBodyBytes`, so without a global bound
/// `maxConnections` bodies could together far exceed the process's memory. A request reserves
/// its declared `Content-Length` at header time (a chunked body reserves as it grows) and gives
/// it back when its answer is produced or the connection ends; a request that does not fit is
/// answered 503 `body_budget_exhausted` with `Retry-After` before its body is read.
public final class HTTPBodyBudget: @unchecked Sendable {
    /// Bytes that may be reserved at once (at least one maximal body).
    public let limit: Int
    private let lock = NSLock()
    private var used = 0
    private var refusals = 0

    public init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// Bytes reserved right now.
    public var inUse: Int { lock.withLock { used } }

    /// Requests refused because their body did not fit.
    public var refusedRequests: Int { lock.withLock { refusals } }

    /// Reserves `bytes`; false (and nothing reserved) when they would take the total over the limit.
    func reserve(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        return lock.withLock {
            guard used <= limit - bytes else {
                refusals += 1
                return false
            }
            used += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        lock.withLock { used = max(0, used - bytes) }
    }
}
