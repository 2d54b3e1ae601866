import Foundation
import Testing
@testable import Conversation

/// The per-session FIFO and the turn states, without an engine.
@Suite struct TurnSchedulerTests {
    typealias Turn = ConversationEngine.Pending

    func turn(_ id: String) -> Turn {
        Turn(input: TurnInput(turnId: id, speaker: "agent", transcript: "turn \(id)"), turnId: id, dimension: 4,
             completion: { _ in })
    }

    /// Illegal moves reported (instead of trapping), so that tests can see them refused.
    final class Illegal {
        var reports: [String] = []
    }

    func scheduler(_ illegal: Illegal) -> TurnScheduler {
        TurnScheduler(onIllegalTransition: { illegal.reports.append($0) })
    }

    @Test func turnsRunOneAtATimeInArrivalOrder() {
        let illegal = Illegal()
        var scheduler = scheduler(illegal)
        let a = turn("a"), b = turn("b"), c = turn("c")
        #expect(scheduler.isIdle && scheduler.count == 0)
        let runs = [scheduler.admit(a), scheduler.admit(b), scheduler.admit(c)]
        #expect(runs == [true, false, false])
        #expect(scheduler.current === a && scheduler.count == 3 && !scheduler.isIdle)
        #expect(a.state == .running && b.state == .waiting && c.state == .waiting)

        let afterA = scheduler.end(a, stored: true)
        #expect(afterA === b && scheduler.current === b)
        #expect(a.state == .stored && b.state == .running && c.state == .waiting && scheduler.count == 2)

        let afterB = scheduler.end(b, stored: false)
        #expect(afterB === c && b.state == .failed && c.state == .running && scheduler.count == 1)

        let afterC = scheduler.end(c, stored: true)
        #expect(afterC == nil)
        #expect(c.state == .stored && scheduler.current == nil && scheduler.isIdle && scheduler.count == 0)

        // Idle again: the next turn runs at once.
        let d = turn("d")
        let runsD = scheduler.admit(d)
        #expect(runsD && d.state == .running)
        #expect(illegal.reports.isEmpty)
    }

    @Test func aRetryFindsTheRunningOrWaitingTurnByItsId() {
        let illegal = Illegal()
        var scheduler = scheduler(illegal)
        let a = turn("a"), b = turn("b")
        _ = scheduler.admit(a)
        _ = scheduler.admit(b)
        #expect(scheduler.turn(withId: "a") === a)
        #expect(scheduler.turn(withId: "b") === b)
        #expect(scheduler.turn(withId: "z") == nil)
        // Still found while its record is being made durable; gone once answered.
        scheduler.awaitDurability(a)
        #expect(a.state == .awaitingDurability && scheduler.turn(withId: "a") === a)
        let next = scheduler.end(a, stored: true)
        #expect(next === b)
        #expect(a.state == .stored && scheduler.turn(withId: "a") == nil && scheduler.turn(withId: "b") === b)
        #expect(illegal.reports.isEmpty)
    }

    @Test func aTurnAwaitingDurabilityMayStillFail() {
        let illegal = Illegal()
        var scheduler = scheduler(illegal)
        let a = turn("a")
        _ = scheduler.admit(a)
        let awaiting = scheduler.awaitDurability(a)
        let next = scheduler.end(a, stored: false)
        #expect(awaiting && next == nil)
        #expect(a.state == .failed && scheduler.isIdle && illegal.reports.isEmpty)
    }

    @Test func closingDropsTheWaitingTurnsAndLetsTheCurrentOneEnd() {
        let illegal = Illegal()
        var scheduler = scheduler(illegal)
        let a = turn("a"), b = turn("b"), c = turn("c")
        _ = scheduler.admit(a)
        _ = scheduler.admit(b)
        _ = scheduler.admit(c)
        let dropped = scheduler.close()
        #expect(dropped.count == 2 && dropped[0] === b && dropped[1] === c)
        #expect(b.state == .failed && c.state == .failed)
        #expect(scheduler.isClosed && scheduler.current === a && a.state == .running)
        #expect(scheduler.count == 1 && !scheduler.isIdle)
        #expect(scheduler.turn(withId: "b") == nil)
        // The current turn ends (failed, its session gone); nothing runs after it.
        let next = scheduler.end(a, stored: false)
        #expect(next == nil)
        #expect(a.state == .failed && scheduler.isIdle && scheduler.count == 0)
        #expect(illegal.reports.isEmpty)
    }

    @Test func closingAnIdleSchedulerDropsNothing() {
        var scheduler = scheduler(Illegal())
        let dropped = scheduler.close()
        #expect(dropped.isEmpty && scheduler.isClosed && scheduler.isIdle)
    }

    @Test func illegalMovesAreReportedAndNotMade() {
        let illegal = Illegal()
        var scheduler = scheduler(illegal)
        let a = turn("a"), b = turn("b"), stranger = turn("s")
        _ = scheduler.admit(a)
        _ = scheduler.admit(b)

        // A waiting turn cannot await durability or end.
        let waitingAwaits = scheduler.awaitDurability(b)
        #expect(!waitingAwaits && b.state == .waiting && illegal.reports.count == 1)
        let waitingEnds = scheduler.end(b, stored: true)
        #expect(waitingEnds == nil)
        #expect(b.state == .waiting && scheduler.current === a && scheduler.count == 2 && illegal.reports.count == 2)

        // A turn admitted twice is not queued again.
        let again = [scheduler.admit(a), scheduler.admit(b)]
        #expect(again == [false, false])
        #expect(scheduler.count == 2 && a.state == .running && illegal.reports.count == 4)

        // A turn the scheduler does not hold cannot end.
        let strangerEnds = scheduler.end(stranger, stored: true)
        #expect(strangerEnds == nil)
        #expect(stranger.state == .waiting && scheduler.current === a && illegal.reports.count == 5)

        // Ended once: ending it again, or awaiting durability after, is refused.
        let afterA = scheduler.end(a, stored: true)
        let endsAgain = scheduler.end(a, stored: false)
        let awaitsAfter = scheduler.awaitDurability(a)
        #expect(afterA === b && endsAgain == nil && !awaitsAfter)
        #expect(a.state == .stored && scheduler.current === b && illegal.reports.count == 7)

        // Awaiting durability twice is refused the second time.
        let awaits = [scheduler.awaitDurability(b), scheduler.awaitDurability(b)]
        #expect(awaits == [true, false])
        #expect(b.state == .awaitingDurability && illegal.reports.count == 8)
    }

    /// After a delete nothing should reach the scheduler; if a turn does, it is reported and
    /// still runs (and the engine fails it as a deleted session's turn), so it is answered.
    @Test func aTurnAdmittedAfterCloseIsReportedButStillRuns() {
        let illegal = Illegal()
        var scheduler = scheduler(illegal)
        _ = scheduler.close()
        let a = turn("a")
        let runs = scheduler.admit(a)
        #expect(runs && a.state == .running && scheduler.current === a && illegal.reports.count == 1)
    }

    @Test func legalMovesGoForwardOnly() {
        let all: [TurnState] = [.waiting, .running, .awaitingDurability, .stored, .failed]
        let legal: Set<String> = ["waiting>running", "waiting>failed", "running>awaitingDurability", "running>stored",
                                  "running>failed", "awaitingDurability>stored", "awaitingDurability>failed"]
        for from in all {
            for to in all {
                #expect(from.canBecome(to) == legal.contains("\(from)>\(to)"), "\(from) -> \(to)")
            }
        }
    }
}
