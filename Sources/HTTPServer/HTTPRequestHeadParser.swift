/// A parsed request head (request line + header fields): what `HTTPHandler.admit` sees of a
/// request before its body is read.
public struct HTTPRequestHead: Sendable {
    public var method: HTTPMethod
    public var target: HTTPRequestTarget
    public var version: HTTPVersion
    public var headers: HTTPHeaders

    public init(method: HTTPMethod, target: HTTPRequestTarget, version: HTTPVersion = .http1_1,
                headers: HTTPHeaders = HTTPHeaders()) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// The path without the query.
    public var path: String { target.path }
}

/// Incremental, strict parser of a request head (RFC 9112 sections 2-5).
///
/// Feed it the connection's buffer again whenever bytes arrive; it resumes where it stopped (each
/// byte is examined once) and validates every line as soon as its CRLF arrives, so a bad request
/// line is refused before the rest of the head. Refused: bare CR, bare LF, NUL, control bytes,
/// obs-fold, whitespace before the colon, lines without a colon, non-token method or field name,
/// malformed version. Leading empty lines before the request line are skipped (RFC 9112 2.2).
struct HTTPRequestHeadParser {
    let maxRequestLineBytes: Int
    let maxHeaderBytes: Int
    let maxHeaderCount: Int

    /// Offsets relative to the start of this request in the buffer.
    private var scanned = 0
    private var lineStart = 0
    private var requestLine: (HTTPMethod, HTTPRequestTarget, HTTPVersion)?
    private var headers = HTTPHeaders()

    init(maxRequestLineBytes: Int, maxHeaderBytes: Int, maxHeaderCount: Int) {
        self.maxRequestLineBytes = max(16, maxRequestLineBytes)
        self.maxHeaderBytes = max(32, maxHeaderBytes)
        self.maxHeaderCount = max(0, maxHeaderCount)
    }

    init(limits: HTTPServerLimits) {
        self.init(maxRequestLineBytes: limits.maxRequestLineBytes, maxHeaderBytes: limits.maxHeaderBytes,
                  maxHeaderCount: limits.maxHeaderCount)
    }

    /// True once any byte of this request has been examined.
    var hasStarted: Bool { scanned > 0 }

    mutating func reset() {
        scanned = 0
        lineStart = 0
        requestLine = nil
        headers = HTTPHeaders()
    }

    /// Parses `buffer[base...]`. Returns the head and the number of bytes it used (from `base`),
    /// or nil when more bytes are needed.
    mutating func parse(_ buffer: [UInt8], base: Int) throws(HTTPError) -> (head: HTTPRequestHead, consumed: Int)? {
        let end = buffer.count
        var i = base + scanned
        while i < end {
            let b = buffer[i]
            let offset = i - base
            // Size limits first: a head never gets past them however it continues.
            if requestLine == nil {
                if offset - lineStart >= maxRequestLineBytes {
                    let line = buffer[(base + lineStart)..<i]
                    if line.contains(ASCII.sp) { throw .uriTooLong("request line longer than \(maxRequestLineBytes) bytes") }
                    throw .badRequest("malformed request line")
                }
            }
            if offset >= maxHeaderBytes {
                if requestLine == nil { throw .uriTooLong("request line longer than the head limit") }
                throw .headerTooLarge("request head larger than \(maxHeaderBytes) bytes")
            }
            // A CR must be followed by LF.
            if i > base + lineStart, buffer[i - 1] == ASCII.cr, b != ASCII.lf {
                throw .badRequest("bare CR in request head")
            }
            switch b {
            case ASCII.lf:
                guard i > base + lineStart, buffer[i - 1] == ASCII.cr else {
                    throw .badRequest("bare LF in request head")
                }
                let lineBytes = buffer[(base + lineStart)..<(i - 1)]
                lineStart = offset + 1
                if requestLine == nil {
                    if lineBytes.isEmpty { break }  // leading empty line
                    requestLine = try HTTPRequestHeadParser.parseRequestLine(lineBytes)
                } else if lineBytes.isEmpty {
                    guard let (method, target, version) = requestLine else { break }
                    let head = HTTPRequestHead(method: method, target: target, version: version, headers: headers)
                    let consumed = offset + 1
                    reset()
                    return (head, consumed)
                } else {
                    if headers.count >= maxHeaderCount {
                        throw .tooManyHeaders("more than \(maxHeaderCount) header fields")
                    }
                    let (name, value) = try HTTPRequestHeadParser.parseFieldLine(lineBytes)
                    headers.add(name: name, value: value)
                }
            case 0:
                throw .badRequest("NUL byte in request head")
            case ASCII.cr, ASCII.htab:
                break
            default:
                if b < 0x20 || b == 0x7F { throw .badRequest("control byte in request head") }
            }
            i += 1
        }
        scanned = i - base
        return nil
    }

    /// `method SP request-target SP HTTP-version`, single spaces.
    static func parseRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPError) -> (HTTPMethod, HTTPRequestTarget, HTTPVersion) {
        let parts = line.split(separator: ASCII.sp, maxSplits: 3, omittingEmptySubsequences: false)
        if parts.count == 2, ASCII.isToken(parts[0]), parts[1].first == 0x2F {
            throw .versionNotSupported("HTTP/0.9 requests are not supported")
        }
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
            throw .badRequest("malformed request line")
        }
        guard let version = parseVersion(parts[2]) else { throw .badRequest("malformed HTTP version") }
        guard version.major == 1 else { throw .versionNotSupported("only HTTP/1.0 and HTTP/1.1 are supported") }
        guard ASCII.isToken(parts[0]) else { throw .badRequest("invalid method token") }
        let method = HTTPMethod(rawValue: String(decoding: parts[0], as: UTF8.self))
        let target = try HTTPRequestTarget.parse(Array(parts[1]), method: method)
        return (method, target, version)
    }

    /// `HTTP/` DIGIT `.` DIGIT
    static func parseVersion(_ bytes: ArraySlice<UInt8>) -> HTTPVersion? {
        let b = Array(bytes)
        guard b.count == 8, b[0] == 0x48, b[1] == 0x54, b[2] == 0x54, b[3] == 0x50, b[4] == 0x2F,
              ASCII.isDigit(b[5]), b[6] == 0x2E, ASCII.isDigit(b[7]) else { return nil }
        return HTTPVersion(major: Int(b[5] - 0x30), minor: Int(b[7] - 0x30))
    }

    /// `field-name ":" OWS field-value OWS`, strict (shared by header and trailer lines).
    static func parseFieldLine(_ line: ArraySlice<UInt8>) throws(HTTPError) -> (String, String) {
        guard let first = line.first else { throw .badRequest("empty header line") }
        if ASCII.isWhitespace(first) { throw .badRequest("obsolete line folding (obs-fold) is not accepted") }
        guard let colon = line.firstIndex(of: ASCII.colon) else { throw .badRequest("header line without colon") }
        let name = line[line.startIndex..<colon]
        if let last = name.last, ASCII.isWhitespace(last) {
            throw .badRequest("whitespace between header name and colon")
        }
        guard ASCII.isToken(name) else { throw .badRequest("invalid header name") }
        var start = colon + 1
        var end = line.endIndex
        while start < end, ASCII.isWhitespace(line[start]) { start += 1 }
        while end > start, ASCII.isWhitespace(line[end - 1]) { end -= 1 }
        for b in line[start..<end] where !ASCII.isFieldValueChar(b) {
            throw .badRequest("invalid byte in header value")
        }
        return (String(decoding: name, as: UTF8.self), String(decoding: line[start..<end], as: UTF8.self))
    }
}
