import Foundation
import GatedXLSTM

/// Work ahead of a session's next turn: a turn's 4-tuple is fixed once it is stored, so the
/// context stacks of the next turn (slots t-1 and t-2: 8 of the classifier's 12) can run on an
/// idle worker between turns, and the next turn then waits only for its own 4. It never delays a
/// turn: it is scheduled only when no turn waits, it runs after the turns of a batch, and a turn
/// processed before it is ready computes its context itself (the work ahead is then dropped).
extension ConversationEngine {
    /// Where a session's work ahead stands (touched under `lock`).
    enum Preparation {
        case none
        /// Queued for the turn that will have index `index`.
        case queued(index: Int)
        /// Done for the turn with index `index`; its bytes are charged to the session's memory.
        case ready(index: Int, PreparedContext)
    }

    /// The context of one session's next turn, to be run ahead.
    struct PreparationJob: @unchecked Sendable {
        let key: SessionKey
        let slot: Slot
        let index: Int
        let previous: [[Float]]?
        let beforePrevious: [[Float]]?
    }

    /// Queues the work ahead of the turn after `job`'s, just stored (called under the lock):
    /// only when enabled, not draining, no turn of the session waits and no other turn waits at
    /// all, so that it uses time nobody else is waiting for.
    func schedulePreparation(after job: Job) {
        guard configuration.prepareContext, !draining, job.slot.scheduler.count == 1, waitingCount <= 1,
              let context = job.slot.context else { return }
        let index = job.slot.state.turns.count
        let tuples = context.contextTuples
        release(job.slot, at: job.key)
        job.slot.preparation = .queued(index: index)
        _ = queue.enqueue(.prepare(PreparationJob(key: job.key, slot: job.slot, index: index,
                                                  previous: tuples.previous, beforePrevious: tuples.beforePrevious)),
                          force: true)
    }

    /// Runs the work ahead unless a turn has overtaken it or the session is gone.
    func prepare(_ job: PreparationJob) {
        func stillWanted() -> Bool {
            guard case .queued(let index) = job.slot.preparation, index == job.index else { return false }
            return !job.slot.scheduler.isClosed && sessions[job.key] === job.slot
        }
        lock.lock()
        let wanted = stillWanted()
        lock.unlock()
        guard wanted, let context = try? classifier.prepareContext(previous: job.previous, beforePrevious: job.beforePrevious)
        else { return }
        lock.lock()
        if stillWanted() {
            job.slot.preparation = .ready(index: job.index, context)
            sessions.charge(job.slot, at: job.key, context.byteCount)
            preparedContexts += 1
        }
        lock.unlock()
    }

    /// The context prepared for `job`'s turn, if it is ready; any work ahead of the session
    /// ends here either way (called under the lock, as the turn is processed).
    func takePreparation(_ job: Job) -> PreparedContext? {
        defer { release(job.slot, at: job.key) }
        guard case .ready(let index, let context) = job.slot.preparation, index == job.slot.state.turns.count else { return nil }
        preparedContextsUsed += 1
        return context
    }

    /// Drops a session's work ahead and gives back the memory a ready one held.
    func release(_ slot: Slot, at key: SessionKey) {
        if case .ready(_, let context) = slot.preparation { sessions.charge(slot, at: key, -context.byteCount) }
        slot.preparation = .none
    }
}
