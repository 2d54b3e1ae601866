import Foundation
import HTTPServer

/// Puts the API's header-time admission (`EmotionAPI.admit`) in front of `next`: a request with
/// a body that the API would refuse from its head alone is answered before the body is read.
struct AdmissionHandler: HTTPHandler {
    let next: any HTTPHandler
    let api: EmotionAPI
    let replicaId: String?

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        next.handle(request, responder: responder)
    }

    func admit(_ head: HTTPRequestHead) -> HTTPError? {
        guard let refusal = api.admit(method: head.method.rawValue, path: head.path,
                                      headers: head.headers.map { ($0.name, $0.value) }) else { return next.admit(head) }
        var error = HTTPError(refusal)  // kind, code, message, Retry-After
        if let allow = refusal.allow { error.headers.add(name: "Allow", value: allow.joined(separator: ", ")) }
        if let replicaId { error.headers.add(name: "X-Replica-Id", value: replicaId) }
        return error
    }
}
