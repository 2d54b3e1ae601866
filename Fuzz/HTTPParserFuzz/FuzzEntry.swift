// libFuzzer entry point for the HTTP/1.1 request parser, body decoder and connection state
// machine. Compiled into the same module as Sources/HTTPServer (see Fuzz/README.md), never part
// of `swift build`.
//
// Properties checked on every input (a violation traps, which libFuzzer reports as a crash):
// 1. Nothing crashes (bounds, overflow, force-unwraps) whatever the bytes.
// 2. Incremental parsing equals one-shot parsing: the connection state machine fed the whole
//    input at once and fed it in pieces (split points derived from the input) delivers the same
//    requests (method, target, version, headers, body, trailers) and ends with the same error.
// 3. Every delivered request satisfies the framing rules: at most one Content-Length, never with
//    Transfer-Encoding, body length equal to Content-Length, HTTP/1.x only, origin-form target.
// 4. Every response the machine writes starts with a valid status line and carries exactly one
//    Content-Length (or none for 100 Continue).

@_cdecl("LLVMFuzzerTestOneInput")
public func httpParserFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = FuzzDriver.run(input, pieces: [input.count])
    let pieces = FuzzDriver.splits(for: input)
    let split = FuzzDriver.run(input, pieces: pieces)
    precondition(whole == split, "incremental parsing differs from one-shot parsing")
    return 0
}

enum FuzzDriver {
    struct Outcome: Equatable {
        var requests: [String] = []
        var errorStatus: Int? = nil
        var closed = false
    }

    static let limits: HTTPServerLimits = {
        var l = HTTPServerLimits()
        l.maxHeaderBytes = 2048
        l.maxRequestLineBytes = 512
        l.maxHeaderCount = 16
        l.maxBodyBytes = 4096
        l.maxChunkLineBytes = 128
        return l
    }()

    /// Piece sizes derived from the input bytes (deterministic).
    static func splits(for input: [UInt8]) -> [Int] {
        var sizes: [Int] = []
        var remaining = input.count
        var i = 0
        while remaining > 0 {
            let size = min(remaining, Int(input[i % input.count] % 7) + 1)
            sizes.append(size)
            remaining -= size
            i += 1
        }
        return sizes
    }

    static func run(_ input: [UInt8], pieces: [Int]) -> Outcome {
        let context = HTTPConnectionStateMachine.Context(
            limits: limits, remoteAddress: HTTPRemoteAddress(host: "127.0.0.1", port: 1), isSecure: false,
            errorRenderer: HTTPError.jsonRenderer, rejection: nil)
        var machine = HTTPConnectionStateMachine(context: context)
        var outcome = Outcome()
        var pending = machine.start()
        var offset = 0
        var pieceIndex = 0
        while true {
            // Perform actions until none are left.
            while !pending.isEmpty {
                let action = pending.removeFirst()
                switch action {
                case .write(let bytes):
                    checkResponse(bytes)
                    pending += machine.writeCompleted()
                case .deliver(let request, let generation):
                    checkRequest(request)
                    outcome.requests.append(describe(request))
                    pending += machine.handlerCompleted(
                        generation: generation,
                        result: .success(HTTPResponse(status: .ok, body: Array("ok".utf8))))
                case .log(let log):
                    if let code = log.errorCode, code != "" { outcome.errorStatus = log.status }
                case .close, .lingerClose:
                    outcome.closed = true
                case .startTimer, .cancelTimer:
                    break
                }
            }
            guard pieceIndex < pieces.count, !machine.isClosed else { break }
            let end = min(input.count, offset + pieces[pieceIndex])
            pending = machine.received(input[offset..<end])
            offset = end
            pieceIndex += 1
            if offset >= input.count && pieceIndex < pieces.count { pieceIndex = pieces.count }
        }
        return outcome
    }

    static func describe(_ r: HTTPRequest) -> String {
        let headers = r.headers.map { "\($0.name):\($0.value)" }.joined(separator: "|")
        let trailers = r.trailers.map { "\($0.name):\($0.value)" }.joined(separator: "|")
        return "\(r.method.rawValue) \(r.target.raw) \(r.version) [\(headers)] \(Array(r.body)) [\(trailers)]"
    }

    static func checkRequest(_ r: HTTPRequest) {
        precondition(r.version.major == 1)
        precondition(r.target.raw == "*" || r.target.raw.hasPrefix("/"))
        let lengths = r.headers.values(for: "content-length")
        precondition(lengths.count <= 1)
        if let length = lengths.first {
            precondition(!r.headers.contains("transfer-encoding"))
            precondition(Int(length) == r.body.count)
        }
        if !r.headers.contains("transfer-encoding") && lengths.isEmpty { precondition(r.body.isEmpty) }
        precondition(r.body.count <= limits.maxBodyBytes)
        for field in r.headers {
            precondition(!field.name.isEmpty && !field.name.utf8.contains(where: { $0 <= 0x20 || $0 == 0x3A }))
            precondition(!field.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }))
        }
    }

    static func checkResponse(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        precondition(text.hasPrefix("HTTP/1.1 "))
        guard let headEnd = text.range(of: "\r\n\r\n") else { preconditionFailure("response without head end") }
        let head = text[text.startIndex..<headEnd.lowerBound]
        if head.hasPrefix("HTTP/1.1 100 ") { return }
        let lengths = head.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("content-length:") }
        precondition(lengths.count == 1)
    }
}
