/// Errors of the conversation layer, with stable codes. The HTTP layer maps `category` to a
/// status; `code` and `message` go to the client unchanged.
public struct ConversationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Category: String, Sendable, Codable {
        /// The turn itself is unusable (bad audio, empty turn, wrong sizes): 422.
        case invalidInput
        /// No such session: 404.
        case notFound
        /// The same turn id was sent with different content: 409.
        case conflict
        /// Over capacity (work queue full, too many sessions): 503 with Retry-After.
        case overloaded
        /// The caller's own quota is used up (its tenant holds its maximum of sessions), while
        /// other callers are still served: 429 with Retry-After.
        case quotaExceeded
        /// Shutting down: 503.
        case unavailable
        /// A bug or a failed model computation: 500.
        case `internal`
    }

    public let category: Category
    public let code: String
    public let message: String
    /// Seconds after which a retry may succeed, for `.overloaded` and `.quotaExceeded` (nil: the
    /// HTTP layer's default).
    public let retryAfter: Double?

    public init(_ category: Category, code: String, _ message: String, retryAfter: Double? = nil) {
        self.category = category
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code): \(message)" }

    public static func sessionNotFound(_ id: String) -> ConversationError {
        ConversationError(.notFound, code: "session_not_found", "no session '\(id)'")
    }

    /// A turn of a session deleted before the turn was stored (waiting or being processed).
    public static func sessionDeleted(_ id: String) -> ConversationError {
        ConversationError(.notFound, code: "session_deleted", "session '\(id)' was deleted before this turn was stored")
    }

    /// The turn could not be made durable (journal write failed): 503, retry later.
    public static func storageUnavailable(_ failure: StorageError) -> ConversationError {
        ConversationError(.unavailable, code: "storage_unavailable", "the turn could not be stored durably; retry later")
    }
}
