#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation

/// One accepted socket: performs the actions of its `HTTPConnectionStateMachine`.
///
/// Every mutable field is confined to `queue` (a serial queue targeting the server's shared
/// concurrent I/O queue), which is why the class is `@unchecked Sendable`: other threads only
/// enqueue work on `queue` (handler answers, shutdown) or read `isOpen` under its lock. The socket
/// is non-blocking; a read source, a write source (resumed only while output is pending) and one
/// timer drive it, so a slow or stalled client costs a few kilobytes and never a thread.
final class HTTPConnection: @unchecked Sendable {
    let id: UInt64
    let queue: DispatchQueue
    let remoteAddress: HTTPRemoteAddress
    private let fd: Int32
    private var machine: HTTPConnectionStateMachine
    private let limits: HTTPServerLimits
    private let handler: any HTTPHandler
    private var tls: TLSEngine?
    private let onLog: (@Sendable (HTTPRequestLog) -> Void)?
    private let onDiagnostic: (@Sendable (HTTPServerDiagnostic) -> Void)?
    private let onClose: @Sendable (UInt64) -> Void

    private var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    private var timer: DispatchSourceTimer?
    private var readSuspended = true
    private var writeSuspended = true
    private var timerDeadline: DispatchTime?
    private var output: [UInt8] = []
    private var outputIndex = 0
    private var lingerRequested = false
    /// Bytes of the state machine are queued: report their completion once output drains.
    private var awaitingWriteCompletion = false
    private var writeShut = false
    private var closed = false
    private var pendingCancels = 0

    private let openLock = NSLock()
    private var openFlag = true
    /// `HTTPConnectionStateMachine.headBytesPending` as of the last event (under `openLock`).
    private var headProgress: Int? = 0
    /// The client ended its input (FIN, or TLS close_notify) as of the last event (under `openLock`).
    private var inputEnded = false
    /// Answering the connection limit's 503: never chosen to make room.
    let isOverflow: Bool

    init(id: UInt64, fd: Int32, remoteAddress: HTTPRemoteAddress, targetQueue: DispatchQueue,
         context: HTTPConnectionStateMachine.Context, handler: any HTTPHandler, tls: TLSEngine?,
         onLog: (@Sendable (HTTPRequestLog) -> Void)?, onDiagnostic: (@Sendable (HTTPServerDiagnostic) -> Void)?,
         onClose: @escaping @Sendable (UInt64) -> Void)
    {
        self.id = id
        self.fd = fd
        self.remoteAddress = remoteAddress
        queue = DispatchQueue(label: "http.connection.\(id)", target: targetQueue)
        machine = HTTPConnectionStateMachine(context: context)
        isOverflow = context.rejection != nil
        limits = context.limits
        self.handler = handler
        self.tls = tls
        self.onLog = onLog
        self.onDiagnostic = onDiagnostic
        self.onClose = onClose
    }

    /// False once the connection is closed (readable from any thread).
    var isOpen: Bool { openLock.withLock { openFlag } }

    /// False once the connection is closed or the client has ended its input (readable from any
    /// thread). A client that closes its side while its request is handled is taken to be gone, as
    /// Go's net/http and nginx take it (long work may stop); its answer is still written.
    var isClientPresent: Bool { openLock.withLock { openFlag && !inputEnded } }

    /// Bytes received of a request head still incomplete (0: waiting for one); nil while the
    /// connection is past the head (body, handler, answer), closed or answering the overflow
    /// 503. Readable from any thread: the server picks whom to close at the connection limit.
    var headBytesPending: Int? { isOverflow ? nil : openLock.withLock { openFlag ? headProgress : nil } }

    // MARK: Entry points (any thread)

    func start() {
        queue.async { self.setUp() }
    }

    func handlerCompleted(generation: UInt64, result: Result<HTTPResponse, any Error>) {
        queue.async {
            guard !self.closed else { return }
            self.run(self.machine.handlerCompleted(generation: generation, result: result))
        }
    }

    func beginShutdown() {
        queue.async {
            guard !self.closed else { return }
            self.run(self.machine.beginShutdown())
        }
    }

    func forceClose() {
        queue.async {
            guard !self.closed else { return }
            self.run(self.machine.abort())
        }
    }

    // MARK: Queue-confined

    private func setUp() {
        let read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        let write = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        read.setEventHandler { [weak self] in self?.readable() }
        write.setEventHandler { [weak self] in self?.writable() }
        timer.setEventHandler { [weak self] in self?.timerFired() }
        // The descriptor is closed once both I/O sources are cancelled (never while one may use it).
        pendingCancels = 2
        let cancelled: () -> Void = { [self] in
            self.pendingCancels -= 1
            if self.pendingCancels == 0 {
                Socket.closeDescriptor(self.fd)
                self.onClose(self.id)
            }
        }
        read.setCancelHandler(handler: cancelled)
        write.setCancelHandler(handler: cancelled)
        readSource = read
        writeSource = write
        self.timer = timer
        timer.schedule(deadline: .distantFuture)
        timer.resume()
        read.resume()
        readSuspended = false
        run(machine.start())
    }

    private func readable() {
        guard !closed else { return }
        var actions: [HTTPConnectionStateMachine.Action] = []
        let capacity = 64 * 1024
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buffer in
            guard let base = buffer.baseAddress else { return }
            // A few reads per event, then yield to other connections.
            for _ in 0..<4 {
                let n = recv(fd, base, capacity, 0)
                if n > 0 {
                    let bytes = UnsafeBufferPointer(start: base, count: n)
                    if let tls {
                        var plaintext: [UInt8] = []
                        let result = tls.feed(UnsafeRawBufferPointer(bytes), plaintext: &plaintext)
                        tls.takeOutput(into: &output)
                        if !plaintext.isEmpty { actions += machine.received(plaintext) }
                        switch result {
                        case .ok: break
                        case .closed: actions += machine.peerClosedInput()
                        case .failed(let message):
                            onDiagnostic?(HTTPServerDiagnostic(kind: .tlsError, message: message, remoteAddress: remoteAddress))
                            _ = flush()  // best effort: the TLS alert
                            actions += machine.abort()
                        }
                    } else {
                        actions += machine.received(bytes)
                    }
                    if !machine.wantsRead || machine.isClosed { break }
                    if n < capacity { break }
                } else if n == 0 {
                    actions += machine.peerClosedInput()
                    break
                } else {
                    let code = errno
                    if code == EINTR { continue }
                    if code == EAGAIN || code == EWOULDBLOCK { break }
                    actions += machine.abort()
                    break
                }
            }
        }
        run(actions)
        // Handshake records produced by TLS input (performed actions have pumped their own bytes).
        if !closed, outputIndex < output.count { run(pumpOutput()) }
    }

    private func writable() {
        guard !closed else { return }
        run(pumpOutput())
    }

    private func timerFired() {
        guard !closed, let deadline = timerDeadline, DispatchTime.now() >= deadline else { return }
        timerDeadline = nil
        run(machine.timerFired())
    }

    /// Performs actions; events they cause (a write that completes at once) are handled in turn.
    private func run(_ initial: [HTTPConnectionStateMachine.Action]) {
        var work = initial
        var index = 0
        while index < work.count, !closed {
            let action = work[index]
            index += 1
            switch action {
            case .write(let bytes):
                if let tls {
                    tls.write(bytes)
                    tls.takeOutput(into: &output)
                } else {
                    output.append(contentsOf: bytes)
                }
                awaitingWriteCompletion = true
                work += pumpOutput()
            case .deliver(let request, let generation):
                let box = ResponderBox(connection: self, generation: generation)
                handler.handle(request, responder: HTTPResponder(box: box))
            case .startTimer(let phase):
                let duration: Duration
                switch phase {
                case .head: duration = limits.headTimeout
                case .body: duration = limits.bodyTimeout
                case .idle: duration = limits.idleTimeout
                case .write: duration = limits.writeTimeout
                case .linger: duration = limits.lingerTimeout
                }
                let deadline = DispatchTime.now() + .nanoseconds(duration.nanosecondsClamped)
                timerDeadline = deadline
                timer?.schedule(deadline: deadline)
            case .cancelTimer:
                timerDeadline = nil
                timer?.schedule(deadline: .distantFuture)
            case .log(let log):
                onLog?(log)
            case .lingerClose:
                lingerRequested = true
                work += pumpOutput()
            case .close:
                closeNow()
            }
        }
        updateInterest()
        let progress = machine.headBytesPending, ended = machine.peerClosed
        openLock.withLock {
            headProgress = progress
            inputEnded = ended
        }
    }

    private enum FlushResult { case drained, pending, failed }

    /// Sends queued output; when all is sent, reports the write completion or performs the
    /// lingering half-close.
    private func pumpOutput() -> [HTTPConnectionStateMachine.Action] {
        while true {
            switch flush() {
            case .pending:
                return []
            case .failed:
                return machine.abort()
            case .drained:
                if lingerRequested && !writeShut {
                    if let tls {
                        tls.shutdown()
                        tls.takeOutput(into: &output)
                        if outputIndex < output.count { continue }
                    }
                    writeShut = true
                    shutdown(fd, Int32(SHUT_WR))
                    return []
                }
                guard awaitingWriteCompletion else { return [] }
                awaitingWriteCompletion = false
                return machine.writeCompleted()
            }
        }
    }

    private func flush() -> FlushResult {
        if let tls, tls.hasPendingPlaintext { return .pending }
        while outputIndex < output.count {
            let n = output.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return send(fd, base + outputIndex, raw.count - outputIndex, Socket.sendFlags)
            }
            if n > 0 {
                outputIndex += n
                continue
            }
            let code = errno
            if n < 0 && code == EINTR { continue }
            if n < 0 && (code == EAGAIN || code == EWOULDBLOCK) {
                if writeSuspended, let writeSource {
                    writeSuspended = false
                    writeSource.resume()
                }
                return .pending
            }
            return .failed
        }
        if output.capacity > 256 * 1024 { output = [] } else { output.removeAll(keepingCapacity: true) }
        outputIndex = 0
        if !writeSuspended, let writeSource {
            writeSuspended = true
            writeSource.suspend()
        }
        return .drained
    }

    private func updateInterest() {
        guard !closed, let readSource else { return }
        let want = machine.wantsRead
        if want && readSuspended {
            readSuspended = false
            readSource.resume()
        } else if !want && !readSuspended {
            readSuspended = true
            readSource.suspend()
        }
    }

    private func closeNow() {
        guard !closed else { return }
        closed = true
        machine.releaseBody()
        openLock.lock()
        openFlag = false
        openLock.unlock()
        tls = nil
        timer?.cancel()
        timer = nil
        if let readSource {
            if readSuspended { readSource.resume() }
            readSource.cancel()
        }
        if let writeSource {
            if writeSuspended { writeSource.resume() }
            writeSource.cancel()
        }
        readSource = nil
        writeSource = nil
    }
}
