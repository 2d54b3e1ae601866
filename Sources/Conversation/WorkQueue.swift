import Foundation

/// A bounded FIFO of inference jobs served by a fixed set of worker threads.
///
/// Inference is CPU-bound and parallel inside (streams, heads), so a few long-lived workers take
/// jobs in arrival order, and a worker takes up to `maxBatch` waiting jobs at once so the
/// classifier can run them as one batch. Beyond `capacity` waiting jobs, `enqueue` refuses
/// instead of letting memory grow: the caller answers 503 with Retry-After.
final class WorkQueue<Job>: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var running = 0
    private var stopped = false
    let capacity: Int
    let maxBatch: Int
    private var threads: [Thread] = []

    init(workers: Int, capacity: Int, maxBatch: Int, name: String, process: @escaping @Sendable ([Job]) -> Void) {
        self.capacity = max(1, capacity)
        self.maxBatch = max(1, maxBatch)
        for i in 0..<max(1, workers) {
            // Workers hold the queue until `stop()` lets them finish and exit.
            let thread = Thread { self.loop(process) }
            thread.name = "\(name)-\(i)"
            thread.stackSize = 8 << 20
            threads.append(thread)
            thread.start()
        }
    }

    /// Jobs waiting (not yet taken by a worker).
    var waiting: Int {
        condition.lock(); defer { condition.unlock() }
        return jobs.count - head
    }

    /// Jobs being processed right now.
    var inFlight: Int {
        condition.lock(); defer { condition.unlock() }
        return running
    }

    /// Adds a job; false when the queue is full or stopped.
    func enqueue(_ job: Job, force: Bool = false) -> Bool {
        condition.lock(); defer { condition.unlock() }
        guard !stopped, force || jobs.count - head < capacity else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Lets the workers finish what is queued, then stop.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop(_ process: ([Job]) -> Void) {
        while true {
            condition.lock()
            while jobs.count == head && !stopped { condition.wait() }
            if jobs.count == head && stopped { condition.unlock(); return }
            let end = min(jobs.count, head + maxBatch)
            let batch = Array(jobs[head..<end])
            head = end
            if head > 1024 && head * 2 > jobs.count { jobs.removeFirst(head); head = 0 }
            running += batch.count
            condition.unlock()
            process(batch)
            condition.lock()
            running -= batch.count
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Blocks until no job is waiting or running, or the deadline passes; true when idle.
    func waitIdle(until deadline: Date) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while jobs.count > head || running > 0 {
            if !condition.wait(until: deadline) { return jobs.count == head && running == 0 }
        }
        return true
    }
}
