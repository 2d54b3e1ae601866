#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport
@testable import HTTPServer

@Suite("Timeouts, limits and shutdown")
struct LimitsTests {
    @Test func slowHeadIsCutOffWhileAnotherClientIsServedPromptly() async throws {
        var limits = testLimits()
        limits.headTimeout = .milliseconds(600)
        let server = try TestServer(limits: limits)
        // The slow client sends one byte every 100 ms (it would need about 3 s for its head).
        async let slow: (ParsedResponse, Double) = offPool {
            let client = try server.client()
            let start = Date()
            let request = Array(get("/slow-client", extra: "X-Padding: \(String(repeating: "p", count: 10))\r\n").utf8)
            for byte in request {
                if !client.send([byte]) { break }
                usleep(100_000)
                if Date().timeIntervalSince(start) > 1.2 { break }
            }
            let response = try client.readResponse()
            return (response, Date().timeIntervalSince(start))
        }
        try await offPool { usleep(200_000) }
        let (fast, fastSeconds) = try await offPool {
            let start = Date()
            let client = try server.client()
            client.send(get("/echo"))
            return (try client.readResponse(), Date().timeIntervalSince(start))
        }
        #expect(fast.status == 200)
        #expect(fastSeconds < 0.3)
        let (cutOff, seconds) = try await slow
        #expect(cutOff.status == 408 && cutOff.errorCode == "request_timeout")
        #expect(seconds >= 0.5 && seconds < 1.5)
        await server.stop()
    }

    @Test func slowBodyIsCutOff() async throws {
        var limits = testLimits()
        limits.bodyTimeout = .milliseconds(400)
        let server = try TestServer(limits: limits)
        let (response, seconds) = try await offPool {
            let client = try server.client()
            let start = Date()
            client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
            for _ in 0..<10 {
                if !client.send("x") { break }
                usleep(100_000)
            }
            return (try client.readResponse(), Date().timeIntervalSince(start))
        }
        #expect(response.status == 408 && response.errorCode == "request_timeout")
        #expect(seconds < 1.2)
        let logs = try await offPool { server.waitForLogs(1) }
        #expect(logs.first?.errorCode == "request_timeout" && logs.first?.method == "POST")
        await server.stop()
    }

    @Test func silentAndIdleConnectionsAreClosedWithoutAResponse() async throws {
        var limits = testLimits()
        limits.headTimeout = .milliseconds(300)
        limits.idleTimeout = .milliseconds(300)
        let server = try TestServer(limits: limits)
        let (silentBytes, silentSeconds, idleBytes, idleSeconds) = try await offPool {
            let silent = try server.client()
            var start = Date()
            let silentBytes = silent.readToEnd()
            let silentSeconds = Date().timeIntervalSince(start)
            let idle = try server.client()
            idle.send(get("/echo"))
            _ = try idle.readResponse()
            start = Date()
            let idleBytes = idle.readToEnd()
            return (silentBytes, silentSeconds, idleBytes, Date().timeIntervalSince(start))
        }
        #expect(silentBytes.isEmpty && idleBytes.isEmpty)
        #expect(silentSeconds >= 0.25 && silentSeconds < 1.5)
        #expect(idleSeconds >= 0.25 && idleSeconds < 1.5)
        await server.stop()
    }

    @Test func maxConnectionsAnswers503ThenDrops() async throws {
        var limits = testLimits()
        limits.maxConnections = 2
        limits.overflowConnections = 1
        limits.retryAfterSeconds = 7
        let server = try TestServer(limits: limits)
        @Sendable func waitForCount(_ n: Int) throws {
            for _ in 0..<300 where server.server.openConnectionCount != n { usleep(10_000) }
            guard server.server.openConnectionCount == n else {
                throw TestFailure("expected \(n) connections, have \(server.server.openConnectionCount)")
            }
        }
        let (rejected, droppedBytes, servedAfter) = try await offPool {
            // Both served connections are busy with a request (past their heads), so none can
            // be closed to make room.
            let first = try server.client()
            let second = try server.client()
            first.send(get("/slow?ms=1500"))
            second.send(get("/slow?ms=1500"))
            guard server.waitForSlowRequests(2) else { throw TestFailure("slow requests did not start") }
            try waitForCount(2)
            let third = try server.client()  // over the limit: answered 503
            try waitForCount(3)
            let fourth = try server.client()  // over the overflow too: closed at once
            let droppedBytes = fourth.readToEnd()
            third.send(get("/echo"))
            let rejected = try third.readResponse()
            _ = third.waitForClose()
            // Served connections are unaffected, and a freed slot serves again.
            guard try second.readResponse().status == 200, try first.readResponse().status == 200 else {
                throw TestFailure("busy connections not served")
            }
            withExtendedLifetime(first) {}
            _ = consume first
            try waitForCount(1)
            let fifth = try server.client()
            fifth.send(get("/echo"))
            return (rejected, droppedBytes, try fifth.readResponse())
        }
        #expect(rejected.status == 503 && rejected.errorCode == "service_unavailable")
        #expect(rejected.headers["retry-after"] == "7")
        #expect(rejected.headers["connection"] == "close")
        #expect(droppedBytes.isEmpty)
        #expect(servedAfter.status == 200)
        let kinds = server.diagnostics.withLock { $0.map(\.kind) }
        #expect(kinds.contains(.connectionRejected) && kinds.contains(.connectionDropped))
        await server.stop()
    }

    @Test func bodyAtTheLimitIsAccepted() async throws {
        let response = try await offPool {
            let client = try sharedServer.client()
            let body = String(repeating: "b", count: 64 * 1024)
            client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            return try client.readResponse()
        }
        #expect(response.status == 200 && response.body.count == 64 * 1024)
    }

    @Test func clientThatDoesNotReadIsDropped() async throws {
        var limits = testLimits()
        limits.writeTimeout = .milliseconds(400)
        let server = try TestServer(limits: limits)
        try await offPool {
            let client = try server.client()
            var small: Int32 = 4096
            setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            client.send(get("/big?n=\(64 * 1024 * 1024)"))
            usleep(100_000)
            // Never read; the server gives up after the write timeout.
            for _ in 0..<300 where server.server.openConnectionCount > 0 { usleep(10_000) }
            withExtendedLifetime(client) {}
        }
        #expect(server.server.openConnectionCount == 0)
        let logs = try await offPool { server.waitForLogs(1) }
        #expect(logs.first?.completed == false && logs.first?.status == 200)
        await server.stop()
    }

    @Test func maxRequestsPerConnection() async throws {
        var limits = testLimits()
        limits.maxRequestsPerConnection = 2
        let server = try TestServer(limits: limits)
        let (a, b, closed) = try await offPool {
            let client = try server.client()
            client.send(get("/echo"))
            let a = try client.readResponse()
            client.send(get("/echo"))
            let b = try client.readResponse()
            return (a, b, client.waitForClose())
        }
        #expect(a.headers["connection"] == nil)
        #expect(b.headers["connection"] == "close")
        #expect(closed)
        await server.stop()
    }

    /// The test limits with head and body timeouts long enough that a suite saturating both
    /// cores cannot time a request out before it reaches the handler (the shutdown tests are
    /// about shutdown, not timeouts).
    static func unhurriedLimits() -> HTTPServerLimits {
        var limits = testLimits()
        limits.headTimeout = .seconds(30)
        limits.bodyTimeout = .seconds(30)
        return limits
    }

    @Test func gracefulShutdownFinishesInFlightRequests() async throws {
        let server = try TestServer(limits: Self.unhurriedLimits())
        let port = server.port
        // An idle keep-alive connection, and one waiting for a slow answer.
        let idle = try await offPool { () -> RawClientBox in
            let client = try server.client()
            client.send(get("/echo"))
            _ = try client.readResponse()
            return RawClientBox(client)
        }
        async let slow: ParsedResponse = offPool {
            let client = try server.client()
            client.send(get("/slow?ms=600"))
            return try client.readResponse()
        }
        // The slow request is in the handler (not a sleep: a loaded machine may take longer).
        #expect(try await offPool { server.waitForSlowRequests(1) })
        async let idleClosed: Bool = offPool { idle.client.waitForClose() }
        let seconds = try await timedShutdown(server.server, gracePeriod: .seconds(5))
        let response = try await slow
        #expect(response.status == 200 && response.bodyText == "slow 600")
        #expect(response.headers["connection"] == "close")
        #expect(try await idleClosed)
        #expect(seconds >= 0.3 && seconds < 3)
        #expect(server.server.openConnectionCount == 0)
        // The port is released: nothing listens any more.
        #expect(throws: (any Error).self) { try RawClient(port: port) }
        // Shutting down again returns at once.
        await server.server.shutdown(gracePeriod: .seconds(1))
    }

    @Test func shutdownGracePeriodForcesStragglersClosed() async throws {
        let server = try TestServer(limits: Self.unhurriedLimits())
        async let stuck: [UInt8] = offPool {
            let client = try server.client()
            client.send(get("/slow?ms=4000"))
            return client.readToEnd()
        }
        #expect(try await offPool { server.waitForSlowRequests(1) })
        let seconds = try await timedShutdown(server.server, gracePeriod: .milliseconds(300))
        #expect(seconds < 2)
        #expect(try await stuck.isEmpty)
        let kinds = server.diagnostics.withLock { $0.map(\.kind) }
        #expect(kinds.contains(.shutdownForcedClose))
    }

    @Test func waitUntilShutdownAndSignalObserver() async throws {
        let server = try TestServer()
        let fired = Locked<[Int32]>([])
        let observer = SignalObserver(signals: [SIGUSR2]) { number in
            fired.withLock { $0.append(number) }
            server.server.shutdown(gracePeriod: .seconds(1)) {}
        }
        defer { observer.cancel() }
        try await offPool { usleep(50_000) }
        kill(getpid(), SIGUSR2)
        await server.server.waitUntilShutdown()
        #expect(fired.withLock { $0 } == [SIGUSR2])
    }

    @Test func startErrors() throws {
        let busy = try TestServer()
        let clash = HTTPServer(configuration: HTTPServerConfiguration(host: "127.0.0.1", port: busy.port),
                               handler: TestHandler())
        #expect(throws: HTTPServerError.self) { try clash.start() }
        let bad = HTTPServer(configuration: HTTPServerConfiguration(host: "no such host.invalid", port: 0), handler: TestHandler())
        #expect(throws: HTTPServerError.self) { try bad.start() }
        #expect(throws: HTTPServerError.alreadyStarted) { try busy.server.start() }
    }

    @Test func ipv6Loopback() async throws {
        let server = HTTPServer(configuration: HTTPServerConfiguration(host: "[::1]", port: 0, limits: testLimits()),
                                handler: TestHandler())
        let address: HTTPRemoteAddress
        do {
            address = try server.start()
        } catch {
            return  // no IPv6 on this machine
        }
        #expect(address.host == "::1")
        #expect(address.port > 0)
        await server.shutdown(gracePeriod: .seconds(1))
    }
}

/// Lets a client cross into a `blocking` closure.
final class RawClientBox: @unchecked Sendable {
    let client: RawClient
    init(_ client: RawClient) { self.client = client }
}

/// Shuts down and measures on a plain thread, so the time does not include waiting for a thread
/// of the cooperative pool (which other test suites may keep busy).
func timedShutdown(_ server: HTTPServer, gracePeriod: Duration) async throws -> Double {
    try await offPool {
        let done = DispatchSemaphore(value: 0)
        let start = Date()
        server.shutdown(gracePeriod: gracePeriod) { done.signal() }
        done.wait()
        return Date().timeIntervalSince(start)
    }
}
