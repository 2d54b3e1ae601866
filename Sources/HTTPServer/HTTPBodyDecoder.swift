/// Decodes a request body delimited by Content-Length or the chunked transfer coding
/// (RFC 9112 section 7.1: chunk extensions parsed and ignored, trailer fields kept apart).
///
/// Incremental: `decode` consumes what it can from the buffer and appends body bytes. Every
/// limit is checked as early as possible: a chunk size that would take the body past the limit is
/// refused when its line arrives, before its data.
struct HTTPBodyDecoder {
    private enum State {
        case length(remaining: Int)
        case chunkSizeLine
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailerLine
        case done
    }

    private var state: State
    private let maxBodyBytes: Int
    private let maxChunkLineBytes: Int
    private let maxTrailerBytes: Int
    private let maxTrailerCount: Int
    /// The chunk-size or trailer line being collected (bounded).
    private var line: [UInt8] = []
    private var trailerBytes = 0
    private(set) var trailers = HTTPHeaders()
    private(set) var bodyBytes = 0

    init(framing: HTTPRequestFraming.Body, limits: HTTPServerLimits) {
        switch framing {
        case .none: state = .done
        case .length(let n): state = n > 0 ? .length(remaining: n) : .done
        case .chunked: state = .chunkSizeLine
        }
        maxBodyBytes = limits.maxBodyBytes
        maxChunkLineBytes = max(8, limits.maxChunkLineBytes)
        maxTrailerBytes = max(32, limits.maxHeaderBytes)
        maxTrailerCount = max(0, limits.maxHeaderCount)
    }

    var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// Consumes bytes from `buffer[index...]`, advancing `index`, appending decoded bytes to `body`.
    /// Returns true once the body (and trailer section) is complete; bytes after it are left.
    mutating func decode<Body: RangeReplaceableCollection>(_ buffer: [UInt8], index: inout Int,
                                                           into body: inout Body) throws(HTTPError) -> Bool
    where Body.Element == UInt8 {
        let end = buffer.count
        while true {
            switch state {
            case .done:
                return true
            case .length(let remaining):
                let n = min(remaining, end - index)
                if n == 0 { return false }
                body.append(contentsOf: buffer[index..<(index + n)])
                index += n
                bodyBytes += n
                state = remaining == n ? .done : .length(remaining: remaining - n)
            case .chunkData(let remaining):
                let n = min(remaining, end - index)
                if n == 0 { return false }
                body.append(contentsOf: buffer[index..<(index + n)])
                index += n
                bodyBytes += n
                state = remaining == n ? .chunkDataCR : .chunkData(remaining: remaining - n)
            case .chunkDataCR:
                guard index < end else { return false }
                guard buffer[index] == ASCII.cr else { throw .invalidChunkedEncoding("chunk data not followed by CRLF") }
                index += 1
                state = .chunkDataLF
            case .chunkDataLF:
                guard index < end else { return false }
                guard buffer[index] == ASCII.lf else { throw .invalidChunkedEncoding("chunk data not followed by CRLF") }
                index += 1
                state = .chunkSizeLine
            case .chunkSizeLine:
                guard let content = try takeLine(buffer, index: &index, limit: maxChunkLineBytes,
                                                 tooLong: .invalidChunkedEncoding("chunk-size line too long")) else { return false }
                let size = try HTTPBodyDecoder.parseChunkSizeLine(content)
                if size == 0 {
                    state = .trailerLine
                } else {
                    if size > maxBodyBytes - bodyBytes {
                        throw .payloadTooLarge("body larger than \(maxBodyBytes) bytes")
                    }
                    state = .chunkData(remaining: size)
                }
            case .trailerLine:
                let budget = maxTrailerBytes - trailerBytes
                guard let content = try takeLine(buffer, index: &index, limit: budget,
                                                 tooLong: .headerTooLarge("trailer section larger than \(maxTrailerBytes) bytes")) else { return false }
                trailerBytes += content.count + 2
                if content.isEmpty {
                    state = .done
                } else {
                    if trailers.count >= maxTrailerCount { throw .tooManyHeaders("more than \(maxTrailerCount) trailer fields") }
                    let (name, value): (String, String)
                    do {
                        (name, value) = try HTTPRequestHeadParser.parseFieldLine(content[...])
                    } catch {
                        throw .invalidChunkedEncoding("malformed trailer field")
                    }
                    trailers.add(name: name, value: value)
                }
            }
        }
    }

    /// Collects one CRLF-terminated line (strict: bare CR, bare LF, NUL refused). Returns its
    /// content without CRLF, or nil when more bytes are needed.
    private mutating func takeLine(_ buffer: [UInt8], index: inout Int, limit: Int, tooLong: HTTPError) throws(HTTPError) -> [UInt8]? {
        let end = buffer.count
        while index < end {
            let b = buffer[index]
            index += 1
            if let last = line.last, last == ASCII.cr {
                guard b == ASCII.lf else { throw .invalidChunkedEncoding("bare CR in chunked framing") }
                line.removeLast()
                let content = line
                line.removeAll(keepingCapacity: true)
                return content
            }
            if b == ASCII.lf { throw .invalidChunkedEncoding("bare LF in chunked framing") }
            if b == 0 { throw .invalidChunkedEncoding("NUL in chunked framing") }
            line.append(b)
            if line.count > limit { throw tooLong }
        }
        return nil
    }

    /// chunk-size [ chunk-ext ], where
    /// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ).
    /// Sizes past `Int.max` saturate (they exceed any body limit).
    static func parseChunkSizeLine(_ line: [UInt8]) throws(HTTPError) -> Int {
        var i = 0
        var size = 0
        while i < line.count, let digit = ASCII.hexValue(line[i]) {
            size = size > (Int.max >> 4) ? Int.max : (size << 4) | Int(digit)
            i += 1
        }
        guard i > 0 else { throw .invalidChunkedEncoding("invalid chunk size") }
        // Extensions.
        func skipBWS() { while i < line.count, ASCII.isWhitespace(line[i]) { i += 1 } }
        while true {
            // Whitespace is only allowed before ";" and around "=", never at the end of the line.
            if i == line.count { return size }
            skipBWS()
            guard i < line.count, line[i] == ASCII.semicolon else { throw .invalidChunkedEncoding("invalid chunk size") }
            i += 1
            skipBWS()
            let nameStart = i
            while i < line.count, ASCII.isTokenChar(line[i]) { i += 1 }
            guard i > nameStart else { throw .invalidChunkedEncoding("invalid chunk extension") }
            let afterName = i
            skipBWS()
            guard i < line.count, line[i] == ASCII.equals else {
                i = afterName
                continue
            }
            i += 1
            skipBWS()
            guard i < line.count else { throw .invalidChunkedEncoding("invalid chunk extension") }
            if line[i] == ASCII.quote {
                i += 1
                var closed = false
                while i < line.count {
                    let b = line[i]
                    if b == ASCII.quote { closed = true; i += 1; break }
                    if b == ASCII.backslash {
                        i += 1
                        guard i < line.count, ASCII.isFieldValueChar(line[i]) else {
                            throw .invalidChunkedEncoding("invalid chunk extension")
                        }
                    } else if !ASCII.isFieldValueChar(b) {
                        throw .invalidChunkedEncoding("invalid chunk extension")
                    }
                    i += 1
                }
                guard closed else { throw .invalidChunkedEncoding("unterminated quoted chunk extension") }
            } else {
                let valueStart = i
                while i < line.count, ASCII.isTokenChar(line[i]) { i += 1 }
                guard i > valueStart else { throw .invalidChunkedEncoding("invalid chunk extension") }
            }
        }
    }
}
