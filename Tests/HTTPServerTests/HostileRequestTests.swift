import Foundation
import Testing
import TestSupport
@testable import HTTPServer

/// A malformed or hostile request and the answer the server documents for it.
struct HostileCase: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var status: Int
    var code: String

    init(_ name: String, _ text: String, _ status: Int, _ code: String) {
        self.init(name, Array(text.utf8), status, code)
    }

    init(_ name: String, _ bytes: [UInt8], _ status: Int, _ code: String) {
        self.name = name
        self.bytes = bytes
        self.status = status
        self.code = code
    }

    var testDescription: String { name }
}

private let h = "Host: localhost\r\n"
private let longValue = String(repeating: "v", count: 9 * 1024)

/// Every entry is answered with its status and code, then the connection is closed, and the
/// server keeps serving. Limits are those of `testLimits()` (body 64 KiB, head 8 KiB, request
/// line 2 KiB, 50 fields).
let hostileCases: [HostileCase] = [
    // Framing ambiguities (request smuggling shapes).
    HostileCase("CL then TE", "POST / HTTP/1.1\r\n\(h)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE then CL", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE chunked then gzip", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE gzip then chunked", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported_transfer_encoding"),
    HostileCase("TE gzip alone", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: gzip\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE identity", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: identity\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE chunked twice in one field", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked, chunked\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE chunked in two fields", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE xchunked", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: xchunked\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE chunked with parameter", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked;q=1\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE empty", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: \r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "smuggling_rejected"),
    HostileCase("duplicate identical CL", "POST / HTTP/1.1\r\n\(h)Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, "smuggling_rejected"),
    HostileCase("duplicate differing CL", "POST / HTTP/1.1\r\n\(h)Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "smuggling_rejected"),
    HostileCase("CL list", "POST / HTTP/1.1\r\n\(h)Content-Length: 3, 3\r\n\r\nabc", 400, "smuggling_rejected"),
    HostileCase("negative CL", "POST / HTTP/1.1\r\n\(h)Content-Length: -1\r\n\r\n", 400, "invalid_content_length"),
    HostileCase("hex CL", "POST / HTTP/1.1\r\n\(h)Content-Length: 0x10\r\n\r\n", 400, "invalid_content_length"),
    HostileCase("plus-signed CL", "POST / HTTP/1.1\r\n\(h)Content-Length: +3\r\n\r\nabc", 400, "invalid_content_length"),
    HostileCase("CL with inner space", "POST / HTTP/1.1\r\n\(h)Content-Length: 1 2\r\n\r\n", 400, "invalid_content_length"),
    HostileCase("empty CL", "POST / HTTP/1.1\r\n\(h)Content-Length:\r\n\r\n", 400, "invalid_content_length"),
    HostileCase("huge CL", "POST / HTTP/1.1\r\n\(h)Content-Length: 99999999999999999999999999999\r\n\r\n", 413, "payload_too_large"),
    HostileCase("CL over the body limit", "POST / HTTP/1.1\r\n\(h)Content-Length: 65537\r\n\r\n", 413, "payload_too_large"),
    // Header syntax.
    HostileCase("obs-fold", "GET / HTTP/1.1\r\n\(h)X-A: one\r\n two\r\n\r\n", 400, "bad_request"),
    HostileCase("obs-fold with tab", "GET / HTTP/1.1\r\n\(h)X-A: one\r\n\ttwo\r\n\r\n", 400, "bad_request"),
    HostileCase("header without colon", "GET / HTTP/1.1\r\n\(h)NoColonHere\r\n\r\n", 400, "bad_request"),
    HostileCase("space before colon", "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n", 400, "bad_request"),
    HostileCase("tab before colon", "GET / HTTP/1.1\r\n\(h)Transfer-Encoding\t: chunked\r\n\r\n", 400, "bad_request"),
    HostileCase("empty header name", "GET / HTTP/1.1\r\n\(h): value\r\n\r\n", 400, "bad_request"),
    HostileCase("invalid header name", "GET / HTTP/1.1\r\n\(h)X(A): value\r\n\r\n", 400, "bad_request"),
    HostileCase("NUL in header value", "GET / HTTP/1.1\r\n\(h)X-A: a\u{0}b\r\n\r\n", 400, "bad_request"),
    HostileCase("bare CR in header value", "GET / HTTP/1.1\r\n\(h)X-A: a\rb\r\n\r\n", 400, "bad_request"),
    HostileCase("bare LF line endings", "GET / HTTP/1.1\n\(h)\n", 400, "bad_request"),
    HostileCase("bare LF inside the head", "GET / HTTP/1.1\r\nX-A: a\nHost: localhost\r\n\r\n", 400, "bad_request"),
    HostileCase("control byte in header value", "GET / HTTP/1.1\r\n\(h)X-A: a\u{1}b\r\n\r\n", 400, "bad_request"),
    HostileCase("DEL in header value", "GET / HTTP/1.1\r\n\(h)X-A: a\u{7f}b\r\n\r\n", 400, "bad_request"),
    HostileCase("missing Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400, "bad_request"),
    HostileCase("two Host fields", "GET / HTTP/1.1\r\n\(h)\(h)\r\n", 400, "bad_request"),
    HostileCase("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad_request"),
    HostileCase("Expect other than 100-continue", "POST / HTTP/1.1\r\n\(h)Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417, "expectation_failed"),
    // Sizes.
    HostileCase("over-long header field", "GET / HTTP/1.1\r\n\(h)X-Long: \(longValue)\r\n\r\n", 431, "header_too_large"),
    HostileCase("too many header fields", "GET / HTTP/1.1\r\n\(h)" + (0..<60).map { "X-\($0): v\r\n" }.joined() + "\r\n", 431, "too_many_headers"),
    HostileCase("over-long request line", "GET /\(String(repeating: "a", count: 3000)) HTTP/1.1\r\n\(h)\r\n", 414, "uri_too_long"),
    HostileCase("over-long line without spaces", String(repeating: "A", count: 3000), 400, "bad_request"),
    // Request line.
    HostileCase("invalid method token", "G@T / HTTP/1.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("method with a slash", "GET/ / HTTP/1.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("leading space before the method", " GET / HTTP/1.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("double space", "GET  / HTTP/1.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("tab separator", "GET\t/ HTTP/1.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("trailing space after the version", "GET / HTTP/1.1 \r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("NUL in the request line", "GET /\u{0} HTTP/1.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported"),
    HostileCase("HTTP/0.9 request line", "GET /\r\n", 505, "http_version_not_supported"),
    HostileCase("HTTP/3.0", "GET / HTTP/3.0\r\n\(h)\r\n", 505, "http_version_not_supported"),
    HostileCase("lower-case version", "GET / http/1.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("two-digit version", "GET / HTTP/11.1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("version without minor", "GET / HTTP/1\r\n\(h)\r\n", 400, "bad_request"),
    HostileCase("absolute-form target", "GET http://example.com/ HTTP/1.1\r\n\(h)\r\n", 400, "invalid_target"),
    HostileCase("authority-form target", "CONNECT example.com:443 HTTP/1.1\r\n\(h)\r\n", 400, "invalid_target"),
    HostileCase("asterisk with GET", "GET * HTTP/1.1\r\n\(h)\r\n", 400, "invalid_target"),
    HostileCase("fragment in target", "GET /a#frag HTTP/1.1\r\n\(h)\r\n", 400, "invalid_target"),
    HostileCase("bad percent-encoding", "GET /a%zz HTTP/1.1\r\n\(h)\r\n", 400, "invalid_target"),
    HostileCase("non-ASCII in target", "GET /caf\u{e9} HTTP/1.1\r\n\(h)\r\n", 400, "invalid_target"),
    HostileCase("TLS ClientHello on the plain port", [0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03], 400, "bad_request"),
    // Chunked bodies.
    HostileCase("chunk size not hex", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("negative chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("0x chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("chunk size with trailing space", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("chunk longer than its size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("bare LF after chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("bad chunk extension", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n5;=x\r\nhello\r\n0\r\n\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("malformed trailer", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n0\r\nNo Colon\r\n\r\n", 400, "invalid_chunked_encoding"),
    HostileCase("huge chunk size", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n", 413, "payload_too_large"),
    HostileCase("chunks past the body limit", "POST / HTTP/1.1\r\n\(h)Transfer-Encoding: chunked\r\n\r\n8000\r\n\(String(repeating: "a", count: 0x8000))\r\n8001\r\n", 413, "payload_too_large"),
]

@Suite("Malformed and hostile requests")
struct HostileRequestTests {
    @Test(arguments: hostileCases)
    func answeredWithTheDocumentedStatusThenClosed(_ hostile: HostileCase) async throws {
        let (response, closed) = try await offPool {
            let client = try sharedServer.client()
            client.send(hostile.bytes)
            let response = try client.readResponse()
            return (response, client.waitForClose())
        }
        #expect(response.status == hostile.status)
        #expect(response.errorCode == hostile.code)
        #expect(response.headers["connection"] == "close")
        #expect(response.headers["x-request-id"] != nil)
        #expect(response.headers["content-length"] == String(response.body.count))
        #expect(closed)
        try await expectServes(sharedServer)
    }

    @Test func hostileCaseCount() {
        #expect(hostileCases.count >= 40)
    }

    @Test func lengthRequiredWhenConfigured() async throws {
        var limits = testLimits()
        limits.lengthRequiredMethods = ["POST", "PUT"]
        let server = try TestServer(limits: limits)
        let response = try await offPool {
            let client = try server.client()
            client.send("POST /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            return try client.readResponse()
        }
        #expect(response.status == 411 && response.errorCode == "length_required")
        try await expectServes(server)
        await server.stop()
    }

    @Test func nothingIsParsedAfterAnError() async throws {
        // The second request hides behind a refused first one; it must never reach the handler.
        let server = try TestServer()
        let all = try await offPool {
            let client = try server.client()
            client.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
            return String(decoding: client.readToEnd(), as: UTF8.self)
        }
        #expect(all.hasPrefix("HTTP/1.1 400 "))
        #expect(all.components(separatedBy: "HTTP/1.1 ").count == 2)
        let logs = try await offPool { server.waitForLogs(1) }
        #expect(logs.allSatisfy { $0.path != "/smuggled" })
        await server.stop()
    }
}
