import Conversation
import Foundation

/// An error answer: `{"error": {"code": "...", "message": "..."}}` with an HTTP status.
/// Codes are stable; clients may branch on them. A 500 (`internal_error`) tells the client only
/// its request id; `detail` goes to the server log, never into the answer.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let code: String
    public let message: String
    /// Seconds, for 429/503 answers.
    public let retryAfter: Int?
    /// The methods a 405 answer lists in its `Allow` header.
    public let allow: [String]?
    /// What went wrong inside, for the log only (500s).
    public let detail: String?

    public init(_ status: Int, _ code: String, _ message: String, retryAfter: Int? = nil, allow: [String]? = nil,
                detail: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.allow = allow
        self.detail = detail
    }

    public var description: String { "\(status) \(code): \(detail ?? message)" }

    public static func malformedJSON(_ detail: String) -> APIError { APIError(400, "malformed_json", detail) }
    public static func invalidField(_ field: String, _ detail: String) -> APIError {
        APIError(422, "invalid_field", "\(field): \(detail)")
    }
    public static func notFound(_ path: String) -> APIError { APIError(404, "not_found", "no route for \(path)") }
    /// 405 with `Allow` (RFC 9110 section 15.5.6): the route's methods, and HEAD where GET is allowed.
    public static func methodNotAllowed(_ method: String, allowed: [String]) -> APIError {
        let listed = allowed.contains("GET") && !allowed.contains("HEAD") ? allowed + ["HEAD"] : allowed
        return APIError(405, "method_not_allowed", "this route allows \(listed.joined(separator: ", "))", allow: listed)
    }
    /// A failure inside the server; `detail` is logged with the request id.
    public static func internalError(_ detail: String) -> APIError {
        APIError(500, "internal_error", "internal error", detail: detail)
    }

    /// The answer a client gets for a 500: the stable code and its request id, nothing else.
    func redacted(requestId: String) -> APIError {
        APIError(500, "internal_error", "internal error; quote request id \(requestId) to the operator")
    }

    /// Maps a conversation-layer error to its HTTP form; Retry-After is the error's own hint
    /// (rounded up to whole seconds) or `seconds`.
    public init(_ error: ConversationError, retryAfter defaultSeconds: Int = 1) {
        let seconds = error.retryAfter.map { max(1, Int(min($0, 86_400).rounded(.up))) } ?? defaultSeconds
        switch error.category {
        case .invalidInput: self.init(422, error.code, error.message)
        case .notFound: self.init(404, error.code, error.message)
        case .conflict: self.init(409, error.code, error.message)
        case .overloaded: self.init(503, error.code, error.message, retryAfter: seconds)
        case .quotaExceeded: self.init(429, error.code, error.message, retryAfter: seconds)
        case .unavailable: self.init(503, error.code, error.message, retryAfter: seconds)
        case .internal: self = .internalError("\(error.code): \(error.message)")
        }
    }

    /// The JSON body.
    public var body: Data {
        let object: [String: Any] = ["error": ["code": code, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }
}
