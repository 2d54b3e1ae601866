#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
import TestSupport
@testable import HTTPServer

/// Work a hostile client can make the server do before it refuses: header-time admission, the
/// server-wide body budget and making room at the connection limit.
@Suite struct AdmissionTests {
    /// The test handler, refusing `/refuse` at header time (and counting what reaches `handle`).
    struct RefusingHandler: HTTPHandler {
        let handled = Locked<Int>(0)
        let inner = TestHandler()

        func handle(_ request: HTTPRequest, responder: HTTPResponder) {
            handled.withLock { $0 += 1 }
            inner.handle(request, responder: responder)
        }

        func admit(_ head: HTTPRequestHead) -> HTTPError? {
            head.path == "/refuse" ? HTTPError(kind: .unauthorized, code: "unauthorized", message: "no key") : nil
        }
    }

    @Test func refusedAtHeaderTimeBeforeContinueAndBeforeTheBody() async throws {
        let handler = RefusingHandler()
        let server = try TestServer(handler: handler)
        let (withExpect, withoutExpect, admitted) = try await offPool {
            // Expect: 100-continue: the refusal is the first thing sent, not 100 Continue.
            let a = try server.client()
            a.send("POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\nExpect: 100-continue\r\n\r\n")
            let first = try a.readResponse()
            // Without Expect and without sending the body (chunked: never read after a
            // refusal): answered at once, not after the body timeout (408).
            let b = try server.client(timeout: 2)
            b.send("POST /refuse HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            let second = try b.readResponse()
            // A small body is read and dropped: the refusal keeps the connection usable, and
            // an admitted request with a body is read and handled as before.
            let c = try server.client()
            c.send("POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
            guard try c.readResponse().status == 401 else { throw TestFailure("small body not refused") }
            c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
            return (first, second, try c.readResponse())
        }
        #expect(withExpect.status == 401 && withExpect.errorCode == "unauthorized")
        #expect(withExpect.headers["connection"] == "close")
        #expect(withoutExpect.status == 401)
        #expect(admitted.status == 200 && admitted.bodyText == "hello")
        #expect(handler.handled.withLock { $0 } == 1)
        await server.stop()
    }

    @Test func bodiesBeyondTheServerWideBudgetAreRefusedBeforeTheyAreRead() async throws {
        var limits = testLimits()
        limits.maxBodyBytes = 64 * 1024
        limits.maxBufferedBodyBytes = 100 * 1024
        limits.retryAfterSeconds = 3
        let server = try TestServer(limits: limits)
        let declared = 60_000
        let payload = String(repeating: "x", count: declared)
        let (refused, held, chunked, after, budgetAfter) = try await offPool {
            // A holds 60,000 declared bytes while it trickles its body.
            let a = try server.client()
            a.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(declared)\r\n\r\nxxxxx")
            for _ in 0..<300 where server.server.bodyBudget.inUse < declared { usleep(10_000) }
            // B's declared 60,000 do not fit in what is left: 503 before its body is read.
            let b = try server.client()
            b.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(declared)\r\n\r\n")
            let refused = try b.readResponse()
            // C's chunked body grows past what is left: refused when it does.
            let c = try server.client()
            let chunk = String(repeating: "y", count: 20_000)
            c.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            var chunkedAnswer: ParsedResponse?
            for _ in 0..<3 {
                guard c.send("\(String(chunk.utf8.count, radix: 16))\r\n\(chunk)\r\n") else { break }
            }
            chunkedAnswer = try? c.readResponse()
            // A finishes and is answered; its reservation is given back.
            a.send(String(payload.dropFirst(5)))
            let held = try a.readResponse()
            // Now a full-size body fits again.
            let d = try server.client()
            d.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(declared)\r\n\r\n\(payload)")
            let after = try d.readResponse()
            for _ in 0..<300 where server.server.bodyBudget.inUse != 0 { usleep(10_000) }
            return (refused, held, chunkedAnswer, after, server.server.bodyBudget.inUse)
        }
        #expect(refused.status == 503 && refused.errorCode == "body_budget_exhausted")
        #expect(refused.headers["retry-after"] == "3")
        #expect(chunked?.status == 503 && chunked?.errorCode == "body_budget_exhausted")
        #expect(held.status == 200 && held.body.count == declared)
        #expect(after.status == 200 && after.body.count == declared)
        #expect(budgetAfter == 0)
        #expect(server.server.bodyBudget.refusedRequests == 2)
        await server.stop()
    }

    @Test func aClosedConnectionGivesItsReservationBack() async throws {
        var limits = testLimits()
        limits.maxBufferedBodyBytes = 64 * 1024
        let server = try TestServer(limits: limits)
        let (during, after) = try await offPool {
            var during = 0
            do {
                let a = try server.client()
                a.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 50000\r\n\r\nabc")
                for _ in 0..<300 where server.server.bodyBudget.inUse == 0 { usleep(10_000) }
                during = server.server.bodyBudget.inUse
            }  // a closes here, inside its body
            for _ in 0..<300 where server.server.bodyBudget.inUse != 0 { usleep(10_000) }
            return (during, server.server.bodyBudget.inUse)
        }
        #expect(during == 50000)
        #expect(after == 0)
        await server.stop()
    }

    @Test func atTheConnectionLimitTheSlowestHeadMakesRoom() async throws {
        var limits = testLimits()
        limits.maxConnections = 3
        limits.overflowConnections = 0
        limits.headTimeout = .seconds(20)  // the slow heads would not time out during the test
        let server = try TestServer(limits: limits)
        let (served, closedFirst, keptOthers) = try await offPool {
            // Three connections trickling request heads: 10, 40 and 80 bytes of them so far.
            let slow = try [10, 40, 80].map { n -> RawClient in
                let c = try server.client(timeout: 2)
                let head = "GET /echo HTTP/1.1\r\nHost: a\r\nX-Pad: " + String(repeating: "p", count: 200)
                c.send(String(head.prefix(n)))
                return c
            }
            for _ in 0..<300 where server.server.openConnectionCount != 3 { usleep(10_000) }
            usleep(50_000)  // their bytes have been read
            // A healthy client still gets in: the 10-byte head is closed to make room.
            let healthy = try server.client()
            healthy.send(get("/echo"))
            let served = try healthy.readResponse()
            let closedFirst = slow[0].waitForClose()
            // The others are still open (a read times out instead of seeing the end).
            slow[1].setTimeout(0.3)
            slow[2].setTimeout(0.3)
            let keptOthers = !slow[1].waitForClose() && !slow[2].waitForClose()
            withExtendedLifetime(slow) {}
            return (served, closedFirst, keptOthers)
        }
        #expect(served.status == 200)
        #expect(closedFirst)
        #expect(keptOthers)
        #expect(server.server.evictedConnectionCount == 1)
        #expect(server.diagnostics.withLock { $0.map(\.kind) }.contains(.connectionEvicted))
        await server.stop()
    }
}
