import Dispatch
import Foundation

/// Runs independent work items on the cores the process may use (the 12 classifier streams,
/// batched products), with BLAS single-threaded inside each item.
public enum Parallel {
    /// Threads `forEach` runs items on: the container's CPU quota against the online cores
    /// (`CPUQuota.threads`), not every core of the node.
    public static let width = CPUQuota.threads

    /// Calls `body(i)` for `i in 0..<count`, concurrently on at most `width` threads (each takes
    /// the next item when done with one). The caller guarantees that the items write disjoint
    /// memory; this is the one place where that promise is made to the compiler.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        let threads = min(count, width)
        if threads <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        let next = NextItem()
        withoutActuallyEscaping(body) { work in
            nonisolated(unsafe) let work = work
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                while let i = next.take(below: count) { work(i) }
            }
        }
    }

    /// The next unclaimed item index, shared by `forEach`'s threads.
    private final class NextItem: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func take(below count: Int) -> Int? {
            lock.lock(); defer { lock.unlock() }
            guard value < count else { return nil }
            value += 1
            return value - 1
        }
    }
}
