import Foundation

/// The life of one connection as a pure state machine: bytes, handler answers, write
/// completions, timer firings and shutdown go in; actions (write these bytes, deliver this
/// request, start that timer, close) come out. No I/O, no clocks other than for durations, so it
/// is tested and fuzzed without sockets; `HTTPConnection` performs the actions.
///
/// One request at a time: the next pipelined request is parsed only after the previous response
/// has been written, which answers pipelined requests in order; while a request is being handled
/// further input is buffered up to `pipelineBufferLimit` and then reading pauses.
struct HTTPConnectionStateMachine {
    enum TimerPhase: Equatable, Sendable {
        case head, body, idle, write, linger
    }

    enum Action {
        case write([UInt8])
        case deliver(HTTPRequest, generation: UInt64)
        case startTimer(TimerPhase)
        case cancelTimer
        case log(HTTPRequestLog)
        /// Once every queued byte is written: shut the write side and discard input until the
        /// peer closes or the linger timer fires.
        case lingerClose
        case close
    }

    enum State: Equatable {
        /// Waiting for a request head; `started` once a byte of it arrived.
        case awaitingHead(started: Bool)
        case awaitingBody
        case handling
        case writingResponse
        /// Writing a final error response; the connection closes after it.
        case writingError
        case lingering
        case closed
    }

    struct Context: Sendable {
        var limits: HTTPServerLimits
        var remoteAddress: HTTPRemoteAddress
        var isSecure: Bool
        var errorRenderer: HTTPErrorRenderer
        /// Set for connections beyond the connection limit: their first request is answered
        /// with this error.
        var rejection: HTTPError?
        /// The handler's header-time admission (`HTTPHandler.admit`), for requests with a body.
        var admit: @Sendable (HTTPRequestHead) -> HTTPError? = { _ in nil }
        /// The server-wide budget the bodies reserve from (nil: unbounded).
        var bodyBudget: HTTPBodyBudget?
    }

    static let pipelineBufferLimit = 64 * 1024
    /// Largest declared body read and dropped after a header-time refusal (see `beginRequest`).
    static let discardableBodyBytes = 64 * 1024

    private(set) var state: State = .awaitingHead(started: false)
    private let context: Context
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var parser: HTTPRequestHeadParser
    private var decoder: HTTPBodyDecoder?
    private var body = Data()
    /// Bytes of `bodyBudget` this exchange holds.
    private var reservedBodyBytes = 0
    /// Set when the handler refused the request at header time but its small body is read
    /// (and dropped) first; answered once the body is complete.
    private var refusalAfterBody: HTTPError?

    // The current exchange.
    private var head: HTTPRequestHead?
    private var requestID: String?
    private var requestStart = ContinuousClock.now
    private var keepAlive = false
    private var pendingLog: HTTPRequestLog?
    private var generation: UInt64 = 0

    private var requestIndex = 0
    private var draining = false
    private(set) var peerClosed = false

    init(context: Context) {
        self.context = context
        parser = HTTPRequestHeadParser(limits: context.limits)
    }

    /// The connection was accepted: the head timer of the first request runs from now.
    mutating func start() -> [Action] {
        requestStart = .now
        return [.startTimer(.head)]
    }

    /// Whether the connection should read from the socket now.
    var wantsRead: Bool {
        if peerClosed { return false }
        switch state {
        case .awaitingHead, .awaitingBody, .writingError, .lingering: return true
        case .handling, .writingResponse: return buffer.count - readIndex < Self.pipelineBufferLimit
        case .closed: return false
        }
    }

    var isClosed: Bool { state == .closed }

    /// Bytes received of a request head not yet complete (0 while waiting for one); nil once
    /// the head is complete (body, handler, answer) or the connection is closing.
    var headBytesPending: Int? {
        guard case .awaitingHead = state else { return nil }
        return buffer.count - readIndex
    }

    // MARK: Events

    mutating func received<C: Collection>(_ bytes: C) -> [Action] where C.Element == UInt8 {
        switch state {
        case .closed, .writingError, .lingering:
            return []  // discarded
        case .handling, .writingResponse:
            buffer.append(contentsOf: bytes)
            return []
        case .awaitingHead, .awaitingBody:
            buffer.append(contentsOf: bytes)
            return process()
        }
    }

    /// End of input from the peer.
    mutating func peerClosedInput() -> [Action] {
        peerClosed = true
        switch state {
        case .awaitingHead, .awaitingBody, .lingering:
            // Nothing to answer (an incomplete request is dropped without a response).
            releaseBody()
            state = .closed
            return [.close]
        case .handling, .writingResponse, .writingError, .closed:
            return []  // answer, then close
        }
    }

    /// The handler answered request `generation`.
    mutating func handlerCompleted(generation: UInt64, result: Result<HTTPResponse, any Error>) -> [Action] {
        guard state == .handling, generation == self.generation else { return [] }
        releaseBody()
        var response: HTTPResponse
        var errorCode: String? = nil
        switch result {
        case .success(let r):
            response = r
            if r.headers.tokens(for: "connection").contains("close") { keepAlive = false }
        case .failure(let error):
            let httpError = HTTPError.answer(for: error)
            response = render(httpError)
            errorCode = httpError.code
        }
        if draining { keepAlive = false }
        if context.limits.maxRequestsPerConnection > 0 && requestIndex + 1 >= context.limits.maxRequestsPerConnection {
            keepAlive = false
        }
        let encoded = HTTPResponseEncoder.encode(response, isHEAD: head?.method == .head, keepAlive: keepAlive,
                                                 requestVersion: head?.version ?? .http1_1, requestID: requestID)
        pendingLog = makeLog(status: encoded.status, errorCode: errorCode, responseBodyBytes: encoded.bodyBytes)
        state = .writingResponse
        return [.startTimer(.write), .write(encoded.bytes)]
    }

    /// Every byte queued so far has been handed to the kernel.
    mutating func writeCompleted() -> [Action] {
        switch state {
        case .writingResponse:
            var actions: [Action] = []
            if var log = pendingLog {
                log.duration = ContinuousClock.now - requestStart
                actions.append(.log(log))
            }
            pendingLog = nil
            if keepAlive && !draining && !peerClosed {
                resetExchange()
                requestIndex += 1
                state = .awaitingHead(started: false)
                actions.append(.startTimer(.idle))
                actions += process()
                return actions
            }
            return actions + finishWithLinger()
        case .writingError:
            var actions: [Action] = []
            if var log = pendingLog {
                log.duration = ContinuousClock.now - requestStart
                actions.append(.log(log))
            }
            pendingLog = nil
            return actions + finishWithLinger()
        default:
            return []
        }
    }

    mutating func timerFired() -> [Action] {
        switch state {
        case .awaitingHead(started: false):
            state = .closed
            return [.close]
        case .awaitingHead(started: true):
            return fail(.requestTimeout("request head not received in time"))
        case .awaitingBody:
            return fail(.requestTimeout("request body not received in time"))
        case .writingResponse, .writingError:
            return abort()
        case .lingering:
            state = .closed
            return [.close]
        case .handling, .closed:
            return []
        }
    }

    /// Graceful shutdown: close if idle, otherwise finish the current exchange and close.
    mutating func beginShutdown() -> [Action] {
        draining = true
        if state == .awaitingHead(started: false) {
            state = .closed
            return [.close]
        }
        return []
    }

    /// I/O failure or forced close: drop everything (logging a response cut short).
    mutating func abort() -> [Action] {
        guard state != .closed else { return [] }
        var actions: [Action] = []
        if var log = pendingLog {
            log.duration = ContinuousClock.now - requestStart
            log.completed = false
            actions.append(.log(log))
        }
        pendingLog = nil
        releaseBody()
        state = .closed
        return actions + [.close]
    }

    /// Gives back the body bytes this exchange reserved (idempotent; also called by the
    /// connection when it closes, whatever the state).
    mutating func releaseBody() {
        context.bodyBudget?.release(reservedBodyBytes)
        reservedBodyBytes = 0
    }

    // MARK: Parsing

    private mutating func process() -> [Action] {
        var actions: [Action] = []
        loop: while true {
            switch state {
            case .awaitingHead(let started):
                if readIndex == buffer.count { break loop }
                if !started {
                    state = .awaitingHead(started: true)
                    if requestIndex > 0 {
                        requestStart = .now
                        actions.append(.startTimer(.head))
                    }
                }
                do {
                    guard let (parsed, consumed) = try parser.parse(buffer, base: readIndex) else { break loop }
                    readIndex += consumed
                    actions += beginRequest(parsed)
                } catch {
                    actions += fail(error)
                    break loop
                }
            case .awaitingBody:
                guard var current = decoder else { break loop }
                var index = readIndex
                do {
                    let done = try current.decode(buffer, index: &index, into: &body)
                    readIndex = index
                    decoder = current
                    if let refusal = refusalAfterBody {
                        body.removeAll(keepingCapacity: true)
                        if !done { break loop }
                        refusalAfterBody = nil
                        generation &+= 1
                        state = .handling
                        actions += [.cancelTimer] + handlerCompleted(generation: generation, result: .failure(refusal))
                        continue
                    }
                    // A chunked body reserves as it grows (a declared length reserved it all).
                    if body.count > reservedBodyBytes, let budget = context.bodyBudget {
                        guard budget.reserve(body.count - reservedBodyBytes) else {
                            actions += fail(.bodyBudgetExhausted(retryAfterSeconds: context.limits.retryAfterSeconds))
                            break loop
                        }
                        reservedBodyBytes = body.count
                    }
                    if !done { break loop }
                    actions += deliver()
                } catch {
                    readIndex = index
                    decoder = current
                    actions += fail(error)
                    break loop
                }
            default:
                break loop
            }
        }
        compact()
        return actions
    }

    private mutating func beginRequest(_ parsed: HTTPRequestHead) -> [Action] {
        head = parsed
        let offered = parsed.headers.values(for: RequestID.headerName)
        requestID = offered.count == 1
            ? RequestID.sanitize(offered[0], maxLength: context.limits.maxRequestIDLength) ?? RequestID.generate()
            : RequestID.generate()
        let framing: HTTPRequestFraming
        do {
            framing = try HTTPRequestFraming.decide(for: parsed, limits: context.limits)
        } catch {
            return fail(error)
        }
        if let rejection = context.rejection { return fail(rejection) }
        keepAlive = framing.keepAlive && !draining
        switch framing.body {
        case .none:
            return deliver()
        case .length, .chunked:
            // Refusals that need no body come before any byte of it is read (and before
            // 100 Continue): the handler's, then the server-wide body budget.
            if let refusal = context.admit(parsed) {
                // A small declared body is read and dropped, so that the connection stays
                // usable (a client refused on a keep-alive connection need not reconnect); a
                // large or chunked one, or one waiting for 100 Continue, is never read.
                guard case .length(let n) = framing.body, n <= Self.discardableBodyBytes, !framing.expectContinue else {
                    return fail(refusal)
                }
                refusalAfterBody = refusal
                decoder = HTTPBodyDecoder(framing: framing.body, limits: context.limits)
                body = Data()
                state = .awaitingBody
                return [.startTimer(.body)]
            }
            if case .length(let n) = framing.body, let budget = context.bodyBudget {
                guard budget.reserve(n) else {
                    return fail(.bodyBudgetExhausted(retryAfterSeconds: context.limits.retryAfterSeconds))
                }
                reservedBodyBytes = n
            }
            decoder = HTTPBodyDecoder(framing: framing.body, limits: context.limits)
            body = Data()
            // The declared length is reserved from the budget already: one allocation of it
            // (pages are touched only as bytes arrive), not a growing copy of up to twice it.
            if case .length(let n) = framing.body { body.reserveCapacity(n) }
            state = .awaitingBody
            var actions: [Action] = [.startTimer(.body)]
            if framing.expectContinue && readIndex == buffer.count {
                actions.append(.write(HTTPResponseEncoder.continueResponse))
            }
            return actions
        }
    }

    private mutating func deliver() -> [Action] {
        guard let head, let requestID else { return fail(.internalError("no request head")) }
        generation &+= 1
        state = .handling
        let request = HTTPRequest(method: head.method, target: head.target, version: head.version,
                                  headers: head.headers, body: body, trailers: decoder?.trailers ?? HTTPHeaders(),
                                  requestID: requestID, remoteAddress: context.remoteAddress,
                                  isSecure: context.isSecure, indexOnConnection: requestIndex)
        pendingLog = makeLog(status: 0, errorCode: nil, responseBodyBytes: 0)
        body = Data()
        return [.cancelTimer, .deliver(request, generation: generation)]
    }

    /// Answers `error` and closes the connection after it.
    private mutating func fail(_ error: HTTPError) -> [Action] {
        releaseBody()
        refusalAfterBody = nil
        if requestID == nil { requestID = RequestID.generate() }
        let response = render(error)
        let encoded = HTTPResponseEncoder.encode(response, isHEAD: head?.method == .head, keepAlive: false,
                                                 requestVersion: head?.version ?? .http1_1, requestID: requestID)
        pendingLog = makeLog(status: encoded.status, errorCode: error.code, responseBodyBytes: encoded.bodyBytes)
        state = .writingError
        // Input after an error is never parsed.
        buffer = []
        readIndex = 0
        decoder = nil
        return [.startTimer(.write), .write(encoded.bytes)]
    }

    private mutating func finishWithLinger() -> [Action] {
        buffer = []
        readIndex = 0
        if peerClosed {
            state = .closed
            return [.close]
        }
        state = .lingering
        return [.startTimer(.linger), .lingerClose]
    }

    private func render(_ error: HTTPError) -> HTTPResponse {
        var response = context.errorRenderer(error)
        for field in error.headers where !response.headers.contains(field.name) {
            response.headers.add(name: field.name, value: field.value)
        }
        return response
    }

    private func makeLog(status: Int, errorCode: String?, responseBodyBytes: Int) -> HTTPRequestLog {
        HTTPRequestLog(requestID: requestID ?? "", method: head?.method.rawValue, path: head?.target.path,
                       version: head?.version, status: status, errorCode: errorCode,
                       requestBodyBytes: decoder?.bodyBytes ?? 0, responseBodyBytes: responseBodyBytes,
                       duration: .zero, remoteAddress: context.remoteAddress, completed: true)
    }

    private mutating func resetExchange() {
        refusalAfterBody = nil
        head = nil
        requestID = nil
        decoder = nil
        body = Data()
        parser.reset()
    }

    private mutating func compact() {
        if readIndex == buffer.count {
            if buffer.capacity > 256 * 1024 { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            readIndex = 0
        } else if readIndex >= 16 * 1024 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }
}
