import Foundation

/// A request method: any RFC 9110 token (extension methods included); case-sensitive.
public struct HTTPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }

    public static let get: HTTPMethod = "GET"
    public static let head: HTTPMethod = "HEAD"
    public static let post: HTTPMethod = "POST"
    public static let put: HTTPMethod = "PUT"
    public static let delete: HTTPMethod = "DELETE"
    public static let patch: HTTPMethod = "PATCH"
    public static let options: HTTPMethod = "OPTIONS"
    public static let connect: HTTPMethod = "CONNECT"
    public static let trace: HTTPMethod = "TRACE"
}

/// `HTTP/major.minor` as received. Only 1.x reaches a handler.
public struct HTTPVersion: Hashable, Sendable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)
    public var description: String { "HTTP/\(major).\(minor)" }
    /// HTTP/1.1 semantics (persistent connections by default, Host required, chunked allowed).
    var isAtLeast1_1: Bool { major > 1 || (major == 1 && minor >= 1) }
}

/// A status code and its reason phrase.
public struct HTTPStatus: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var reasonPhrase: String

    public init(code: Int, reasonPhrase: String? = nil) {
        self.code = code
        self.reasonPhrase = reasonPhrase ?? HTTPStatus.standardReasonPhrase(code)
    }

    public var description: String { "\(code) \(reasonPhrase)" }

    public static let `continue` = HTTPStatus(code: 100)
    public static let ok = HTTPStatus(code: 200)
    public static let created = HTTPStatus(code: 201)
    public static let accepted = HTTPStatus(code: 202)
    public static let noContent = HTTPStatus(code: 204)
    public static let notModified = HTTPStatus(code: 304)
    public static let badRequest = HTTPStatus(code: 400)
    public static let unauthorized = HTTPStatus(code: 401)
    public static let forbidden = HTTPStatus(code: 403)
    public static let notFound = HTTPStatus(code: 404)
    public static let methodNotAllowed = HTTPStatus(code: 405)
    public static let requestTimeout = HTTPStatus(code: 408)
    public static let conflict = HTTPStatus(code: 409)
    public static let lengthRequired = HTTPStatus(code: 411)
    public static let payloadTooLarge = HTTPStatus(code: 413)
    public static let uriTooLong = HTTPStatus(code: 414)
    public static let unsupportedMediaType = HTTPStatus(code: 415)
    public static let expectationFailed = HTTPStatus(code: 417)
    public static let unprocessableContent = HTTPStatus(code: 422)
    public static let tooManyRequests = HTTPStatus(code: 429)
    public static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431)
    public static let internalServerError = HTTPStatus(code: 500)
    public static let notImplemented = HTTPStatus(code: 501)
    public static let serviceUnavailable = HTTPStatus(code: 503)
    public static let gatewayTimeout = HTTPStatus(code: 504)
    public static let httpVersionNotSupported = HTTPStatus(code: 505)

    public static func standardReasonPhrase(_ code: Int) -> String {
        switch code {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Content"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default:
            switch code / 100 {
            case 1: return "Informational"
            case 2: return "Success"
            case 3: return "Redirection"
            case 4: return "Client Error"
            default: return "Server Error"
            }
        }
    }
}

/// The peer of a connection.
public struct HTTPRemoteAddress: Hashable, Sendable, CustomStringConvertible {
    /// Numeric host (`127.0.0.1`, `::1`).
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    /// `host:port`, or `[host]:port` for IPv6.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A request as the handler receives it: head, complete body and connection facts.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    public var target: HTTPRequestTarget
    public var version: HTTPVersion
    /// Header fields in the order received, duplicates kept, case-insensitive lookup.
    public var headers: HTTPHeaders
    /// The complete body (decoded from chunked transfer coding when it was chunked); `Data`, so
    /// that handlers parse it without another copy.
    public var body: Data
    /// Trailer fields of a chunked body (never merged into `headers`).
    public var trailers: HTTPHeaders
    /// The client's X-Request-Id when it is sane, otherwise a generated id; echoed on the response.
    public var requestID: String
    public var remoteAddress: HTTPRemoteAddress
    /// True when the connection is TLS.
    public var isSecure: Bool
    /// Position of this request on its connection (0 for the first).
    public var indexOnConnection: Int

    public init(method: HTTPMethod, target: HTTPRequestTarget, version: HTTPVersion = .http1_1,
                headers: HTTPHeaders = HTTPHeaders(), body: Data = Data(), trailers: HTTPHeaders = HTTPHeaders(),
                requestID: String = RequestID.generate(),
                remoteAddress: HTTPRemoteAddress = HTTPRemoteAddress(host: "127.0.0.1", port: 0),
                isSecure: Bool = false, indexOnConnection: Int = 0)
    {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.requestID = requestID
        self.remoteAddress = remoteAddress
        self.isSecure = isSecure
        self.indexOnConnection = indexOnConnection
    }

    /// Shorthand for `target.path`.
    public var path: String { target.path }
}

/// What a handler answers. `Content-Length`, `Date`, `Connection` and `X-Request-Id` are set by the
/// server; a handler's own `Content-Length`, `Transfer-Encoding` and `Connection` fields are replaced
/// (a `Connection: close` from the handler closes the connection after the response).
public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: String) {
        self.init(status: status, headers: headers, body: Array(body.utf8))
    }

    public init<Bytes: Sequence>(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), bytes: Bytes)
    where Bytes.Element == UInt8 {
        self.init(status: status, headers: headers, body: Array(bytes))
    }
}
