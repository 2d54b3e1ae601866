import Conversation
import DialogicalEmotionDecoder
import Foundation
import GatedXLSTM

/// The service's routes, independent of the HTTP transport: parses and validates requests,
/// calls the conversation engine, renders JSON answers and errors, checks API keys, and feeds
/// metrics. Internal failures are logged with the request id and answered 500 `internal_error`
/// without their detail.
public final class EmotionAPI: Sendable {
    public let engine: ConversationEngine
    public let metrics: Metrics
    let modelDescription: Data
    let apiKeys: APIKeys
    let readiness: @Sendable () -> Bool
    let problems: @Sendable () -> [String]
    let deleteSession: @Sendable (SessionKey) async -> Bool
    let labels: [String]
    let logger: JSONLogger

    /// - Parameters:
    ///   - modelDescription: any Encodable served as `GET /v1/model`.
    ///   - readiness: false while loading or draining (`/readyz` answers 503).
    ///   - logger: where the detail of internal errors goes.
    ///   - problems: what is wrong while serving goes on (`/readyz` answers 200 `degraded`).
    ///   - deleteSession: removes a session, answering once the deletion is durable (default:
    ///     from the engine only; a host with a state directory also removes its file at once and
    ///     waits for the journal).
    public init<M: Encodable>(engine: ConversationEngine, modelDescription: M, apiKeys: APIKeys = .none,
                              metrics: Metrics = Metrics(), logger: JSONLogger = JSONLogger(),
                              readiness: @escaping @Sendable () -> Bool,
                              problems: @escaping @Sendable () -> [String] = { [] },
                              deleteSession: (@Sendable (SessionKey) async -> Bool)? = nil) {
        self.engine = engine
        self.problems = problems
        self.deleteSession = deleteSession ?? { engine.deleteSession($0.id, namespace: $0.namespace) }
        self.metrics = metrics
        self.logger = logger
        self.modelDescription = (try? APIResponse.json(modelDescription).body) ?? Data("{}".utf8)
        self.apiKeys = apiKeys
        self.readiness = readiness
        labels = engine.classifier.labels
        let counters: [(String, String, @Sendable (ConversationEngine) -> Double)] = [
            ("emotion_sessions", "Sessions held in memory.", { Double($0.statistics.sessions) }),
            ("emotion_queue_depth", "Turns accepted and not yet answered.", { Double($0.statistics.waiting) }),
            ("emotion_inference_in_flight", "Turns being processed right now.", { Double($0.statistics.running) }),
            ("emotion_rejected_turns_total", "Turns refused because the server was over capacity.", { Double($0.statistics.rejected) }),
            ("emotion_expired_sessions_total", "Sessions dropped after their idle TTL.", { Double($0.statistics.expired) }),
            ("emotion_evicted_sessions_total",
             "Idle sessions evicted (oldest last activity first) to make room in a full session table or memory budget.",
             { Double($0.counters.evictedSessions) }),
            ("emotion_tenant_quota_refusals_total",
             "New sessions refused (429 tenant_session_quota) because their tenant held its quota.", { Double($0.counters.quotaRefusals) }),
            ("emotion_rejected_analyses_total",
             "Dialogue analyses refused (503 analysis_queue_full) because running analyses held the capacity.",
             { Double($0.counters.rejectedAnalyses) }),
            ("emotion_abandoned_analyses_total", "Dialogue analyses stopped because their client was gone.",
             { Double($0.counters.abandonedAnalyses) }),
            ("emotion_analysis_timeouts_total", "Dialogue analyses stopped at --analyze-timeout (503 analysis_timeout).",
             { Double($0.counters.timedOutAnalyses) }),
            ("emotion_analysis_turns_skipped_total", "Turns of stopped analyses (client gone, timeout) that were never processed.",
             { Double($0.counters.skippedAnalysisTurns) }),
            ("emotion_analysis_turns_in_flight", "Turns of the dialogue analyses accepted and not yet answered.",
             { Double($0.counters.analysisTurnsInFlight) }),
            ("emotion_prepared_contexts_total", "Next turns' context stacks run ahead on an idle worker between turns.",
             { Double($0.counters.preparedContexts) }),
            ("emotion_prepared_contexts_used_total", "Turns that found their context stacks run ahead (they waited for 4 of 12).",
             { Double($0.counters.preparedContextsUsed) }),
        ]
        for (name, help, read) in counters { metrics.gauge(name, help: help) { read(engine) } }
    }

    /// A route template for logs and metrics (no ids).
    public static func routeTemplate(method: String, path: String) -> String {
        switch Route(path: path) {
        case .turns: return "/v1/sessions/{session_id}/turns"
        case .session: return "/v1/sessions/{session_id}"
        case .analyze: return "/v1/dialogues/analyze"
        case .model: return "/v1/model"
        case .health: return "/healthz"
        case .ready: return "/readyz"
        case .metrics: return "/metrics"
        case .unknown: return "unmatched"
        }
    }

    enum Route: Equatable {
        case turns(String), session(String), analyze, model, health, ready, metrics, unknown

        init(path: String) {
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            switch parts.count {
            case 2 where parts[1] == "healthz": self = .health
            case 2 where parts[1] == "readyz": self = .ready
            case 2 where parts[1] == "metrics": self = .metrics
            case 3 where parts[1] == "v1" && parts[2] == "model": self = .model
            case 4 where parts[1] == "v1" && parts[2] == "dialogues" && parts[3] == "analyze": self = .analyze
            case 4 where parts[1] == "v1" && parts[2] == "sessions": self = .session(parts[3])
            case 5 where parts[1] == "v1" && parts[2] == "sessions" && parts[4] == "turns": self = .turns(parts[3])
            default: self = .unknown
            }
        }
    }

    /// Session ids: 1 to `maxBytes` bytes of `A-Z a-z 0-9 - _ .`, exactly as sent: characters no
    /// HTTP client percent-encodes in a path. Any `%` is refused, so that a session has one
    /// spelling (`call%2D42` is not a second name of `call-42`, which a balancer hashing the raw
    /// path would send to another replica); so are `:` and `@`, which some clients encode
    /// (`agent%40x`) and others do not.
    static func sessionId(_ raw: String, maxBytes: Int) throws(APIError) -> String {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        guard !raw.isEmpty, raw.utf8.count <= maxBytes, raw.utf8.allSatisfy(allowed.contains) else {
            throw APIError(.malformedRequest, "invalid_session_id",
                           "session ids are 1-\(maxBytes) bytes of A-Z, a-z, 0-9, '-', '_', '.', not percent-encoded")
        }
        return raw
    }

    public func handle(_ request: APIRequest) async -> APIResponse {
        let start = DispatchTime.now()
        let route = Route(path: request.path)
        var response: APIResponse
        do {
            response = try await dispatch(route, request)
        } catch where error.status == 500 {
            logger.error("internal error", ["request_id": request.requestId, "detail": error.detail ?? error.message])
            response = .error(error.redacted(requestId: request.requestId))
        } catch {
            response = .error(error)
        }
        response.headers.append(("X-Request-Id", request.requestId))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        metrics.recordRequest(route: Self.routeTemplate(method: request.method, path: request.path),
                              method: MethodLabel(request.method), status: response.status, seconds: seconds)
        return response
    }

    private func allow(_ request: APIRequest, _ methods: [String]) throws(APIError) {
        guard methods.contains(request.method) || (request.method == "HEAD" && methods.contains("GET")) else {
            throw .methodNotAllowed(request.method, allowed: methods)
        }
    }

    private func dispatch(_ route: Route, _ request: APIRequest) async throws(APIError) -> APIResponse {
        switch route {
        case .health:
            try allow(request, ["GET"])
            return try .json(APIModels.Status(status: "ok"))
        case .ready:
            try allow(request, ["GET"])
            let ready = readiness() && !engine.isDraining
            guard ready else { return try .json(APIModels.Status(status: "not_ready"), status: 503) }
            let problems = self.problems()
            // Degraded still serves (turns may be refused with storage_unavailable): 200, so
            // that one replica's full disk does not take it out of the balancer silently.
            return try .json(problems.isEmpty ? APIModels.Status(status: "ready")
                                              : APIModels.Status(status: "degraded", problems: problems))
        case .metrics:
            try allow(request, ["GET"])
            return .text(metrics.exposition(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case .unknown:
            throw .notFound(request.path)
        default:
            break
        }
        let key = try preflight(route, request)
        switch route {
        case .model:
            return APIResponse(status: 200, headers: [("Content-Type", "application/json")], body: modelDescription)
        case .turns:
            guard let key else { throw .internalError("no session key for a turn") }
            let turn = try Self.parseTurn(request.body)
            let outcome: TurnOutcome
            do {
                outcome = try await engine.submit(sessionId: key.id, namespace: key.namespace, turn: turn)
            } catch {
                throw APIError(error)
            }
            recordStages(outcome.timings)
            return try .json(turnAnswer(outcome))
        case .session:
            guard let key else { throw .internalError("no session key for a session request") }
            // Another tenant's session is answered exactly as a missing one.
            if request.method == "DELETE" {
                guard await deleteSession(key) else {
                    throw APIError(ConversationError.sessionNotFound(key.id))
                }
                return APIResponse(status: 204)
            }
            guard let state = engine.session(key.id, namespace: key.namespace) else {
                throw APIError(ConversationError.sessionNotFound(key.id))
            }
            return try .json(session(state))
        case .analyze:
            let (turns, repeatTwice) = try Self.parseDialogue(request.body)
            let analysis: DialogueAnalysis
            do {
                let open = request.isConnectionOpen
                analysis = try await engine.analyze(turns, repeatTwice: repeatTwice, isCancelled: { !open() })
            } catch {
                throw APIError(error)
            }
            return try .json(self.analysis(turns, analysis))
        default:
            throw .notFound(request.path)
        }
    }

    /// The checks of an authenticated route that need no body, in the order answered: API key
    /// (401), media type (415), method (405), session id (400), tenant (403/400). Returns the
    /// session the request acts on (nil for routes without one).
    private func preflight(_ route: Route, _ request: APIRequest) throws(APIError) -> SessionKey? {
        let caller = try apiKeys.tenant(for: request.header("Authorization"))
        if request.method == "POST", let type = request.header("Content-Type"),
           type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() != "application/json" {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "the body must be application/json, not '\(type)'")
        }
        switch route {
        case .model:
            try allow(request, ["GET"])
            return nil
        case .analyze:
            try allow(request, ["POST"])
            return nil
        case .turns(let raw), .session(let raw):
            if case .turns = route { try allow(request, ["POST"]) } else { try allow(request, ["GET", "DELETE"]) }
            let id = try Self.sessionId(raw, maxBytes: engine.configuration.limits.sessionIdBytes)
            return SessionKey(namespace: try namespace(of: caller, request), id: id)
        case .health, .ready, .metrics, .unknown:
            return nil
        }
    }

    /// Header-time admission of a request that carries a body (`HTTPHandler.admit`): everything
    /// `handle` would refuse without reading the body — an unknown route, a wrong method, media
    /// type, key, session id or tenant, and for new work a draining or full server — so that a
    /// refused client never has its body buffered (nor gets `100 Continue`). Refusals are
    /// counted in the request metrics like any answer.
    public func admit(method: String, path: String, headers: [(name: String, value: String)]) -> APIError? {
        let request = APIRequest(method: method, path: path, headers: headers)
        let route = Route(path: path)
        var refusal: APIError?
        do throws(APIError) {
            switch route {
            case .health, .ready, .metrics: try allow(request, ["GET"])
            case .unknown: throw APIError.notFound(path)
            case .turns, .analyze:
                let key = try preflight(route, request)
                if let busy = engine.admissionRefusal(session: key) { throw APIError(busy) }
            case .model, .session:
                _ = try preflight(route, request)
            }
        } catch {
            refusal = error
        }
        if let refusal {
            metrics.recordRequest(route: Self.routeTemplate(method: method, path: path), method: MethodLabel(method),
                                  status: refusal.status, seconds: 0)
        }
        return refusal
    }

    /// The namespace a session request acts in: the caller's tenant, or with an admin key the
    /// tenant named by `X-Tenant`. A non-admin naming another tenant is refused (403); without
    /// API keys the header is ignored (one namespace).
    func namespace(of caller: Tenant, _ request: APIRequest) throws(APIError) -> String {
        guard apiKeys.isEnabled, let asked = request.header("X-Tenant"), asked != caller.name else { return caller.name }
        guard caller.isAdmin else {
            throw APIError(.forbidden, "tenant_forbidden", "only an admin key may act for another tenant")
        }
        guard Tenant.isValidName(asked) else {
            throw APIError(.malformedRequest, "invalid_tenant", "X-Tenant must be 1-64 of A-Z, a-z, 0-9, '.', '_', '-'")
        }
        return asked
    }

    private func recordStages(_ t: TurnTimings) {
        for (stage, ms) in [("queue", t.queue), ("audio", t.audio), ("text", t.text), ("classify", t.classify),
                            ("ded", t.ded), ("total", t.total)] {
            metrics.recordStage(stage, seconds: ms / 1000)
        }
    }

    // MARK: - Parsing

    /// A turn's body (`TurnRequest`, strict JSON).
    static func parseTurn(_ body: Data) throws(APIError) -> TurnInput {
        try StrictJSON.decode(TurnRequest.self, from: body).turn
    }

    /// Blank as openapi.yaml's `\S` pattern reads it: only Unicode white space, line ends and the
    /// byte-order mark (which JSON Schema's `\s` counts as space and Foundation does not).
    static func isBlank(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { CharacterSet.whitespacesAndNewlines.contains($0) || $0 == "\u{FEFF}" }
    }

    /// A dialogue's body (`DialogueRequest`, strict JSON): its turns and `repeat_twice`.
    static func parseDialogue(_ body: Data) throws(APIError) -> ([TurnInput], Bool) {
        let request = try StrictJSON.decode(DialogueRequest.self, from: body)
        return (request.turns, request.repeatTwice)
    }

    // MARK: - Rendering

    func named(_ values: [Float]) -> [String: Float] {
        Dictionary(uniqueKeysWithValues: zip(labels, values))
    }

    static func gates(_ values: [Float]) -> [String: Float] {
        Dictionary(uniqueKeysWithValues: zip(StreamLayout.names, values))
    }

    func turnAnswer(_ o: TurnOutcome) -> APIModels.TurnAnswer {
        let revised = Set(o.revised)
        let t = o.timings
        return APIModels.TurnAnswer(
            sessionId: o.sessionId,
            turn: APIModels.Turn(index: o.turn.index, turnId: o.turn.turnId, speaker: o.turn.speaker,
                                 emotion: labels[o.turn.label], probabilities: named(o.turn.probabilities),
                                 gates: Self.gates(o.turn.gates), clientTimestamp: o.turn.clientTimestamp),
            decoded: o.decoded.enumerated().map { APIModels.DecodedTurn(index: $0.offset, emotion: labels[$0.element],
                                                                         revised: revised.contains($0.offset)) },
            timingsMs: APIModels.Timings(queue: t.queue, audio: t.audio, text: t.text, classify: t.classify, ded: t.ded,
                                         total: t.total),
            replayed: o.replayed)
    }

    func session(_ s: SessionState) -> APIModels.Session {
        let turns = s.turns.map { t in
            APIModels.SessionTurn(index: t.index, turnId: t.turnId, speaker: t.speaker, transcript: t.transcript,
                                  hasAudio: t.audioEmbedding != nil, emotion: labels[t.label],
                                  probabilities: named(t.probabilities), gates: Self.gates(t.gates),
                                  decodedEmotion: t.index < s.decoded.count ? labels[s.decoded[t.index]] : labels[t.label],
                                  clientTimestamp: t.clientTimestamp, receivedAt: t.receivedAt)
        }
        var order: [String] = []
        var bySpeaker: [String: [APIModels.SessionTurn]] = [:]
        for t in turns {
            if bySpeaker[t.speaker] == nil { order.append(t.speaker) }
            bySpeaker[t.speaker, default: []].append(t)
        }
        let speakers = order.map { name in
            let own = bySpeaker[name] ?? []
            return APIModels.SpeakerSummary(speaker: name, turns: own.map(\.index), emotions: own.map(\.emotion),
                                            decodedEmotions: own.map(\.decodedEmotion))
        }
        return APIModels.Session(sessionId: s.id, createdAt: s.createdAt, lastActivity: s.lastActivity, turns: turns,
                                 speakers: speakers)
    }

    func analysis(_ turns: [TurnInput], _ a: DialogueAnalysis) -> APIModels.Analysis {
        let items = zip(turns, a.classifications).enumerated().map { i, pair in
            let (turn, c) = pair
            let label = c.probabilities.indices.max { c.probabilities[$0] < c.probabilities[$1] } ?? 0
            return APIModels.AnalyzedTurn(index: i, speaker: turn.speaker, emotion: labels[label],
                                          probabilities: named(c.probabilities), gates: Self.gates(c.gates),
                                          decodedEmotion: labels[a.decoded[i]])
        }
        return APIModels.Analysis(turns: items, decoded: a.decoded.map { labels[$0] }, timingsMs: ["total": a.milliseconds])
    }
}
