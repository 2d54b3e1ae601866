/// How the body of a request is delimited (RFC 9112 section 6), decided once per head with every
/// ambiguous shape refused, plus the head's connection-level facts.
struct HTTPRequestFraming: Equatable, Sendable {
    enum Body: Equatable, Sendable {
        case none
        case length(Int)
        case chunked
    }

    var body: Body
    /// The connection may carry another request after this one.
    var keepAlive: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    var expectContinue: Bool

    /// Decides the framing or throws the error to answer (the connection is closed after it).
    ///
    /// Rules (strict on purpose, see Docs/HTTP_SERVER.md):
    /// - HTTP/1.1 needs exactly one Host; no version may repeat it; its value must be an authority.
    /// - Transfer-Encoding in HTTP/1.0, or with Content-Length: 400 `smuggling_rejected`.
    /// - Transfer-Encoding whose last coding is not `chunked`, or with `chunked` twice, or with an
    ///   empty element: 400 `smuggling_rejected`; other codings before a final `chunked`:
    ///   501 `unsupported_transfer_encoding`.
    /// - Content-Length repeated (even with identical values) or a list: 400 `smuggling_rejected`;
    ///   not 1*DIGIT: 400 `invalid_content_length`; larger than the body limit (however many
    ///   digits): 413 `payload_too_large`.
    /// - Expect other than a single `100-continue`: 417 `expectation_failed` (HTTP/1.0 ignores it).
    static func decide(for head: HTTPRequestHead, limits: HTTPServerLimits) throws(HTTPError) -> HTTPRequestFraming {
        let headers = head.headers
        let hostCount = headers.count(of: "host")
        if hostCount > 1 { throw .badRequest("more than one Host header") }
        if hostCount == 0 && head.version.isAtLeast1_1 { throw .badRequest("missing Host header") }
        if let host = headers["host"], !isValidHost(host) { throw .badRequest("invalid Host header") }

        let transferEncodings = headers.values(for: "transfer-encoding")
        let contentLengths = headers.values(for: "content-length")
        var body: Body = .none
        if !transferEncodings.isEmpty {
            if !head.version.isAtLeast1_1 {
                throw .smugglingRejected("Transfer-Encoding in an HTTP/1.0 request")
            }
            if !contentLengths.isEmpty {
                throw .smugglingRejected("both Content-Length and Transfer-Encoding")
            }
            let codings = headers.tokens(for: "transfer-encoding")
            if codings.contains("") { throw .smugglingRejected("empty transfer coding") }
            guard codings.last == "chunked" else {
                throw .smugglingRejected("chunked is not the final transfer coding")
            }
            if codings.dropLast().contains("chunked") {
                throw .smugglingRejected("chunked applied more than once")
            }
            if codings.count > 1 {
                throw .unsupportedTransferEncoding("only the chunked transfer coding is supported")
            }
            body = .chunked
        } else if !contentLengths.isEmpty {
            if contentLengths.count > 1 { throw .smugglingRejected("more than one Content-Length") }
            let value = contentLengths[0]
            if value.utf8.contains(UInt8(ascii: ",")) { throw .smugglingRejected("Content-Length list") }
            guard let length = parseContentLength(value) else {
                throw .invalidContentLength("Content-Length is not a decimal number")
            }
            if length > limits.maxBodyBytes {
                throw .payloadTooLarge("body larger than \(limits.maxBodyBytes) bytes")
            }
            body = length == 0 ? .none : .length(length)
        } else if limits.lengthRequiredMethods.contains(head.method.rawValue) {
            throw .lengthRequired("\(head.method.rawValue) requires Content-Length or chunked Transfer-Encoding")
        }

        let connection = headers.tokens(for: "connection")
        let keepAlive: Bool
        if connection.contains("close") {
            keepAlive = false
        } else if head.version.isAtLeast1_1 {
            keepAlive = true
        } else {
            keepAlive = connection.contains("keep-alive")
        }

        var expectContinue = false
        if head.version.isAtLeast1_1 {
            let expectations = headers.values(for: "expect")
            if !expectations.isEmpty {
                guard expectations.count == 1,
                      expectations[0].trimmingHTTPWhitespace().asciiCaseInsensitiveEquals("100-continue") else {
                    throw .expectationFailed("only Expect: 100-continue is supported")
                }
                expectContinue = body != .none
            }
        }
        return HTTPRequestFraming(body: body, keepAlive: keepAlive, expectContinue: expectContinue)
    }

    /// 1*DIGIT; values past `Int.max` saturate (they exceed any body limit).
    static func parseContentLength(_ value: String) -> Int? {
        guard !value.isEmpty else { return nil }
        var result = 0
        for b in value.utf8 {
            guard ASCII.isDigit(b) else { return nil }
            let (m, o1) = result.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(b - 0x30))
            result = (o1 || o2) ? Int.max : s
        }
        return result
    }

    /// uri-host [":" port]: reg-name / IPv4 / IP-literal characters only (empty allowed).
    static func isValidHost(_ host: String) -> Bool {
        for b in host.utf8 {
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: continue
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"),
                 UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "%"), UInt8(ascii: "!"), UInt8(ascii: "$"),
                 UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"),
                 UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="): continue
            default: return false
            }
        }
        return true
    }
}
