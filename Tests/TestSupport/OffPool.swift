import Foundation

/// Runs blocking work (socket I/O, waiting for a process) on a thread of its own and awaits it,
/// so that a test never holds one of the cooperative pool's threads (two on a 2-core machine).
@discardableResult
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
