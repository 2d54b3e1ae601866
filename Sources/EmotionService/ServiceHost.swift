import Conversation
import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM
import HTTPServer
import Numerics
import ServingPipeline

/// Everything the server process runs, wired together: model package -> encoder + classifier ->
/// conversation engine -> API -> HTTP server, plus state snapshots, request logs and the drain
/// on shutdown. `emotion-server` is a thin command line around this; tests run it in-process.
public final class ServiceHost: @unchecked Sendable {
    public struct Options: Sendable {
        public var http = HTTPServerConfiguration()
        public var conversation = ConversationConfiguration()
        public var stateDirectory: URL?
        public var snapshotInterval: TimeInterval = 30
        public var drainTimeout: TimeInterval = 30
        public var apiKeys = APIKeys.none
        public var replicaId: String?
        /// API handlers run on this many queues of their own; 0 shares the process-wide
        /// `HandlerTaskExecutor.shared` (one queue per core).
        public var handlerQueues = 0
        /// Journal every stored turn in `stateDirectory` and answer it only once durable.
        public var journal = false
        /// Seconds the journal waits after a turn's record to sync it with others (0: at once).
        public var journalCommitInterval: TimeInterval = 0
        /// How packed weights are held (nil: the package's `weight_precision`, else f32).
        public var weightPrecision: Linear.Precision?
        public init() {}
    }

    public let options: Options
    public let engine: ConversationEngine
    public let api: EmotionAPI
    public let logger: JSONLogger
    let snapshots: SessionSnapshotStore?
    let journal: TurnJournal?
    /// One snapshot pass at a time (timer, start, shutdown).
    private let passLock = NSLock()
    private var server: HTTPServer?
    private var timer: DispatchSourceTimer?
    /// Held while running, so that no second process works on the same state directory.
    private let directoryLock: StateDirectoryLock?
    private let readiness = Flag()
    /// The `HandlerTaskExecutor` of `options.handlerQueues` (nil: the shared one); untyped for
    /// the executor's availability.
    let handlerExecutorStorage: (any Sendable)?

    @available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
    var handlerExecutor: HandlerTaskExecutor { handlerExecutorStorage as? HandlerTaskExecutor ?? .shared }

    /// A thread-safe boolean shared with the API's /readyz.
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
        func set(_ v: Bool) { lock.lock(); value = v; lock.unlock() }
    }

    /// Loads a model package (`ServiceModel.load`) and builds the service (not yet listening).
    public static func load(model directory: URL, options: Options, maxAudioSeconds: Double = 120,
                            logger: JSONLogger = JSONLogger()) throws -> ServiceHost {
        let model = try ServiceModel.load(directory: directory, conversation: options.conversation,
                                          maxAudioSeconds: maxAudioSeconds, weightPrecision: options.weightPrecision)
        logger.info("weights", ["weight_precision": model.package.weights.weightPrecision.rawValue,
                                "weights_bytes": model.package.weights.fileSize])
        return try ServiceHost(engine: model.engine, description: model.description, options: options, logger: logger,
                               modelIdentity: "weights-sha256:" + model.package.weights.sha256)
    }

    /// A service over any engine (tests use a stand-in encoder). `modelIdentity` is stamped into
    /// saved sessions, so that another model's are skipped at restore (nil: the labels and sizes).
    /// Throws `StateDirectoryLock.InUse` when another process holds the state directory.
    public init<M: Encodable>(engine: ConversationEngine, description: M, options: Options,
                              logger: JSONLogger = JSONLogger(), modelIdentity: String? = nil) throws {
        self.options = options
        self.engine = engine
        self.logger = logger
        directoryLock = try options.stateDirectory.flatMap { directory throws(StateDirectoryLock.InUse) in
            try StateDirectoryLock.acquire(directory)
        }
        if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *), options.handlerQueues > 0 {
            handlerExecutorStorage = HandlerTaskExecutor(queueCount: options.handlerQueues, label: "emotion.handler")
        } else {
            handlerExecutorStorage = nil
        }
        let model = SnapshotModel(engine: engine, identity: modelIdentity)
        let snapshots = options.stateDirectory.map { SessionSnapshotStore(directory: $0, model: model) }
        self.snapshots = snapshots
        let journal = options.journal ? options.stateDirectory.map {
            TurnJournal(directory: $0, model: model, commitInterval: options.journalCommitInterval)
        } : nil
        self.journal = journal
        let flag = readiness
        let problems: @Sendable () -> [String] = { [snapshots?.problem, journal?.problem].compactMap { $0 } }
        var delete: (@Sendable (SessionKey) async -> Bool)?
        if let snapshots {
            // Answered once the journal (if any) holds the deletion, so that a crash right after
            // the 204 cannot bring the session back from the journal.
            delete = { key in
                await withCheckedContinuation { continuation in
                    let found = snapshots.delete(key, in: engine) { failure in
                        if let failure { logger.error("journaling a deletion failed", ["error": "\(failure)"]) }
                        continuation.resume(returning: true)
                    }
                    if !found { continuation.resume(returning: false) }
                }
            }
        }
        api = EmotionAPI(engine: engine, modelDescription: description, apiKeys: options.apiKeys, logger: logger,
                         readiness: { flag.isSet }, problems: problems, deleteSession: delete)
        api.metrics.gauge("emotion_log_lines_dropped_total",
                          help: "Log lines dropped because the log output was not keeping up.") { Double(logger.droppedLines) }
        api.metrics.gauge("emotion_log_write_failures_total",
                          help: "Log lines whose write failed (closed or full output).") { Double(logger.writeFailures) }
        if let journal {
            api.metrics.gauge("emotion_journal_commits_total", help: "Journal syncs (each covers one or more turns).") {
                Double(journal.commitCount)
            }
            api.metrics.gauge("emotion_journal_failures_total",
                              help: "Journal writes or syncs that failed (their turns answered 503 storage_unavailable).") {
                Double(journal.failedCommits)
            }
        }
        if let snapshots {
            api.metrics.gauge("emotion_snapshot_failures_total",
                              help: "Snapshot passes or deletions that failed to write or remove a session file.") {
                Double(snapshots.failedPasses)
            }
            api.metrics.gauge("emotion_snapshot_files_skipped_total",
                              help: "Session files skipped at restore (unreadable, another model's, invalid).") {
                Double(snapshots.skippedFiles)
            }
        }
    }

    public var isReady: Bool { readiness.isSet }

    /// Connections the HTTP server holds open (0 before `start`).
    public var openConnectionCount: Int { server?.openConnectionCount ?? 0 }

    private func setReady(_ value: Bool) { readiness.set(value) }

    /// Restores saved sessions, starts listening and the snapshot timer; returns the bound address.
    @discardableResult
    public func start() throws -> HTTPRemoteAddress {
        if let snapshots {
            let (sessions, problems) = snapshots.read()
            engine.restore(sessions)
            for p in problems { logger.warning("session file skipped", ["problem": p]) }
            if let problem = snapshots.problem { logger.error("state directory unusable; serving without saving", ["problem": problem]) }
            logger.info("sessions restored", ["count": sessions.count, "state_dir": snapshots.directory.path])
        }
        if let journal {
            let (records, skipped) = TurnJournal.read(directory: journal.directory, model: journal.model)
            let (stored, problems) = engine.replay(records, model: journal.model)
            for p in skipped + problems { logger.warning("journal record skipped", ["problem": p]) }
            logger.info("journal replayed", ["records": records.count, "turns_stored": stored])
            engine.attach(journal: journal)
            if let problem = journal.problem { logger.error("journal unusable; turns are refused", ["problem": problem]) }
            // The replayed turns go into the snapshots, then the old journal files go.
            writeSnapshot()
        }
        let api = self.api, logger = self.logger, replica = options.replicaId
        let body: @Sendable (HTTPRequest, @escaping AsyncHTTPHandler.ConnectionCheck) async throws -> HTTPResponse = { request, isOpen in
            let apiRequest = APIRequest(method: request.method.rawValue, path: request.target.path,
                                        headers: request.headers.map { ($0.name, $0.value) },
                                        body: request.body, requestId: request.requestID, isConnectionOpen: isOpen)
            let answer = await api.handle(apiRequest)
            var headers = HTTPHeaders(answer.headers.map { ($0.name, $0.value) })
            if let replica { headers.add(name: "X-Replica-Id", value: replica) }
            return HTTPResponse(status: HTTPStatus(code: answer.status), headers: headers, body: [UInt8](answer.body))
        }
        var handler = AsyncHTTPHandler(connectionAware: body)
        if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *), handlerExecutorStorage != nil {
            handler = AsyncHTTPHandler(executor: handlerExecutor, connectionAware: body)
        }
        let server = HTTPServer(
            configuration: options.http,
            handler: LivenessHandler(next: AdmissionHandler(next: handler, api: api, replicaId: replica),
                                     metrics: api.metrics, replicaId: replica),
            onRequestComplete: { log in
                var fields: [String: Any] = [
                    "request_id": log.requestID, "status": log.status, "duration_ms": Double(log.duration.components.attoseconds) / 1e15 + Double(log.duration.components.seconds) * 1000,
                    "bytes_in": log.requestBodyBytes, "bytes_out": log.responseBodyBytes, "remote": log.remoteAddress.description,
                ]
                if let method = log.method { fields["method"] = MethodLabel(method).rawValue }
                if let path = log.path { fields["route"] = EmotionAPI.routeTemplate(method: log.method ?? "", path: path) }
                if let code = log.errorCode { fields["error_code"] = code }
                if let replica { fields["replica"] = replica }
                logger.info("request", fields)
            },
            onDiagnostic: { diagnostic in logger.warning("http", ["kind": diagnostic.kind.rawValue, "detail": diagnostic.message]) })
        let address = try server.start()
        self.server = server
        api.metrics.gauge("emotion_http_body_bytes_buffered",
                          help: "Request-body bytes held in memory now (reserved from the body budget).") { [weak server] in
            Double(server?.bodyBudget.inUse ?? 0)
        }
        api.metrics.gauge("emotion_http_body_budget_refusals_total",
                          help: "Requests answered 503 body_budget_exhausted before their body was read.") { [weak server] in
            Double(server?.bodyBudget.refusedRequests ?? 0)
        }
        api.metrics.gauge("emotion_http_connections_evicted_total",
                          help: "Connections still sending (or idle before) a request head, closed at the connection limit to make room.") { [weak server] in
            Double(server?.evictedConnectionCount ?? 0)
        }
        if snapshots != nil, options.snapshotInterval > 0 {
            let t = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
            t.schedule(deadline: .now() + options.snapshotInterval, repeating: options.snapshotInterval)
            t.setEventHandler { [weak self] in self?.writeSnapshot() }
            t.resume()
            timer = t
        }
        setReady(true)
        logger.info("listening", ["address": address.description, "inference_threads": Parallel.width,
                                  "cpu_quota": CPUQuota.current.cpus ?? NSNull()])
        return address
    }

    /// One snapshot pass (the timer's); a failure is logged and counted, never fatal. False when
    /// the pass failed.
    @discardableResult
    func writeSnapshot() -> Bool {
        writeSnapshotCounting() != nil
    }

    /// A snapshot pass: the journal (if any) moves to a new file, having made everything before
    /// durable and stored; the sessions are written; on success the journal files before are
    /// removed. Returns the files written, nil when the pass failed. Blocks: never call it on
    /// a Swift concurrency thread.
    private func writeSnapshotCounting() -> Int? {
        guard let snapshots else { return 0 }
        passLock.lock(); defer { passLock.unlock() }
        let closed = journal?.rotate()
        do {
            let n = try snapshots.write(engine)
            if let journal, let closed { journal.discard(through: closed) }
            return n
        } catch {
            logger.error("snapshot failed", ["error": "\(error)"])
            return nil
        }
    }

    /// The drain: /readyz turns 503 and the listener closes; requests in flight (and the turns
    /// they wait for) finish within the drain timeout; sessions are written. True when nothing
    /// was cut short and the state was saved.
    public func shutdown() async -> Bool {
        setReady(false)
        logger.info("draining", ["timeout_s": options.drainTimeout])
        let deadline = Date().addingTimeInterval(options.drainTimeout)
        if let server {
            await server.shutdown(gracePeriod: .milliseconds(max(100, Int(deadline.timeIntervalSinceNow * 1000))))
        }
        let engine = self.engine
        let drained = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: engine.drain(deadline: deadline)) }
        }
        timer?.cancel()
        var saved = true
        if let snapshots {
            let written = await withCheckedContinuation { continuation in
                DispatchQueue.global().async { continuation.resume(returning: self.writeSnapshotCounting()) }
            }
            if let n = written {
                logger.info("sessions written", ["changed": n, "sessions": engine.statistics.sessions,
                                                 "state_dir": snapshots.directory.path])
            } else {
                saved = false
                logger.error("writing sessions failed", ["problem": snapshots.problem ?? "unknown"])
            }
        }
        directoryLock?.release()
        await logger.flush()
        return drained && saved
    }
}
