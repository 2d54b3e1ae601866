import Conversation
import Foundation

/// An error answer: `{"error": {"code": "...", "message": "..."}}` with an HTTP status.
/// Codes are stable; clients may branch on them.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let code: String
    public let message: String
    /// Seconds, for 429/503 answers.
    public let retryAfter: Int?

    public init(_ status: Int, _ code: String, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status) \(code): \(message)" }

    public static func malformedJSON(_ detail: String) -> APIError { APIError(400, "malformed_json", detail) }
    public static func invalidField(_ field: String, _ detail: String) -> APIError {
        APIError(422, "invalid_field", "\(field): \(detail)")
    }
    public static func notFound(_ path: String) -> APIError { APIError(404, "not_found", "no route for \(path)") }
    public static func methodNotAllowed(_ method: String, allowed: [String]) -> APIError {
        APIError(405, "method_not_allowed", "\(method) is not allowed here; allowed: \(allowed.joined(separator: ", "))")
    }

    /// Maps a conversation-layer error to its HTTP form.
    public init(_ error: ConversationError, retryAfter seconds: Int = 1) {
        switch error.category {
        case .invalidInput: self.init(422, error.code, error.message)
        case .notFound: self.init(404, error.code, error.message)
        case .conflict: self.init(409, error.code, error.message)
        case .overloaded: self.init(503, error.code, error.message, retryAfter: seconds)
        case .unavailable: self.init(503, error.code, error.message, retryAfter: seconds)
        case .internal: self.init(500, error.code, error.message)
        }
    }

    /// The JSON body.
    public var body: Data {
        let object: [String: Any] = ["error": ["code": code, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }
}
