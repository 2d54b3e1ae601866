import ErrorVocabulary

/// Errors of the conversation layer, with stable codes: its own (session not found, queue full,
/// turn id conflict, ...) and those of the encoders it calls, which keep their kind and code.
/// `code` and `message` go to the client unchanged; `kind` decides the status.
public struct ConversationError: CodedError, Equatable {
    public let kind: ErrorKind
    public let code: String
    public let message: String
    /// Seconds after which a retry may succeed, for transient kinds (nil: the answering layer's
    /// default).
    public let retryAfter: Double?

    public init(_ kind: ErrorKind, code: String, _ message: String, retryAfter: Double? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// An error of another stage in this layer's terms: a `CodedError` keeps its kind, code and
    /// message; anything else is internal under `code`.
    public init(_ error: any Error, otherwise code: String) {
        if let error = error as? ConversationError {
            self = error
        } else if let coded = error as? any CodedError {
            self.init(coded.kind, code: coded.code, coded.message, retryAfter: coded.retryAfter)
        } else {
            self.init(.internal, code: code, "\(error)")
        }
    }

    /// The same error about turn `i` of a dialogue.
    public func at(turn i: Int) -> ConversationError {
        ConversationError(kind, code: code, "turn \(i): \(message)", retryAfter: retryAfter)
    }

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
