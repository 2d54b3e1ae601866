import Dispatch

/// Runs independent work items on all cores (the 12 classifier streams, batched products),
/// with BLAS single-threaded inside each item.
public enum Parallel {
    /// Calls `body(i)` for `i in 0..<count`, concurrently. The caller guarantees that the items
    /// write disjoint memory; this is the one place where that promise is made to the compiler.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { work in
            nonisolated(unsafe) let work = work
            DispatchQueue.concurrentPerform(iterations: count) { work($0) }
        }
    }
}
