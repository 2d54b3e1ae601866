#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// What the server calls for every complete request.
///
/// `handle` runs on the connection's serial queue: it must not block. Hand the work to another
/// queue (or a Task) and call `responder.respond(_:)` from anywhere, once, when the answer is
/// ready; requests of one connection are answered in order because the next one is not read
/// before this one is answered. A responder that is dropped without answering answers
/// 500 `internal_error`.
public protocol HTTPHandler: Sendable {
    func handle(_ request: HTTPRequest, responder: HTTPResponder)

    /// Admission at header time: called on the connection's queue once the head of a request
    /// that announces a body is parsed, before any byte of the body is read and before
    /// `100 Continue` is sent. An error is the answer, so that a request the handler would refuse
    /// anyway (bad key, unknown route, server full) costs no buffer: a declared body of at most
    /// 64 KiB (without Expect) is read and dropped first and the connection stays usable; any
    /// other body is never read and the connection closes after the answer. Must be quick and
    /// must not block. The default admits every request.
    func admit(_ head: HTTPRequestHead) -> HTTPError?
}

extension HTTPHandler {
    public func admit(_ head: HTTPRequestHead) -> HTTPError? { nil }
}

/// Answers one request; callable from any thread, first call wins.
public struct HTTPResponder: Sendable {
    let box: ResponderBox

    init(box: ResponderBox) { self.box = box }

    /// Sends `response`.
    public func respond(_ response: HTTPResponse) {
        box.complete(.success(response))
    }

    /// Sends the error response for `error` through the error renderer: an `HTTPError` as it is,
    /// another `CodedError` in its kind, anything else as 500 `internal_error` (its description
    /// is not sent to the client).
    public func fail(_ error: any Error) {
        box.complete(.failure(error))
    }

    /// False once the client is gone: the server dropped the connection (reset, timeout, forced
    /// shutdown) or the client ended its input (FIN) while the request is handled, which is taken
    /// as leaving, as Go's net/http and nginx take it. Long work may be skipped; an answer is still
    /// written while the socket takes it.
    public var isConnectionOpen: Bool { box.isConnectionOpen }
}

/// Adapts `(HTTPRequest) async throws -> HTTPResponse`: each request runs in its own Task.
///
/// The Tasks prefer `HandlerTaskExecutor.shared` (serial Dispatch queues with their own threads),
/// so handlers make progress even while other code blocks the threads of Swift's cooperative pool;
/// where task executors are unavailable (macOS before 15) they run on the default executor.
public struct AsyncHTTPHandler: HTTPHandler {
    /// Asks whether the request's connection is still open (`HTTPResponder.isConnectionOpen`).
    public typealias ConnectionCheck = @Sendable () -> Bool

    let body: @Sendable (HTTPRequest, @escaping ConnectionCheck) async throws -> HTTPResponse
    /// The `HandlerTaskExecutor` the Tasks prefer (nil: the shared one); untyped because stored
    /// properties cannot carry the executor's availability.
    let executor: (any Sendable)?

    public init(_ body: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        self.body = { request, _ in try await body(request) }
        executor = nil
    }

    /// A body that also gets a check of its connection, so that long work can stop once the
    /// client is gone.
    public init(connectionAware body: @escaping @Sendable (HTTPRequest, @escaping ConnectionCheck) async throws -> HTTPResponse) {
        self.body = body
        executor = nil
    }

    /// Tasks prefer `executor` instead of the shared one (a server of its own handler queues).
    @available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
    public init(executor: HandlerTaskExecutor, _ body: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        self.body = { request, _ in try await body(request) }
        self.executor = executor
    }

    /// A connection-aware body whose Tasks prefer `executor`.
    @available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
    public init(executor: HandlerTaskExecutor,
                connectionAware body: @escaping @Sendable (HTTPRequest, @escaping ConnectionCheck) async throws -> HTTPResponse) {
        self.body = body
        self.executor = executor
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let body = self.body
        let operation: @Sendable () async -> Void = {
            do {
                responder.respond(try await body(request, { responder.isConnectionOpen }))
            } catch {
                responder.fail(error)
            }
        }
        if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *) {
            Task(executorPreference: executor as? HandlerTaskExecutor ?? HandlerTaskExecutor.shared, operation: operation)
        } else {
            Task(operation: operation)
        }
    }
}

/// A task executor over a few serial Dispatch queues (jobs spread round-robin). Serial queues get
/// threads of their own from Dispatch, independent of the cooperative pool and of the global
/// concurrent queues.
@available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
public final class HandlerTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// One queue per active processor.
    public static let shared = HandlerTaskExecutor(queueCount: ProcessInfo.processInfo.activeProcessorCount)

    private let queues: [DispatchQueue]
    private let counter = Locked<Int>(0)

    public init(queueCount: Int, label: String = "http.handler") {
        queues = (0..<max(1, queueCount)).map { DispatchQueue(label: "\(label).\($0)") }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let index = counter.withLock { value -> Int in
            value = (value + 1) % queues.count
            return value
        }
        let executor = asUnownedTaskExecutor()
        queues[index].async { unowned.runSynchronously(on: executor) }
    }
}

/// Adapts a synchronous closure run on `queue` (never on the connection's queue).
public struct QueueHTTPHandler: HTTPHandler {
    let queue: DispatchQueue
    let body: @Sendable (HTTPRequest) throws -> HTTPResponse

    public init(queue: DispatchQueue, _ body: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) {
        self.queue = queue
        self.body = body
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let body = self.body
        queue.async {
            do {
                responder.respond(try body(request))
            } catch {
                responder.fail(error)
            }
        }
    }
}

/// One request's pending answer; delivers the first completion to its connection.
final class ResponderBox: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    private weak var connection: HTTPConnection?
    private let generation: UInt64

    init(connection: HTTPConnection, generation: UInt64) {
        self.connection = connection
        self.generation = generation
    }

    var isConnectionOpen: Bool { connection?.isClientPresent ?? false }

    func complete(_ result: Result<HTTPResponse, any Error>) {
        lock.lock()
        let first = !done
        done = true
        lock.unlock()
        guard first else { return }
        connection?.handlerCompleted(generation: generation, result: result)
    }

    deinit {
        if !done {
            connection?.handlerCompleted(generation: generation,
                                         result: .failure(HTTPError.internalError("the handler did not answer")))
        }
    }
}

/// A finished exchange, for logs and metrics. Delivered after the response was written (or the
/// connection failed while writing it).
public struct HTTPRequestLog: Sendable {
    public var requestID: String
    /// nil when the request head could not be parsed.
    public var method: String?
    /// Raw path without the query (client-controlled: map it to a route before using it as a
    /// metric label); nil when the head could not be parsed.
    public var path: String?
    public var version: HTTPVersion?
    public var status: Int
    /// The server's error code when the server (or a thrown HTTPError) produced the answer.
    public var errorCode: String?
    /// Decoded request body bytes received.
    public var requestBodyBytes: Int
    /// Response body bytes sent (0 for HEAD).
    public var responseBodyBytes: Int
    /// From the first byte of the request (or the accept, for a first request) to the last byte
    /// of the response handed to the kernel.
    public var duration: Duration
    public var remoteAddress: HTTPRemoteAddress
    /// False when the connection failed before the whole response was written.
    public var completed: Bool
}

/// Server-level events that are not requests (for logs and counters).
public struct HTTPServerDiagnostic: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// accept(2) failed (e.g. out of file descriptors); accepting pauses briefly.
        case acceptFailed = "accept_failed"
        /// Connection beyond `maxConnections + overflowConnections`, closed at once.
        case connectionDropped = "connection_dropped"
        /// Connection beyond `maxConnections`, answered 503.
        case connectionRejected = "connection_rejected"
        /// A connection still sending (or idle before) a request head, closed at the connection
        /// limit to make room for a new one.
        case connectionEvicted = "connection_evicted"
        /// TLS handshake or record error.
        case tlsError = "tls_error"
        /// Connections still open at the end of the shutdown grace period, closed by force.
        case shutdownForcedClose = "shutdown_forced_close"
    }
    public var kind: Kind
    public var message: String
    public var remoteAddress: HTTPRemoteAddress?
    public var description: String {
        "\(kind.rawValue): \(message)" + (remoteAddress.map { " (\($0))" } ?? "")
    }
}
