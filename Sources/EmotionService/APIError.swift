import Conversation
import ErrorVocabulary
import Foundation
import HTTPServer

/// An error answer: `{"error": {"code": "...", "message": "..."}}` with the status of its kind
/// (`HTTPStatus(kind)`, the one table). Codes are stable; clients may branch on them. A 500
/// (`internal_error`) tells the client only its request id; `detail` goes to the server log,
/// never into the answer.
public struct APIError: CodedError, Equatable {
    public let kind: ErrorKind
    public let code: String
    public let message: String
    /// Whole seconds for `Retry-After`, for 429/503 answers.
    public let retryAfterSeconds: Int?
    /// The methods a 405 answer lists in its `Allow` header.
    public let allow: [String]?
    /// What went wrong inside, for the log only (500s).
    public let detail: String?

    public init(_ kind: ErrorKind, _ code: String, _ message: String, retryAfter: Int? = nil, allow: [String]? = nil,
                detail: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        retryAfterSeconds = retryAfter
        self.allow = allow
        self.detail = detail
    }

    /// The error of another module as an answer: its kind, code and message; an internal error
    /// becomes `internal_error` with the original in `detail`. Retry-After (transient kinds) is
    /// the error's own hint or `seconds`.
    public init(_ error: any CodedError, retryAfter seconds: Int = 1) {
        if let error = error as? APIError {
            self = error
        } else if error.kind == .internal {
            self = .internalError("\(error.code): \(error.message)")
        } else {
            self.init(error.kind, error.code, error.message, retryAfter: error.retryAfterSeconds(default: seconds))
        }
    }

    /// The HTTP status of the answer.
    public var status: Int { HTTPStatus(kind).code }

    public var retryAfter: Double? { retryAfterSeconds.map(Double.init) }

    public var description: String { "\(status) \(code): \(detail ?? message)" }

    public static func malformedJSON(_ detail: String) -> APIError { APIError(.malformedRequest, "malformed_json", detail) }
    public static func invalidField(_ field: String, _ detail: String) -> APIError {
        APIError(.invalidInput, "invalid_field", "\(field): \(detail)")
    }
    public static func notFound(_ path: String) -> APIError { APIError(.notFound, "not_found", "no route for \(path)") }
    /// 405 with `Allow` (RFC 9110 section 15.5.6): the route's methods, and HEAD where GET is allowed.
    public static func methodNotAllowed(_ method: String, allowed: [String]) -> APIError {
        let listed = allowed.contains("GET") && !allowed.contains("HEAD") ? allowed + ["HEAD"] : allowed
        return APIError(.methodNotAllowed, "method_not_allowed", "this route allows \(listed.joined(separator: ", "))",
                        allow: listed)
    }
    /// A failure inside the server; `detail` is logged with the request id.
    public static func internalError(_ detail: String) -> APIError {
        APIError(.internal, "internal_error", "internal error", detail: detail)
    }

    /// The answer a client gets for a 500: the stable code and its request id, nothing else.
    func redacted(requestId: String) -> APIError {
        APIError(.internal, "internal_error", "internal error; quote request id \(requestId) to the operator")
    }

    /// The JSON body.
    public var body: Data {
        let object: [String: Any] = ["error": ["code": code, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }
}
