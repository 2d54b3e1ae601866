import Foundation
import Testing
import TestSupport
@testable import HTTPServer

/// One server shared by the tests that do not change limits (started on first use).
let sharedServer: TestServer = {
    do { return try TestServer() } catch { fatalError("cannot start the shared test server: \(error)") }
}()

@Suite("Connections over loopback")
struct ConnectionTests {
    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        let server = try TestServer()
        let responses = try await offPool {
            let client = try server.client()
            var out: [ParsedResponse] = []
            for i in 0..<3 {
                client.send("POST /echo?i=\(i) HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
                out.append(try client.readResponse())
            }
            return out
        }
        #expect(responses.map(\.status) == [200, 200, 200])
        #expect(responses.map { $0.headers["x-index"] } == ["0", "1", "2"])
        #expect(responses.map { $0.headers["x-query"] } == ["i=0", "i=1", "i=2"])
        for r in responses {
            #expect(r.bodyText == "hello")
            #expect(r.headers["content-length"] == "5")
            #expect(r.headers["date"]?.hasSuffix(" GMT") == true)
            #expect(r.headers["connection"] == nil)
            #expect(r.headers["x-request-id"]?.count == 32)
            #expect(r.headers["x-remote"] == "127.0.0.1")
        }
        let logs = try await offPool { server.waitForLogs(3) }
        #expect(logs.count == 3)
        #expect(logs.allSatisfy { $0.method == "POST" && $0.path == "/echo" && $0.status == 200 && $0.completed })
        #expect(logs.allSatisfy { $0.requestBodyBytes == 5 && $0.responseBodyBytes == 5 && $0.errorCode == nil })
        #expect(Set(logs.map(\.requestID)) == Set(responses.compactMap { $0.headers["x-request-id"] }))
        await server.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let responses = try await offPool {
            let client = try sharedServer.client()
            client.send(get("/slow?ms=150") + "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                + get("/slow?ms=1") + "HEAD /big?n=10 HTTP/1.1\r\nHost: a\r\n\r\n" + get("/echo?last"))
            return [try client.readResponse(), try client.readResponse(), try client.readResponse(),
                    try client.readResponse(isHEAD: true), try client.readResponse()]
        }
        #expect(responses.map(\.bodyText) == ["slow 150", "abc", "slow 1", "", ""])
        #expect(responses[3].headers["content-length"] == "10")
        #expect(responses[4].headers["x-query"] == "last")
        #expect(responses[4].headers["x-index"] == "4")
    }

    @Test func chunkedBodyWithExtensionsAndTrailersThenKeepAlive() async throws {
        let (first, second) = try await offPool {
            let client = try sharedServer.client()
            client.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            client.send("5;ext=1\r\nhello\r\n")
            client.send("6;a=\"q s\";b\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
            let first = try client.readResponse()
            client.send(get("/echo"))
            return (first, try client.readResponse())
        }
        #expect(first.status == 200)
        #expect(first.bodyText == "hello world")
        #expect(first.headers["x-trailers"] == "X-Trailer=yes")
        #expect(second.status == 200)
        #expect(second.headers["x-index"] == "1")
    }

    @Test func headResponsesHaveNoBody() async throws {
        let (a, b, c) = try await offPool {
            let client = try sharedServer.client()
            client.send("HEAD /big?n=100 HTTP/1.1\r\nHost: a\r\n\r\n")
            let a = try client.readResponse(isHEAD: true)
            client.send("HEAD /head-length HTTP/1.1\r\nHost: a\r\n\r\n")
            let b = try client.readResponse(isHEAD: true)
            // If a body had been sent, this response would not parse.
            client.send(get("/echo"))
            return (a, b, try client.readResponse())
        }
        #expect(a.status == 200 && a.headers["content-length"] == "100")
        #expect(b.headers["content-length"] == "1234")
        #expect(c.status == 200 && c.headers["x-index"] == "2")
    }

    @Test func expectContinue() async throws {
        let (interim, final, early) = try await offPool {
            let client = try sharedServer.client()
            client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            let interim = try client.readResponse()
            client.send("hello")
            let final = try client.readResponse()
            // Too large: the final answer comes at once, without 100 and without reading the body.
            let other = try sharedServer.client()
            other.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n")
            let early = try other.readResponse()
            #expect(other.waitForClose())
            return (interim, final, early)
        }
        #expect(interim.status == 100)
        #expect(final.status == 200 && final.bodyText == "hello")
        #expect(early.status == 413 && early.errorCode == "payload_too_large")
        #expect(early.headers["connection"] == "close")
    }

    @Test func http10WithAndWithoutKeepAlive() async throws {
        let (plain, closed, kept, keptAgain) = try await offPool {
            let a = try sharedServer.client()
            a.send("GET /echo HTTP/1.0\r\n\r\n")
            let plain = try a.readResponse()
            let closed = a.waitForClose()
            let b = try sharedServer.client()
            b.send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let kept = try b.readResponse()
            b.send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            return (plain, closed, kept, try b.readResponse())
        }
        #expect(plain.status == 200 && plain.headers["connection"] == "close")
        #expect(closed)
        #expect(kept.headers["connection"] == "keep-alive")
        #expect(keptAgain.headers["x-index"] == "1")
    }

    @Test func connectionCloseFromClientAndFromHandler() async throws {
        let (a, aClosed, b, bClosed) = try await offPool {
            let c1 = try sharedServer.client()
            c1.send(get("/echo", extra: "Connection: close\r\n") + get("/never-read"))
            let a = try c1.readResponse()
            let aClosed = c1.waitForClose()
            let c2 = try sharedServer.client()
            c2.send(get("/close"))
            let b = try c2.readResponse()
            return (a, aClosed, b, c2.waitForClose())
        }
        #expect(a.status == 200 && a.headers["connection"] == "close")
        #expect(aClosed)
        #expect(b.bodyText == "bye" && b.headers["connection"] == "close")
        #expect(bClosed)
    }

    /// A client that ends its input (FIN) while its request is handled still gets its answer, but
    /// the handler is told it has left (long work may stop), as Go's net/http and nginx take it.
    @Test func clientHalfCloseStillGetsItsAnswerAndCountsAsGone() async throws {
        let (halfClosed, present) = try await offPool {
            let client = try sharedServer.client()
            client.send(get("/slow?ms=300&report=1"))
            client.shutdownWrite()
            let halfClosed = try client.readResponse()
            let other = try sharedServer.client()
            other.send(get("/slow?ms=50&report=1"))
            return (halfClosed, try other.readResponse())
        }
        #expect(halfClosed.bodyText == "slow 300 client=gone")
        #expect(present.bodyText == "slow 50 client=present")
    }

    @Test func requestIDTakenWhenSaneReplacedOtherwise() async throws {
        let (taken, replaced, tooLong) = try await offPool {
            let client = try sharedServer.client()
            client.send(get("/echo", extra: "X-Request-Id: call-42.turn:7\r\n"))
            let taken = try client.readResponse()
            client.send(get("/echo", extra: "X-Request-Id: has space\r\n"))
            let replaced = try client.readResponse()
            client.send(get("/echo", extra: "X-Request-Id: \(String(repeating: "a", count: 200))\r\n"))
            return (taken, replaced, try client.readResponse())
        }
        #expect(taken.headers["x-request-id"] == "call-42.turn:7")
        #expect(replaced.headers["x-request-id"]?.count == 32)
        #expect(tooLong.headers["x-request-id"]?.count == 32)
    }

    @Test func handlerErrorsGoThroughTheRendererAndKeepTheConnection() async throws {
        let (thrown, crashed, dropped, after) = try await offPool {
            let client = try sharedServer.client()
            client.send(get("/throw"))
            let thrown = try client.readResponse()
            client.send(get("/crash"))
            let crashed = try client.readResponse()
            client.send(get("/drop"))
            let dropped = try client.readResponse()
            client.send(get("/echo"))
            return (thrown, crashed, dropped, try client.readResponse())
        }
        #expect(thrown.status == 409 && thrown.errorCode == "conflict")
        #expect(thrown.headers["content-type"] == "application/json; charset=utf-8")
        #expect(crashed.status == 500 && crashed.errorCode == "internal_error")
        #expect(!crashed.bodyText.contains("Boom"))
        #expect(dropped.status == 500 && dropped.errorCode == "internal_error")
        #expect(after.status == 200 && after.headers["x-index"] == "3")
    }

    @Test func customErrorRendererAndLogsOfServerErrors() async throws {
        let logs = Locked<[HTTPRequestLog]>([])
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, limits: testLimits()),
            handler: TestHandler(),
            errorRenderer: { error in HTTPResponse(status: error.status, headers: ["Content-Type": "text/plain"],
                                                   body: "custom \(error.code)") },
            onRequestComplete: { log in logs.withLock { $0.append(log) } })
        let port = try server.start().port
        let response = try await offPool {
            let client = try RawClient(port: port)
            client.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")
            return try client.readResponse()
        }
        #expect(response.status == 400)
        #expect(response.bodyText == "custom smuggling_rejected")
        #expect(response.headers["x-request-id"]?.count == 32)
        try await offPool { for _ in 0..<200 where logs.withLock({ $0.isEmpty }) { usleep(10_000) } }
        let log = try #require(logs.withLock { $0.first })
        #expect(log.status == 400 && log.errorCode == "smuggling_rejected" && log.method == "GET" && log.path == "/")
        await server.shutdown(gracePeriod: .seconds(1))
    }

    @Test func asyncClosureHandler() async throws {
        let server = HTTPServer(configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, limits: testLimits())) { request in
            if request.path == "/fail" { throw HTTPError(kind: .notFound, code: "not_found", message: "nothing here") }
            try await Task.sleep(for: .milliseconds(10))
            return HTTPResponse(status: .created, headers: ["Content-Type": "text/plain"], body: "made \(request.body.count)")
        }
        let port = try server.start().port
        let (ok, missing) = try await offPool {
            let client = try RawClient(port: port)
            client.send("PUT /thing HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
            let ok = try client.readResponse()
            client.send(get("/fail"))
            return (ok, try client.readResponse())
        }
        #expect(ok.status == 201 && ok.bodyText == "made 3")
        #expect(missing.status == 404 && missing.errorCode == "not_found")
        await server.shutdown(gracePeriod: .seconds(1))
    }

    @Test func leadingEmptyLinesOptionsAsteriskAndOddButValidRequests() async throws {
        let responses = try await offPool {
            let client = try sharedServer.client()
            client.send("\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
            let a = try client.readResponse()
            client.send("PROPFIND /x HTTP/1.1\r\nhOsT: a\r\nTransfer-Encoding:  chunked \r\n\r\n0\r\n\r\n")
            let b = try client.readResponse()
            client.send("GET /a/../b?x=%41 HTTP/1.1\r\nHost: [::1]:8080\r\nX-Latin: caf\u{e9}\r\n\r\n")
            return [a, b, try client.readResponse()]
        }
        #expect(responses[0].headers["x-path"] == "*")
        #expect(responses[1].headers["x-method"] == "PROPFIND")
        #expect(responses[2].headers["x-path"] == "/a/../b")
        #expect(responses.allSatisfy { $0.status == 200 })
    }

    @Test func largeBodiesAndManyPipelinedRequestsPastTheReadBuffer() async throws {
        var limits = testLimits()
        limits.maxBodyBytes = 4 * 1024 * 1024
        let server = try TestServer(limits: limits)
        let (echoed, statuses) = try await offPool {
            let client = try server.client()
            let body = [UInt8]((0..<(3 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            client.send(Array("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
            let echoed = try client.readResponse()
            guard echoed.body == body else { throw TestFailure("body differs") }
            // A slow request, then 3000 more in one write (about 100 KiB, more than the server
            // buffers while it is busy: reading pauses and resumes).
            let many = (0..<3000).map { get("/echo?n=\($0)") }.joined()
            client.send(get("/slow?ms=100") + many)
            var statuses: [Int] = []
            for _ in 0...3000 { statuses.append(try client.readResponse().status) }
            return (echoed.body.count, statuses)
        }
        #expect(echoed == 3 * 1024 * 1024)
        #expect(statuses.count == 3001 && statuses.allSatisfy { $0 == 200 })
        await server.stop()
    }
}
