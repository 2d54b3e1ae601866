/// What kind of failure an error is: whose fault it is and what its caller may do about it.
///
/// Every module's errors say their kind, so one table maps any error to its answer
/// (`HTTPStatus(kind)` in HTTPServer is the only place a kind becomes a status) and no layer
/// keeps lists of another layer's codes.
public enum ErrorKind: String, Sendable, CaseIterable, Codable {
    /// The request as a message is malformed (syntax, framing, encoding, JSON).
    case malformedRequest = "malformed_request"
    /// No valid credentials.
    case unauthorized
    /// Valid credentials that may not do this.
    case forbidden
    /// No such resource (route, session).
    case notFound = "not_found"
    /// The resource exists but not with this method.
    case methodNotAllowed = "method_not_allowed"
    /// The client did not send the request in time.
    case requestTimeout = "request_timeout"
    /// The request conflicts with the resource's state (a reused turn id, a full session).
    case conflict
    /// A body length is required and was not given.
    case lengthRequired = "length_required"
    /// The body is larger than allowed.
    case payloadTooLarge = "payload_too_large"
    /// The request target is longer than allowed.
    case uriTooLong = "uri_too_long"
    /// The body's media type is not one the resource takes.
    case unsupportedMediaType = "unsupported_media_type"
    /// An `Expect` the server cannot meet.
    case expectationFailed = "expectation_failed"
    /// Well-formed, but the content is unusable (bad audio, missing field, out of range).
    case invalidInput = "invalid_input"
    /// The caller's own quota is used up while other callers are served; retry later.
    case quotaExceeded = "quota_exceeded"
    /// The request head is larger than allowed.
    case headerTooLarge = "header_too_large"
    /// A protocol feature the server does not implement.
    case notImplemented = "not_implemented"
    /// A protocol version the server does not speak.
    case versionNotSupported = "version_not_supported"
    /// Over capacity right now (queues, budgets, tables full); retry later.
    case overloaded
    /// Not serving this now (shutting down, storage failing); retry later.
    case unavailable
    /// A fault of the service or of its configuration (a bug, a broken model package), never of
    /// the caller's input: the caller is told only that it happened.
    case `internal`

    /// The caller's request is at fault and would fail again unchanged.
    public var isClientError: Bool {
        switch self {
        case .overloaded, .unavailable, .internal, .quotaExceeded: return false
        default: return true
        }
    }

    /// A retry after a while may succeed (answers say when, e.g. with `Retry-After`).
    public var isTransient: Bool {
        switch self {
        case .overloaded, .unavailable, .quotaExceeded: return true
        default: return false
        }
    }
}

/// The one error vocabulary of all modules: a stable machine-readable `code` (never renamed once
/// shipped; clients branch on it), a human-readable `message` (not stable), and the `kind` that
/// decides the answer. Errors stay small types of their own module; this is what they share.
public protocol CodedError: Error, Sendable, CustomStringConvertible {
    /// The stable code, e.g. `unreadable_audio`.
    var code: String { get }
    /// What went wrong, for people (for an internal error: for the log only).
    var message: String { get }
    /// Whose fault, and what the caller may do.
    var kind: ErrorKind { get }
    /// Seconds after which a retry may succeed, for transient kinds (nil: the answering layer's
    /// default).
    var retryAfter: Double? { get }
}

extension CodedError {
    public var retryAfter: Double? { nil }
    public var description: String { "\(code): \(message)" }

    /// Whole seconds for a `Retry-After` (the error's hint rounded up, at least 1, at most a day;
    /// else `fallback`), or nil when the kind is not transient.
    public func retryAfterSeconds(default fallback: Int) -> Int? {
        guard kind.isTransient else { return nil }
        return retryAfter.map { max(1, Int(min($0, 86_400).rounded(.up))) } ?? fallback
    }
}
