import Foundation

/// Runs blocking work (socket I/O, waiting for a process) on a thread of its own and awaits it,
/// so that a test never holds one of the cooperative pool's threads (two on a 2-core machine).
@discardableResult
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Polls `condition` every 5 ms until it holds or about `seconds` have passed (a bound against
/// hangs, not a timed assertion), sleeping without holding a thread of the cooperative pool.
/// Returns whether it holds.
public func eventually(seconds: Double = 20, _ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<Int(seconds * 200) {
        if condition() { return true }
        try await Task.sleep(nanoseconds: 5_000_000)
    }
    return condition()
}
