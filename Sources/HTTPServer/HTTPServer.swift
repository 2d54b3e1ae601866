#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation

/// An HTTP/1.1 server on POSIX sockets and Dispatch.
///
/// Threads and queues: one serial accept queue owns the listening socket (a read source accepts
/// in batches); every connection gets a serial queue targeting one of `ioQueueCount` serial I/O
/// queues (event loops), so at most that many threads do I/O and they never block (non-blocking
/// sockets, read/write sources, one timer per connection). Handlers run wherever they choose;
/// answers are posted back to the connection's queue.
///
/// ```swift
/// let server = HTTPServer(configuration: config) { request in
///     HTTPResponse(status: .ok, body: "hello")
/// }
/// let address = try server.start()
/// ...
/// await server.shutdown(gracePeriod: .seconds(10))
/// ```
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    private let handler: any HTTPHandler
    private let errorRenderer: HTTPErrorRenderer
    private let onRequestComplete: (@Sendable (HTTPRequestLog) -> Void)?
    private let onDiagnostic: (@Sendable (HTTPServerDiagnostic) -> Void)?
    private let acceptQueue = DispatchQueue(label: "http.server.accept")
    /// Serial queues (each served by its own thread when busy, never starved by work that blocks
    /// the global concurrent queues); connections are spread over them round-robin.
    private let ioQueues: [DispatchQueue]
    private let state = Locked(ServerState())
    /// Request-body bytes held by all connections (`HTTPServerLimits.maxBufferedBodyBytes`).
    public let bodyBudget: HTTPBodyBudget

    private struct ServerState {
        enum Phase { case idle, running, draining, stopped }
        var phase: Phase = .idle
        var listener: Int32 = -1
        var acceptSource: AcceptSourceBox?
        var listenerClosed = false
        var localAddress: HTTPRemoteAddress?
        var tls: TLSContext?
        var connections: [UInt64: HTTPConnection] = [:]
        var rejecting = 0
        /// Connections closed to make room for new ones, until their close completes.
        var evicting: Set<UInt64> = []
        var evicted = 0
        var nextID: UInt64 = 0
        var waiters: [@Sendable () -> Void] = []
        var forceTimer: DispatchSourceTimerBox?
    }

    /// - Parameters:
    ///   - handler: called for every complete request.
    ///   - errorRenderer: renders server-side errors and thrown `HTTPError`s (default JSON
    ///     `{"error": {"code", "message"}}`).
    ///   - onRequestComplete: called once per answered request, after its response was written.
    ///   - onDiagnostic: accept failures, rejected connections, TLS errors, forced closes.
    public init(configuration: HTTPServerConfiguration, handler: any HTTPHandler,
                errorRenderer: @escaping HTTPErrorRenderer = HTTPError.jsonRenderer,
                onRequestComplete: (@Sendable (HTTPRequestLog) -> Void)? = nil,
                onDiagnostic: (@Sendable (HTTPServerDiagnostic) -> Void)? = nil)
    {
        self.configuration = configuration
        self.handler = handler
        self.errorRenderer = errorRenderer
        self.onRequestComplete = onRequestComplete
        self.onDiagnostic = onDiagnostic
        ioQueues = (0..<max(1, configuration.ioQueueCount)).map { DispatchQueue(label: "http.server.io.\($0)") }
        bodyBudget = HTTPBodyBudget(limit: max(configuration.limits.maxBufferedBodyBytes, configuration.limits.maxBodyBytes))
    }

    /// A server whose handler is an async closure (one Task per request).
    public convenience init(configuration: HTTPServerConfiguration,
                            errorRenderer: @escaping HTTPErrorRenderer = HTTPError.jsonRenderer,
                            onRequestComplete: (@Sendable (HTTPRequestLog) -> Void)? = nil,
                            onDiagnostic: (@Sendable (HTTPServerDiagnostic) -> Void)? = nil,
                            handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse)
    {
        self.init(configuration: configuration, handler: AsyncHTTPHandler(handler), errorRenderer: errorRenderer,
                  onRequestComplete: onRequestComplete, onDiagnostic: onDiagnostic)
    }

    /// The bound address (with the real port when the configuration said 0), once started.
    public var localAddress: HTTPRemoteAddress? { state.withLock { $0.localAddress } }

    /// Connections currently open (including those being answered 503 or lingering).
    public var openConnectionCount: Int { state.withLock { $0.connections.count } }

    /// Connections closed so far to make room at the connection limit (see `acceptReady`).
    public var evictedConnectionCount: Int { state.withLock { $0.evicted } }

    /// Binds, listens and starts accepting. Returns the bound address.
    @discardableResult
    public func start() throws(HTTPServerError) -> HTTPRemoteAddress {
        let limits = configuration.limits
        guard limits.maxConnections >= 1, limits.overflowConnections >= 0 else {
            throw .invalidConfiguration("maxConnections must be positive and overflowConnections not negative")
        }
        let tlsContext = try configuration.tls.map { config throws(HTTPServerError) in try TLSContext(configuration: config) }
        let claimed = state.withLock { s -> Bool in
            guard s.phase == .idle else { return false }
            s.phase = .running
            return true
        }
        guard claimed else { throw .alreadyStarted }
        let (fd, address): (Int32, HTTPRemoteAddress)
        do {
            (fd, address) = try Socket.listen(host: configuration.host, port: configuration.port,
                                              backlog: max(configuration.backlog, 128), reusePort: configuration.reusePort)
        } catch {
            state.withLock { $0.phase = .idle }
            throw error
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptQueue)
        source.setEventHandler { [weak self] in self?.acceptReady() }
        source.setCancelHandler { [weak self] in
            Socket.closeDescriptor(fd)
            self?.listenerDidClose()
        }
        state.withLock { s in
            s.listener = fd
            s.acceptSource = AcceptSourceBox(source)
            s.localAddress = address
            s.tls = tlsContext
        }
        source.resume()
        return address
    }

    /// Graceful shutdown: stop accepting, close idle connections, let requests in progress finish
    /// (their responses carry `Connection: close`), and after `gracePeriod` close whatever is left.
    /// Returns once every connection is closed and the listening socket is released. Calling it
    /// again (or concurrently) waits for the same shutdown.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            shutdown(gracePeriod: gracePeriod) { continuation.resume() }
        }
    }

    /// Callback form of `shutdown(gracePeriod:)`; `completion` runs on an arbitrary queue.
    public func shutdown(gracePeriod: Duration, completion: @escaping @Sendable () -> Void) {
        enum Step { case finishNow, alreadyDraining, begin([HTTPConnection], AcceptSourceBox?) }
        let step: Step = state.withLock { s in
            switch s.phase {
            case .stopped:
                return .finishNow
            case .idle:
                s.phase = .stopped
                return .finishNow
            case .draining:
                s.waiters.append(completion)
                return .alreadyDraining
            case .running:
                s.phase = .draining
                s.waiters.append(completion)
                let source = s.acceptSource
                s.acceptSource = nil
                return .begin(Array(s.connections.values), source)
            }
        }
        switch step {
        case .finishNow:
            completion()
        case .alreadyDraining:
            break
        case .begin(let connections, let source):
            if let source { source.source.cancel() } else { listenerDidClose() }
            for connection in connections { connection.beginShutdown() }
            let timer = DispatchSource.makeTimerSource(queue: acceptQueue)
            timer.setEventHandler { [weak self] in self?.forceCloseRemaining() }
            timer.schedule(deadline: .now() + .nanoseconds(gracePeriod.nanosecondsClamped))
            state.withLock { $0.forceTimer = DispatchSourceTimerBox(timer) }
            timer.resume()
            checkFinished()
        }
    }

    /// Suspends until the server has shut down (after `shutdown` was called from elsewhere, e.g.
    /// a signal handler). Returns at once if it is not running.
    public func waitUntilShutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = state.withLock { s -> Bool in
                if s.phase == .stopped || s.phase == .idle { return true }
                s.waiters.append { continuation.resume() }
                return false
            }
            if finished { continuation.resume() }
        }
    }

    // MARK: Accepting

    private func acceptReady() {
        let (listener, tls) = state.withLock { ($0.listener, $0.tls) }
        guard listener >= 0 else { return }
        let limits = configuration.limits
        for _ in 0..<64 {
            switch Socket.accept(listener) {
            case .wouldBlock:
                return
            case .failed(let code):
                onDiagnostic?(HTTPServerDiagnostic(kind: .acceptFailed, message: Socket.errnoText(code), remoteAddress: nil))
                pauseAccepting()
                return
            case .accepted(let fd, let remote):
                enum Admission { case serve(UInt64), reject(UInt64), drop }
                var victim: HTTPConnection?
                let admission: Admission = state.withLock { s in
                    guard s.phase == .running else { return .drop }
                    s.nextID &+= 1
                    if s.connections.count - s.rejecting - s.evicting.count < limits.maxConnections {
                        return .serve(s.nextID)
                    }
                    // Full: make room by closing the connection that has sent the least of a
                    // request head (an idle keep-alive one first, then the slowest partial
                    // head; the longest waiting among equals). One busy with a body or an
                    // answer is never closed for this; without such a candidate, overflow.
                    if let chosen = Self.evictionCandidate(s) {
                        s.evicting.insert(chosen.id)
                        s.evicted += 1
                        victim = chosen
                        return .serve(s.nextID)
                    }
                    if s.rejecting < limits.overflowConnections {
                        s.rejecting += 1
                        return .reject(s.nextID)
                    }
                    return .drop
                }
                if let victim {
                    victim.forceClose()
                    onDiagnostic?(HTTPServerDiagnostic(kind: .connectionEvicted,
                                                       message: "closed at the connection limit to make room",
                                                       remoteAddress: victim.remoteAddress))
                }
                let id: UInt64
                var rejection: HTTPError? = nil
                switch admission {
                case .drop:
                    Socket.closeDescriptor(fd)
                    onDiagnostic?(HTTPServerDiagnostic(kind: .connectionDropped, message: "connection limit reached",
                                                       remoteAddress: remote))
                    continue
                case .serve(let n):
                    id = n
                case .reject(let n):
                    id = n
                    rejection = .serviceUnavailable("the server is at its connection limit",
                                                    retryAfterSeconds: limits.retryAfterSeconds)
                    onDiagnostic?(HTTPServerDiagnostic(kind: .connectionRejected, message: "connection limit reached",
                                                       remoteAddress: remote))
                }
                var engine: TLSEngine? = nil
                if let tls {
                    do {
                        engine = try TLSEngine(context: tls)
                    } catch {
                        onDiagnostic?(HTTPServerDiagnostic(kind: .tlsError, message: error.description, remoteAddress: remote))
                        Socket.closeDescriptor(fd)
                        state.withLock { s in if rejection != nil { s.rejecting -= 1 } }
                        continue
                    }
                }
                let rejected = rejection != nil
                let handler = self.handler
                let context = HTTPConnectionStateMachine.Context(limits: limits, remoteAddress: remote, isSecure: tls != nil,
                                                                 errorRenderer: errorRenderer, rejection: rejection,
                                                                 admit: { handler.admit($0) }, bodyBudget: bodyBudget)
                let connection = HTTPConnection(
                    id: id, fd: fd, remoteAddress: remote, targetQueue: ioQueues[Int(id % UInt64(ioQueues.count))], context: context, handler: handler,
                    tls: engine, onLog: onRequestComplete, onDiagnostic: onDiagnostic,
                    onClose: { [weak self] id in self?.connectionDidClose(id, rejected: rejected) })
                // Registered under the same check as shutdown's snapshot, so none escapes it.
                let registered = state.withLock { s -> Bool in
                    guard s.phase == .running else {
                        if rejected { s.rejecting -= 1 }
                        return false
                    }
                    s.connections[id] = connection
                    return true
                }
                if registered {
                    connection.start()
                } else {
                    Socket.closeDescriptor(fd)
                }
            }
        }
        // Possibly more waiting: continue after other work on this queue (whether or not the
        // source would fire again for them).
        acceptQueue.async { [weak self] in self?.acceptReady() }
    }

    /// Out of descriptors (or similar): stop accepting for 100 ms instead of spinning.
    private func pauseAccepting() {
        guard let source = state.withLock({ $0.acceptSource }) else { return }
        source.source.suspend()
        acceptQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { source.source.resume() }
    }

    /// The open connection that has sent the fewest bytes of its current request head and is
    /// not yet being evicted (ties: the oldest), or nil when every connection is past its head.
    private static func evictionCandidate(_ s: ServerState) -> HTTPConnection? {
        var best: (connection: HTTPConnection, bytes: Int)?
        for connection in s.connections.values where !s.evicting.contains(connection.id) {
            guard let bytes = connection.headBytesPending else { continue }
            if let current = best, current.bytes < bytes || (current.bytes == bytes && current.connection.id < connection.id) {
                continue
            }
            best = (connection, bytes)
        }
        return best?.connection
    }

    private func connectionDidClose(_ id: UInt64, rejected: Bool) {
        state.withLock { s in
            s.connections[id] = nil
            s.evicting.remove(id)
            if rejected { s.rejecting -= 1 }
        }
        checkFinished()
    }

    private func listenerDidClose() {
        state.withLock { s in
            s.listenerClosed = true
            s.listener = -1
        }
        checkFinished()
    }

    private func forceCloseRemaining() {
        let remaining = state.withLock { Array($0.connections.values) }
        if !remaining.isEmpty {
            onDiagnostic?(HTTPServerDiagnostic(kind: .shutdownForcedClose,
                                               message: "\(remaining.count) connection(s) closed at the end of the grace period",
                                               remoteAddress: nil))
        }
        for connection in remaining { connection.forceClose() }
    }

    private func checkFinished() {
        let waiters: [@Sendable () -> Void] = state.withLock { s in
            guard s.phase == .draining, s.listenerClosed, s.connections.isEmpty else { return [] }
            s.phase = .stopped
            s.forceTimer?.timer.cancel()
            s.forceTimer = nil
            s.tls = nil
            let w = s.waiters
            s.waiters = []
            return w
        }
        for waiter in waiters { waiter() }
    }
}

/// Dispatch sources are thread-safe objects; these boxes let them sit in Sendable state.
private final class AcceptSourceBox: @unchecked Sendable {
    let source: DispatchSourceRead
    init(_ source: DispatchSourceRead) { self.source = source }
}

private final class DispatchSourceTimerBox: @unchecked Sendable {
    let timer: DispatchSourceTimer
    init(_ timer: DispatchSourceTimer) { self.timer = timer }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
