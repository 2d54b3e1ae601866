import Testing
@testable import HTTPServer

private func parseHead(_ text: String, limits: HTTPServerLimits = testLimits()) throws(HTTPError) -> HTTPRequestHead? {
    var parser = HTTPRequestHeadParser(limits: limits)
    return try parser.parse(Array(text.utf8), base: 0)?.head
}

private func decodeChunked(_ text: String, limits: HTTPServerLimits = testLimits()) throws(HTTPError) -> ([UInt8], HTTPHeaders, Int)? {
    var decoder = HTTPBodyDecoder(framing: .chunked, limits: limits)
    var body: [UInt8] = []
    var index = 0
    let bytes = Array(text.utf8)
    guard try decoder.decode(bytes, index: &index, into: &body) else { return nil }
    return (body, decoder.trailers, index)
}

@Suite("Request head parser")
struct HeadParserTests {
    @Test func parsesRequestLineAndHeadersInOrder() throws {
        let head = try #require(try parseHead("POST /a/b%20c?x=1&y=two+words HTTP/1.1\r\nHost: example\r\nX-A: 1\r\nx-a:  2 \r\nEmpty:\r\n\r\n"))
        #expect(head.method == .post)
        #expect(head.version == .http1_1)
        #expect(head.target.path == "/a/b%20c")
        #expect(head.target.decodedPath == "/a/b c")
        #expect(head.target.query == "x=1&y=two+words")
        #expect(head.target.queryItems == [HTTPQueryItem(name: "x", value: "1"), HTTPQueryItem(name: "y", value: "two words")])
        #expect(head.headers.values(for: "X-A") == ["1", "2"])
        #expect(head.headers["HOST"] == "example")
        #expect(head.headers["empty"] == "")
        #expect(head.headers.fields.map(\.name) == ["Host", "X-A", "x-a", "Empty"])
    }

    @Test func incrementalByteByByte() throws {
        let text = Array("\r\nGET / HTTP/1.0\r\nA: b\r\n\r\nNEXT".utf8)
        var parser = HTTPRequestHeadParser(limits: testLimits())
        var buffer: [UInt8] = []
        var result: (head: HTTPRequestHead, consumed: Int)? = nil
        for b in text {
            buffer.append(b)
            if let r = try parser.parse(buffer, base: 0) {
                result = r
                break
            }
        }
        let r = try #require(result)
        #expect(r.head.version == .http1_0)
        #expect(r.consumed == text.count - 4)
    }

    @Test func badRequestLineRefusedBeforeTheHeadEnds() {
        var parser = HTTPRequestHeadParser(limits: testLimits())
        #expect(throws: HTTPError.self) { try parser.parse(Array("GET http://x/ HTTP/1.1\r\nHost: a".utf8), base: 0) }
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", "bad_request"),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "bad_request"),
        ("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", "bad_request"),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n", "bad_request"),
        ("GET / HTTP/1.1\r\nHost: a\u{0}\r\n\r\n", "bad_request"),
        ("GET / HTTP/2.0\r\n\r\n", "http_version_not_supported"),
        ("GET /\r\n", "http_version_not_supported"),
        ("GET http://a/ HTTP/1.1\r\n\r\n", "invalid_target"),
        ("GET /a#f HTTP/1.1\r\n\r\n", "invalid_target"),
        ("G;T / HTTP/1.1\r\n\r\n", "bad_request"),
    ])
    func refused(_ text: String, _ code: String) {
        let error = #expect(throws: HTTPError.self) { try parseHead(text) }
        #expect(error?.code == code)
    }

    @Test func limits() {
        var limits = testLimits()
        limits.maxRequestLineBytes = 64
        limits.maxHeaderBytes = 128
        limits.maxHeaderCount = 2
        var e = #expect(throws: HTTPError.self) { try parseHead("GET /\(String(repeating: "a", count: 100)) HTTP/1.1\r\n\r\n", limits: limits) }
        #expect(e?.code == "uri_too_long")
        e = #expect(throws: HTTPError.self) { try parseHead("GET / HTTP/1.1\r\nA: \(String(repeating: "a", count: 200))\r\n\r\n", limits: limits) }
        #expect(e?.code == "header_too_large")
        e = #expect(throws: HTTPError.self) { try parseHead("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits) }
        #expect(e?.code == "too_many_headers")
    }
}

@Suite("Message framing")
struct FramingTests {
    private func framing(_ text: String, limits: HTTPServerLimits = testLimits()) throws(HTTPError) -> HTTPRequestFraming {
        guard let head = try parseHead(text) else { throw .badRequest("incomplete") }
        return try HTTPRequestFraming.decide(for: head, limits: limits)
    }

    @Test func lengthsAndKeepAlive() throws {
        #expect(try framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == HTTPRequestFraming(body: .none, keepAlive: true, expectContinue: false))
        #expect(try framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n").body == .length(7))
        #expect(try framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").body == HTTPRequestFraming.Body.none)
        #expect(try framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").body == .chunked)
        #expect(try framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n").keepAlive == false)
        #expect(try framing("GET / HTTP/1.0\r\n\r\n").keepAlive == false)
        #expect(try framing("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive == true)
        #expect(try framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n").expectContinue)
        #expect(try framing("POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n").expectContinue == false)
    }

    @Test func lengthRequired() {
        var limits = testLimits()
        limits.lengthRequiredMethods = ["POST"]
        let e = #expect(throws: HTTPError.self) { try framing("POST / HTTP/1.1\r\nHost: a\r\n\r\n", limits: limits) }
        #expect(e?.code == "length_required")
        #expect(e?.status.code == 411)
    }

    @Test func contentLengthValues() {
        #expect(HTTPRequestFraming.parseContentLength("0") == 0)
        #expect(HTTPRequestFraming.parseContentLength("123") == 123)
        #expect(HTTPRequestFraming.parseContentLength("99999999999999999999999999") == Int.max)
        for bad in ["", "-1", "+1", "0x10", "1 2", "1e3", " 1"] {
            #expect(HTTPRequestFraming.parseContentLength(bad) == nil)
        }
    }
}

@Suite("Body decoder")
struct BodyDecoderTests {
    @Test func chunkedWithExtensionsAndTrailers() throws {
        let text = "5;name=value\r\nhello\r\n6 ; a = \"q \\\" s\" ;b\r\n world\r\n000;last\r\nX-Check: yes\r\nX-Other: 2\r\n\r\nNEXT"
        let (body, trailers, consumed) = try #require(try decodeChunked(text))
        #expect(String(decoding: body, as: UTF8.self) == "hello world")
        #expect(trailers["x-check"] == "yes")
        #expect(trailers.count == 2)
        #expect(consumed == text.utf8.count - 4)
    }

    @Test func incremental() throws {
        let bytes = Array("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".utf8)
        var decoder = HTTPBodyDecoder(framing: .chunked, limits: testLimits())
        var body: [UInt8] = []
        var buffer: [UInt8] = []
        var index = 0
        var done = false
        for b in bytes {
            buffer.append(b)
            done = try decoder.decode(buffer, index: &index, into: &body)
        }
        #expect(done)
        #expect(body == Array("abcde".utf8))
    }

    @Test func contentLength() throws {
        var decoder = HTTPBodyDecoder(framing: .length(4), limits: testLimits())
        var body: [UInt8] = []
        var index = 0
        #expect(try decoder.decode(Array("ab".utf8), index: &index, into: &body) == false)
        #expect(try decoder.decode(Array("abcdef".utf8), index: &index, into: &body) == true)
        #expect(body == Array("abcd".utf8))
        #expect(index == 4)
    }

    @Test(arguments: [
        ("zz\r\n", "invalid_chunked_encoding"),
        ("-5\r\n", "invalid_chunked_encoding"),
        ("0x5\r\n", "invalid_chunked_encoding"),
        ("5 \r\nhello\r\n0\r\n\r\n", "invalid_chunked_encoding"),
        ("\r\n", "invalid_chunked_encoding"),
        ("5\nhello", "invalid_chunked_encoding"),
        ("5\r\nhelloX\r\n", "invalid_chunked_encoding"),
        ("5;\r\n", "invalid_chunked_encoding"),
        ("5;a=\r\n", "invalid_chunked_encoding"),
        ("5;a=\"x\r\n", "invalid_chunked_encoding"),
        ("0\r\nBad Trailer\r\n\r\n", "invalid_chunked_encoding"),
        ("0\r\nX: a\r\n b\r\n\r\n", "invalid_chunked_encoding"),
        ("fffffffffffffffffffffff\r\n", "payload_too_large"),
        ("10001\r\n", "payload_too_large"),
    ])
    func refused(_ text: String, _ code: String) {
        let error = #expect(throws: HTTPError.self) { try decodeChunked(text) }
        #expect(error?.code == code)
    }

    @Test func chunkSizesAddUpToTheLimit() {
        var limits = testLimits()
        limits.maxBodyBytes = 10
        #expect((try? decodeChunked("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limits: limits)) != nil)
        let e = #expect(throws: HTTPError.self) { try decodeChunked("5\r\nhello\r\n6\r\n", limits: limits) }
        #expect(e?.code == "payload_too_large")
    }
}

@Suite("Response encoder, headers, targets, request ids")
struct EncoderTests {
    private func text(_ e: HTTPResponseEncoder.Encoded) -> String { String(decoding: e.bytes, as: UTF8.self) }

    @Test func serverOwnedFields() {
        let response = HTTPResponse(status: .ok, headers: ["Content-Length": "999", "Transfer-Encoding": "chunked",
                                                           "Connection": "upgrade", "X-Request-Id": "theirs", "X-Ok": "1",
                                                           "X-Bad": "a\r\nInjected: yes", "Bad Name": "x"], body: "hi")
        let encoded = HTTPResponseEncoder.encode(response, isHEAD: false, keepAlive: true, requestVersion: .http1_1,
                                                 requestID: "rid", date: "DATE")
        #expect(text(encoded) == "HTTP/1.1 200 OK\r\nX-Ok: 1\r\nDate: DATE\r\nContent-Length: 2\r\nX-Request-Id: rid\r\n\r\nhi")
    }

    @Test func headNoContentAndConnection() {
        let head = HTTPResponseEncoder.encode(HTTPResponse(body: "abc"), isHEAD: true, keepAlive: false,
                                              requestVersion: .http1_1, requestID: nil, date: "D")
        #expect(text(head) == "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 3\r\nConnection: close\r\n\r\n")
        #expect(head.bodyBytes == 0)
        let noContent = HTTPResponseEncoder.encode(HTTPResponse(status: .noContent, body: "x"), isHEAD: false, keepAlive: true,
                                                   requestVersion: .http1_0, requestID: nil, date: "D")
        #expect(text(noContent) == "HTTP/1.1 204 No Content\r\nDate: D\r\nConnection: keep-alive\r\n\r\n")
        let weird = HTTPResponseEncoder.encode(HTTPResponse(status: HTTPStatus(code: 101)), isHEAD: false, keepAlive: true,
                                               requestVersion: .http1_1, requestID: nil, date: "D")
        #expect(weird.status == 500)
    }

    @Test func dateFormat() {
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
    }

    @Test func headersLookup() {
        var headers: HTTPHeaders = ["A": "1", "b": "2", "a": "3"]
        #expect(headers["a"] == "1")
        #expect(headers.values(for: "A") == ["1", "3"])
        headers.replaceOrAdd(name: "A", value: "x")
        #expect(headers.fields.map(\.value) == ["x", "2"])
        headers.remove(name: "B")
        #expect(headers.count == 1)
        let list: HTTPHeaders = ["Connection": " Keep-Alive ,, close"]
        #expect(list.tokens(for: "connection") == ["keep-alive", "", "close"])
    }

    @Test func targets() throws {
        #expect(try HTTPRequestTarget("*", method: .options).path == "*")
        #expect(try HTTPRequestTarget("/a?").query == "")
        #expect(try HTTPRequestTarget("/%ff").decodedPath == nil)
        #expect(try HTTPRequestTarget("/a%2Fb").decodedPath == "/a/b")
        #expect(try HTTPRequestTarget("/q?a=%C3%A9&a=2&b&=c").queryItems
            == [HTTPQueryItem(name: "a", value: "\u{e9}"), HTTPQueryItem(name: "a", value: "2"),
                HTTPQueryItem(name: "b", value: ""), HTTPQueryItem(name: "", value: "c")])
        for bad in ["*", "http://h/", "h:80", "/a b", "/a#b", "/%4", "/\u{e9}", "/q?a=%zz"] {
            #expect(throws: HTTPError.self) { try HTTPRequestTarget(bad) }
        }
    }

    @Test func requestIDs() {
        #expect(RequestID.generate().count == 32)
        #expect(RequestID.generate() != RequestID.generate())
        #expect(RequestID.sanitize("0f8fad5b-d9cb-469f-a165-70867728950e") != nil)
        #expect(RequestID.sanitize("abc def") == nil)
        #expect(RequestID.sanitize("") == nil)
        #expect(RequestID.sanitize(String(repeating: "a", count: 129)) == nil)
        #expect(RequestID.sanitize("a\"b") == nil)
    }

    @Test func jsonRenderer() {
        let response = HTTPError.jsonRenderer(.badRequest("a \"quoted\"\n\u{1} thing"))
        #expect(String(decoding: response.body, as: UTF8.self)
            == "{\"error\":{\"code\":\"bad_request\",\"message\":\"a \\\"quoted\\\"\\n\\u0001 thing\"}}")
        #expect(response.status.code == 400)
    }
}
