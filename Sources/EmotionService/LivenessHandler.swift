import Foundation
import HTTPServer

/// Answers the liveness probe (`GET`/`HEAD /healthz`) at once on the connection's queue and
/// hands every other request to `next`. API requests run as Tasks on a few handler queues; a
/// request that keeps those busy (parsing a 16 MiB body, say) must not make the probe time out
/// and get a healthy process killed.
struct LivenessHandler: HTTPHandler {
    let next: any HTTPHandler
    let metrics: Metrics
    let replicaId: String?

    static let body = Array(#"{"status":"ok"}"#.utf8)

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        guard request.path == "/healthz", request.method == .get || request.method == .head else {
            next.handle(request, responder: responder)
            return
        }
        var headers: HTTPHeaders = ["Content-Type": "application/json", "X-Request-Id": request.requestID]
        if let replicaId { headers.add(name: "X-Replica-Id", value: replicaId) }
        metrics.recordRequest(route: "/healthz", method: MethodLabel(request.method.rawValue), status: 200, seconds: 0)
        responder.respond(HTTPResponse(status: .ok, headers: headers, body: Self.body))
    }

    func admit(_ head: HTTPRequestHead) -> HTTPError? { next.admit(head) }
}
