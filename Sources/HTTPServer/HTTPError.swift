import ErrorVocabulary

/// An error answered to the client: a stable machine-readable code, a message, and the kind of
/// failure, whose status `HTTPStatus(kind)` gives.
///
/// The server produces these for protocol violations, limits and timeouts (codes below); a handler
/// may throw one (or any `CodedError`) to answer it through the same error renderer. Messages
/// never echo client bytes.
public struct HTTPError: CodedError, Equatable {
    public var kind: ErrorKind
    public var code: String
    public var message: String
    /// Extra response fields (e.g. `Retry-After`), added to whatever the renderer returns.
    public var headers: HTTPHeaders

    public init(kind: ErrorKind, code: String, message: String, headers: HTTPHeaders = HTTPHeaders()) {
        self.kind = kind
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// The answer for any error of the vocabulary: its kind, code and message, `Retry-After`
    /// for a transient kind (the error's own hint rounded up to whole seconds, else
    /// `retryAfterSeconds`). An internal error keeps its code and message here; renderers that
    /// face clients redact them.
    public init(_ error: any CodedError, retryAfterSeconds: Int = 1) {
        var headers = HTTPHeaders()
        if let seconds = error.retryAfterSeconds(default: retryAfterSeconds) {
            headers.add(name: "Retry-After", value: String(seconds))
        }
        self.init(kind: error.kind, code: error.code, message: error.message, headers: headers)
    }

    /// What the server answers for an error a handler threw: an `HTTPError` as it is, another
    /// `CodedError` in its kind, anything else (and any internal error's text) as 500
    /// `internal_error`, whose description is not sent.
    static func answer(for error: any Error) -> HTTPError {
        if let error = error as? HTTPError { return error }
        if let coded = error as? any CodedError, coded.kind != .internal { return HTTPError(coded) }
        return .internalError("internal server error")
    }

    /// The response status, from the one table of kinds.
    public var status: HTTPStatus { HTTPStatus(kind) }

    public var description: String { "\(status.code) \(code): \(message)" }

    // MARK: Stable codes used by the server

    /// 400: malformed request line or header field (obs-fold, whitespace before the colon, missing
    /// colon, bare CR or LF, NUL or other control bytes, invalid method token, bad HTTP-version
    /// syntax, missing or repeated Host).
    public static func badRequest(_ message: String) -> HTTPError {
        HTTPError(kind: .malformedRequest, code: "bad_request", message: message)
    }
    /// 400: request-target not in origin form (absolute-form, authority-form, `*` other than with
    /// OPTIONS), fragment, bad percent-encoding, bytes outside visible ASCII.
    public static func invalidTarget(_ message: String) -> HTTPError {
        HTTPError(kind: .malformedRequest, code: "invalid_target", message: message)
    }
    /// 400: Content-Length that is not a plain decimal number.
    public static func invalidContentLength(_ message: String) -> HTTPError {
        HTTPError(kind: .malformedRequest, code: "invalid_content_length", message: message)
    }
    /// 400: malformed chunked body (chunk size, extension, CRLF, trailer).
    public static func invalidChunkedEncoding(_ message: String) -> HTTPError {
        HTTPError(kind: .malformedRequest, code: "invalid_chunked_encoding", message: message)
    }
    /// 400: ambiguous message framing (Content-Length with Transfer-Encoding, repeated
    /// Content-Length, Transfer-Encoding in HTTP/1.0, chunked not last or repeated).
    public static func smugglingRejected(_ message: String) -> HTTPError {
        HTTPError(kind: .malformedRequest, code: "smuggling_rejected", message: message)
    }
    /// 408: head or body not received in time.
    public static func requestTimeout(_ message: String) -> HTTPError {
        HTTPError(kind: .requestTimeout, code: "request_timeout", message: message)
    }
    /// 411: a method configured to require a body length came without one.
    public static func lengthRequired(_ message: String) -> HTTPError {
        HTTPError(kind: .lengthRequired, code: "length_required", message: message)
    }
    /// 413: declared or received body larger than the limit.
    public static func payloadTooLarge(_ message: String) -> HTTPError {
        HTTPError(kind: .payloadTooLarge, code: "payload_too_large", message: message)
    }
    /// 414: request line longer than the limit.
    public static func uriTooLong(_ message: String) -> HTTPError {
        HTTPError(kind: .uriTooLong, code: "uri_too_long", message: message)
    }
    /// 417: an Expect value other than 100-continue.
    public static func expectationFailed(_ message: String) -> HTTPError {
        HTTPError(kind: .expectationFailed, code: "expectation_failed", message: message)
    }
    /// 431: head larger than the limit.
    public static func headerTooLarge(_ message: String) -> HTTPError {
        HTTPError(kind: .headerTooLarge, code: "header_too_large", message: message)
    }
    /// 431: more header (or trailer) fields than the limit.
    public static func tooManyHeaders(_ message: String) -> HTTPError {
        HTTPError(kind: .headerTooLarge, code: "too_many_headers", message: message)
    }
    /// 500: the handler threw something other than an HTTPError, or dropped its responder.
    public static func internalError(_ message: String) -> HTTPError {
        HTTPError(kind: .internal, code: "internal_error", message: message)
    }
    /// 501: a transfer coding other than chunked.
    public static func unsupportedTransferEncoding(_ message: String) -> HTTPError {
        HTTPError(kind: .notImplemented, code: "unsupported_transfer_encoding", message: message)
    }
    /// 503: connection limit reached (with Retry-After).
    public static func serviceUnavailable(_ message: String, retryAfterSeconds: Int) -> HTTPError {
        HTTPError(kind: .overloaded, code: "service_unavailable", message: message,
                  headers: ["Retry-After": String(retryAfterSeconds)])
    }
    /// 503: the server-wide budget of buffered request bodies is spent (`HTTPBodyBudget`), with
    /// Retry-After; answered before the body is read.
    public static func bodyBudgetExhausted(retryAfterSeconds: Int) -> HTTPError {
        HTTPError(kind: .overloaded, code: "body_budget_exhausted",
                  message: "the server is buffering as many request bodies as it may; retry later",
                  headers: ["Retry-After": String(retryAfterSeconds)])
    }
    /// 505: HTTP major version other than 1 (HTTP/2 preface, HTTP/0.9 request line, HTTP/3.0...).
    public static func versionNotSupported(_ message: String) -> HTTPError {
        HTTPError(kind: .versionNotSupported, code: "http_version_not_supported", message: message)
    }
}

extension HTTPStatus {
    /// The one table from a kind of failure to its HTTP status (RFC 9110).
    public init(_ kind: ErrorKind) {
        switch kind {
        case .malformedRequest: self = .badRequest
        case .unauthorized: self = .unauthorized
        case .forbidden: self = .forbidden
        case .notFound: self = .notFound
        case .methodNotAllowed: self = .methodNotAllowed
        case .requestTimeout: self = .requestTimeout
        case .conflict: self = .conflict
        case .lengthRequired: self = .lengthRequired
        case .payloadTooLarge: self = .payloadTooLarge
        case .uriTooLong: self = .uriTooLong
        case .unsupportedMediaType: self = .unsupportedMediaType
        case .expectationFailed: self = .expectationFailed
        case .invalidInput: self = .unprocessableContent
        case .quotaExceeded: self = .tooManyRequests
        case .headerTooLarge: self = .requestHeaderFieldsTooLarge
        case .notImplemented: self = .notImplemented
        case .versionNotSupported: self = .httpVersionNotSupported
        case .overloaded, .unavailable: self = .serviceUnavailable
        case .internal: self = .internalServerError
        }
    }
}

/// Turns an error into the response sent to the client. The server then adds the error's extra
/// headers, `Content-Length`, `Date`, `Connection` and `X-Request-Id`.
public typealias HTTPErrorRenderer = @Sendable (HTTPError) -> HTTPResponse

extension HTTPError {
    /// `{"error": {"code": "...", "message": "..."}}` as `application/json`.
    public static let jsonRenderer: HTTPErrorRenderer = { error in
        let body = "{\"error\":{\"code\":\(jsonString(error.code)),\"message\":\(jsonString(error.message))}}"
        return HTTPResponse(status: error.status,
                            headers: ["Content-Type": "application/json; charset=utf-8"],
                            body: body)
    }

    /// A JSON string literal (quotes included) for `text`.
    public static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
