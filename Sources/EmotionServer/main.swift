import ArgumentParser
import Conversation
import EmotionService
import Foundation
import HTTPServer
import Numerics

/// `emotion-server`: the HTTP service on a model package. Every option also reads an
/// environment variable (`EMOTION_<OPTION>`, e.g. EMOTION_PORT); flags win over the environment.
@main
struct EmotionServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emotion-server",
        abstract: "Conversational emotion recognition over HTTP (GatedxLSTM + DED).",
        discussion: "Every option can also be set with an environment variable EMOTION_<NAME> (upper case, '-' as '_'), e.g. EMOTION_PORT=9000.")

    @Option(help: "Address to listen on (EMOTION_HOST).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (EMOTION_PORT).") var port: Int?
    @Option(help: "Model package directory (EMOTION_MODEL).") var model: String?
    @Option(help: "Directory where sessions are written on SIGTERM and periodically, and read at start (EMOTION_STATE_DIR).") var stateDir: String?
    @Option(help: "Seconds between session snapshots; 0 writes only at shutdown (EMOTION_SNAPSHOT_INTERVAL).") var snapshotInterval: Double?
    @Flag(help: "Journal every turn in --state-dir and answer it only once the record is on disk, so a crash (kill -9) loses no turn answered 200 (EMOTION_JOURNAL=1).") var journal = false
    @Option(help: "Milliseconds the journal gathers turns before one fdatasync; 0 syncs at once, before each answer (EMOTION_JOURNAL_COMMIT_MS).") var journalCommitMs: Double?
    @Option(help: "File with API keys, one entry per line: KEY, TENANT:KEY or admin:KEY (EMOTION_API_KEYS_FILE). EMOTION_API_KEYS may hold comma-separated entries. Given but missing, unreadable or empty: the server does not start (exit 2).") var apiKeysFile: String?
    @Option(help: "TLS certificate chain (PEM) (EMOTION_TLS_CERT).") var tlsCert: String?
    @Option(help: "TLS private key (PEM) (EMOTION_TLS_KEY).") var tlsKey: String?
    @Option(help: "Maximum sessions held; when full, expired then the longest-idle sessions are evicted (EMOTION_MAX_SESSIONS).") var maxSessions: Int?
    @Option(help: "Sessions one tenant (API key namespace) may hold, else 429 tenant_session_quota; 0: no quota. Default: a quarter of --max-sessions with API keys, no quota without (EMOTION_MAX_SESSIONS_PER_TENANT).") var maxSessionsPerTenant: Int?
    @Option(help: "Seconds a session must have been idle before a full table may evict it (EMOTION_EVICTION_MIN_IDLE).") var evictionMinIdle: Double?
    @Option(help: "Bytes all sessions together may hold (strings, embeddings, per-turn structure); a turn beyond first evicts idle sessions, else 503 store_full (EMOTION_MAX_STORED_BYTES).") var maxStoredBytes: Int?
    @Option(help: "Seconds a session may stay idle (EMOTION_SESSION_TTL).") var sessionTtl: Double?
    @Option(help: "Turns one session may hold (EMOTION_MAX_TURNS_PER_SESSION).") var maxTurnsPerSession: Int?
    @Option(help: "Turns one /v1/dialogues/analyze request may hold, else 422 dialogue_too_long (EMOTION_MAX_DIALOGUE_TURNS).") var maxDialogueTurns: Int?
    @Option(help: "Seconds of audio one analysed dialogue may hold, from the clips' headers, else 422 dialogue_audio_too_long (EMOTION_MAX_DIALOGUE_AUDIO_SECONDS).") var maxDialogueAudioSeconds: Double?
    @Option(help: "Turns of all running analyses before new ones get 503 analysis_queue_full (EMOTION_ANALYSIS_TURN_CAPACITY).") var analysisTurnCapacity: Int?
    @Option(help: "Audio seconds of all running analyses before new ones get 503 analysis_queue_full (EMOTION_ANALYSIS_AUDIO_SECONDS_CAPACITY).") var analysisAudioSecondsCapacity: Double?
    @Option(help: "Seconds an analysis may take before its remaining turns are skipped and it is answered 503 analysis_timeout (EMOTION_ANALYZE_TIMEOUT).") var analyzeTimeout: Double?
    @Option(help: "UTF-8 bytes of the strings one session or analysed dialogue may hold (EMOTION_MAX_SESSION_BYTES).") var maxSessionBytes: Int?
    @Option(help: "Longest session id in bytes (EMOTION_MAX_SESSION_ID_BYTES).") var maxSessionIdBytes: Int?
    @Option(help: "Longest speaker in UTF-8 bytes (EMOTION_MAX_SPEAKER_BYTES).") var maxSpeakerBytes: Int?
    @Option(help: "Longest turn_id in UTF-8 bytes (EMOTION_MAX_TURN_ID_BYTES).") var maxTurnIdBytes: Int?
    @Option(help: "Longest transcript in UTF-8 bytes (EMOTION_MAX_TRANSCRIPT_BYTES).") var maxTranscriptBytes: Int?
    @Option(help: "Longest client timestamp in UTF-8 bytes (EMOTION_MAX_TIMESTAMP_BYTES).") var maxTimestampBytes: Int?
    @Option(help: "Turns waiting for inference before 503 (EMOTION_QUEUE_CAPACITY).") var queueCapacity: Int?
    @Option(help: "Turns of different sessions classified in one batch (EMOTION_MAX_BATCH).") var maxBatch: Int?
    @Flag(help: "Do not run a session's next-turn context stacks (8 of 12) on the idle worker between turns (EMOTION_NO_PREPARE_CONTEXT=1); answers are the same either way.") var noPrepareContext = false
    @Option(help: "How packed weights are held: f32; f16 (half the memory, float32 arithmetic; lossless for weights stored f16); bf16 (half the memory, AVX512-BF16 dot products where the CPU has them, probabilities within about 3e-2); default: the package's weight_precision, else f32 (EMOTION_WEIGHT_PRECISION).") var weightPrecision: String?
    @Option(help: "Largest request body in bytes (EMOTION_MAX_BODY_BYTES).") var maxBodyBytes: Int?
    @Option(help: "Request-body bytes all connections together may buffer; a request that does not fit is answered 503 body_budget_exhausted before its body is read (EMOTION_MAX_BUFFERED_BODY_BYTES).") var maxBufferedBodyBytes: Int?
    @Option(help: "Longest audio clip in seconds (EMOTION_MAX_AUDIO_SECONDS).") var maxAudioSeconds: Double?
    @Option(help: "Maximum open connections (EMOTION_MAX_CONNECTIONS).") var maxConnections: Int?
    @Option(help: "Largest request head (request line + headers) in bytes (EMOTION_MAX_HEADER_BYTES).") var maxHeaderBytes: Int?
    @Option(help: "Most header fields in a request (EMOTION_MAX_HEADER_COUNT).") var maxHeaderCount: Int?
    @Option(help: "Listen backlog (EMOTION_BACKLOG).") var backlog: Int?
    @Option(help: "Seconds to receive a request's headers (EMOTION_HEAD_TIMEOUT).") var headTimeout: Double?
    @Option(help: "Seconds to receive a request's body (EMOTION_BODY_TIMEOUT).") var bodyTimeout: Double?
    @Option(help: "Seconds an idle keep-alive connection stays open (EMOTION_IDLE_TIMEOUT).") var idleTimeout: Double?
    @Option(help: "Seconds the SIGTERM drain may take (EMOTION_DRAIN_TIMEOUT).") var drainTimeout: Double?
    @Option(help: "Name of this replica, echoed as X-Replica-Id (EMOTION_REPLICA_ID).") var replicaId: String?

    func env(_ name: String) -> String? {
        let v = ProcessInfo.processInfo.environment["EMOTION_" + name]
        return (v?.isEmpty ?? true) ? nil : v
    }

    func value<T: LosslessStringConvertible>(_ flag: T?, _ name: String, _ fallback: T) throws -> T {
        if let flag { return flag }
        guard let raw = env(name) else { return fallback }
        guard let parsed = T(raw) else { throw ValidationError("EMOTION_\(name)=\(raw) is not a valid value") }
        return parsed
    }

    func run() async throws {
        // A closed stdout/stderr (or any pipe) must fail a write with EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        let logger = JSONLogger()
        var options = ServiceHost.Options()
        options.http.host = try value(host, "HOST", "127.0.0.1")
        options.http.port = try value(port, "PORT", 8080)
        options.http.limits.maxBodyBytes = try value(maxBodyBytes, "MAX_BODY_BYTES", 16 << 20)
        options.http.limits.maxBufferedBodyBytes = try value(maxBufferedBodyBytes, "MAX_BUFFERED_BODY_BYTES", 64 << 20)
        options.http.limits.maxConnections = try value(maxConnections, "MAX_CONNECTIONS", options.http.limits.maxConnections)
        options.http.limits.maxHeaderBytes = try value(maxHeaderBytes, "MAX_HEADER_BYTES", options.http.limits.maxHeaderBytes)
        options.http.limits.maxHeaderCount = try value(maxHeaderCount, "MAX_HEADER_COUNT", options.http.limits.maxHeaderCount)
        options.http.backlog = max(128, try value(backlog, "BACKLOG", options.http.backlog))
        options.http.limits.headTimeout = .milliseconds(Int(1000 * (try value(headTimeout, "HEAD_TIMEOUT", 10.0))))
        options.http.limits.bodyTimeout = .milliseconds(Int(1000 * (try value(bodyTimeout, "BODY_TIMEOUT", 60.0))))
        options.http.limits.idleTimeout = .milliseconds(Int(1000 * (try value(idleTimeout, "IDLE_TIMEOUT", 65.0))))
        options.http.limits.lengthRequiredMethods = ["POST", "PUT", "PATCH"]
        let cert = tlsCert ?? env("TLS_CERT"), key = tlsKey ?? env("TLS_KEY")
        switch (cert, key) {
        case let (cert?, key?): options.http.tls = TLSConfiguration(certificateChainPath: cert, privateKeyPath: key)
        case (nil, nil): break
        default: throw ValidationError("TLS needs both --tls-cert and --tls-key")
        }
        options.conversation.maxSessions = try value(maxSessions, "MAX_SESSIONS", options.conversation.maxSessions)
        options.conversation.sessionTTL = try value(sessionTtl, "SESSION_TTL", options.conversation.sessionTTL)
        options.conversation.maxTurnsPerSession = try value(maxTurnsPerSession, "MAX_TURNS_PER_SESSION",
                                                            options.conversation.maxTurnsPerSession)
        options.conversation.evictionMinimumIdle = try value(evictionMinIdle, "EVICTION_MIN_IDLE",
                                                             options.conversation.evictionMinimumIdle)
        options.conversation.maxStoredBytes = try value(maxStoredBytes, "MAX_STORED_BYTES", options.conversation.maxStoredBytes)
        options.conversation.maxDialogueTurns = try value(maxDialogueTurns, "MAX_DIALOGUE_TURNS", options.conversation.maxDialogueTurns)
        options.conversation.maxDialogueAudioSeconds = try value(maxDialogueAudioSeconds, "MAX_DIALOGUE_AUDIO_SECONDS",
                                                                 options.conversation.maxDialogueAudioSeconds)
        options.conversation.analysisTurnCapacity = try value(analysisTurnCapacity, "ANALYSIS_TURN_CAPACITY",
                                                              options.conversation.analysisTurnCapacity)
        options.conversation.analysisAudioSecondsCapacity = try value(analysisAudioSecondsCapacity, "ANALYSIS_AUDIO_SECONDS_CAPACITY",
                                                                      options.conversation.analysisAudioSecondsCapacity)
        options.conversation.analyzeTimeout = try value(analyzeTimeout, "ANALYZE_TIMEOUT", options.conversation.analyzeTimeout)
        for (name, seconds) in [("--eviction-min-idle", options.conversation.evictionMinimumIdle),
                                ("--max-dialogue-audio-seconds", options.conversation.maxDialogueAudioSeconds),
                                ("--analysis-audio-seconds-capacity", options.conversation.analysisAudioSecondsCapacity)]
            where !(seconds >= 0 && seconds.isFinite) {
            throw ValidationError("\(name) must be a non-negative number of seconds")
        }
        guard options.conversation.analyzeTimeout > 0 && options.conversation.analyzeTimeout.isFinite else {
            throw ValidationError("--analyze-timeout must be a positive number of seconds")
        }
        var limits = options.conversation.limits
        limits.sessionBytes = try value(maxSessionBytes, "MAX_SESSION_BYTES", limits.sessionBytes)
        limits.sessionIdBytes = try value(maxSessionIdBytes, "MAX_SESSION_ID_BYTES", limits.sessionIdBytes)
        limits.speakerBytes = try value(maxSpeakerBytes, "MAX_SPEAKER_BYTES", limits.speakerBytes)
        limits.turnIdBytes = try value(maxTurnIdBytes, "MAX_TURN_ID_BYTES", limits.turnIdBytes)
        limits.transcriptBytes = try value(maxTranscriptBytes, "MAX_TRANSCRIPT_BYTES", limits.transcriptBytes)
        limits.timestampBytes = try value(maxTimestampBytes, "MAX_TIMESTAMP_BYTES", limits.timestampBytes)
        options.conversation.limits = limits
        options.conversation.queueCapacity = try value(queueCapacity, "QUEUE_CAPACITY", options.conversation.queueCapacity)
        options.conversation.maxBatch = try value(maxBatch, "MAX_BATCH", options.conversation.maxBatch)
        options.conversation.prepareContext = !(noPrepareContext || ["1", "true", "yes", "on"].contains(env("NO_PREPARE_CONTEXT")?.lowercased() ?? ""))
        if let raw = weightPrecision ?? env("WEIGHT_PRECISION") {
            guard let precision = Linear.Precision(rawValue: raw) else {
                throw ValidationError("--weight-precision must be one of \(Linear.Precision.allCases.map(\.rawValue).joined(separator: ", ")), not '\(raw)'")
            }
            options.weightPrecision = precision
        }
        options.stateDirectory = (stateDir ?? env("STATE_DIR")).map { URL(fileURLWithPath: $0) }
        options.snapshotInterval = try value(snapshotInterval, "SNAPSHOT_INTERVAL", 30.0)
        options.journal = journal || ["1", "true", "yes", "on"].contains(env("JOURNAL")?.lowercased() ?? "")
        options.journalCommitInterval = max(0, try value(journalCommitMs, "JOURNAL_COMMIT_MS", 0.0)) / 1000
        if options.journal && options.stateDirectory == nil {
            throw ValidationError("--journal needs --state-dir (the journal lives there)")
        }
        options.drainTimeout = try value(drainTimeout, "DRAIN_TIMEOUT", 30.0)
        options.replicaId = replicaId ?? env("REPLICA_ID")
        // Auth fails closed: a key file or EMOTION_API_KEYS that is given (even empty) but yields
        // no usable key stops the server here, before the model is loaded.
        let environment = ProcessInfo.processInfo.environment
        do {
            options.apiKeys = try APIKeys.configured(file: apiKeysFile ?? environment["EMOTION_API_KEYS_FILE"],
                                                     inline: environment["EMOTION_API_KEYS"])
        } catch {
            logger.error("refusing to start: the configured API keys are unusable", ["problem": "\(error)"])
            await logger.flush()
            throw ExitCode(2)
        }
        // The quota is per API-key namespace; without keys every session is in one namespace.
        let quota = try value(maxSessionsPerTenant, "MAX_SESSIONS_PER_TENANT",
                              options.apiKeys.isEnabled ? max(1, options.conversation.maxSessions / 4) : 0)
        guard quota >= 0 else { throw ValidationError("--max-sessions-per-tenant must be 0 (no quota) or more") }
        options.conversation.maxSessionsPerTenant = quota > 0 ? quota : nil
        let modelPath = model ?? env("MODEL") ?? "Models/default"
        let maxAudio = try value(maxAudioSeconds, "MAX_AUDIO_SECONDS", 120.0)

        logger.info("configuration", [
            "host": options.http.host, "port": options.http.port, "model": modelPath,
            "state_dir": options.stateDirectory?.path ?? NSNull(), "snapshot_interval_s": options.snapshotInterval,
            "journal": options.journal, "journal_commit_ms": options.journalCommitInterval * 1000,
            "tls": options.http.tls != nil, "api_keys": options.apiKeys.isEnabled ? "\(options.apiKeys.tenants.count) tenants" : "off",
            "max_sessions": options.conversation.maxSessions, "session_ttl_s": options.conversation.sessionTTL,
            "queue_capacity": options.conversation.queueCapacity, "max_batch": options.conversation.maxBatch,
            "prepare_context": options.conversation.prepareContext,
            "max_turns_per_session": options.conversation.maxTurnsPerSession, "max_session_bytes": limits.sessionBytes,
            "max_sessions_per_tenant": options.conversation.maxSessionsPerTenant ?? NSNull(),
            "eviction_min_idle_s": options.conversation.evictionMinimumIdle,
            "max_stored_bytes": options.conversation.maxStoredBytes,
            "max_dialogue_turns": options.conversation.maxDialogueTurns,
            "max_dialogue_audio_s": options.conversation.maxDialogueAudioSeconds,
            "analysis_turn_capacity": options.conversation.analysisTurnCapacity,
            "analysis_audio_seconds_capacity": options.conversation.analysisAudioSecondsCapacity,
            "analyze_timeout_s": options.conversation.analyzeTimeout,
            "max_session_id_bytes": limits.sessionIdBytes, "max_speaker_bytes": limits.speakerBytes,
            "max_turn_id_bytes": limits.turnIdBytes, "max_transcript_bytes": limits.transcriptBytes,
            "max_timestamp_bytes": limits.timestampBytes,
            "max_body_bytes": options.http.limits.maxBodyBytes, "max_buffered_body_bytes": options.http.limits.maxBufferedBodyBytes, "max_audio_s": maxAudio,
            "max_connections": options.http.limits.maxConnections, "drain_timeout_s": options.drainTimeout,
            "max_header_bytes": options.http.limits.maxHeaderBytes, "max_header_count": options.http.limits.maxHeaderCount,
            "backlog": options.http.backlog,
            "replica_id": options.replicaId ?? NSNull(),
        ])

        let kernels = KernelPath.current
        logger.info("kernels", ["kernels": kernels.kernels, "cpu": kernels.cpu, "features": kernels.features.joined(separator: " "),
                                "openblas_core": kernels.openBLASCore])

        let host: ServiceHost
        do {
            host = try ServiceHost.load(model: URL(fileURLWithPath: modelPath), options: options, maxAudioSeconds: maxAudio,
                                        logger: logger)
        } catch let error as StateDirectoryLock.InUse {
            logger.error("refusing to start: the state directory is in use", ["problem": "\(error)"])
            await logger.flush()
            throw ExitCode(5)
        } catch {
            logger.error("cannot load the model", ["model": modelPath, "error": "\(error)"])
            await logger.flush()
            throw ExitCode(3)
        }
        do {
            try host.start()
        } catch {
            logger.error("cannot listen", ["error": "\(error)"])
            await logger.flush()
            throw ExitCode(4)
        }
        let stop = AsyncStream<Int32> { continuation in
            let observer = SignalObserver { continuation.yield($0) }
            continuation.onTermination = { _ in observer.cancel() }
        }
        for await signal in stop {
            logger.info("signal", ["signal": signal == SIGTERM ? "SIGTERM" : "SIGINT"])
            break
        }
        let clean = await host.shutdown()
        logger.info("stopped", ["clean": clean])
        await logger.flush()
        if !clean { throw ExitCode(1) }
    }
}
