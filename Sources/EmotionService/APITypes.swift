import Foundation

/// A request as the API sees it, independent of the HTTP transport.
public struct APIRequest: Sendable {
    public var method: String
    /// Path without the query, percent-encoded as received.
    public var path: String
    public var headers: [(name: String, value: String)]
    public var body: Data
    public var requestId: String
    /// False once the client is gone (its connection closed): long work (an analysis) stops.
    public var isConnectionOpen: @Sendable () -> Bool

    public init(method: String, path: String, headers: [(name: String, value: String)] = [], body: Data = Data(),
                requestId: String = UUID().uuidString, isConnectionOpen: @escaping @Sendable () -> Bool = { true }) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.requestId = requestId
        self.isConnectionOpen = isConnectionOpen
    }

    /// First value of a header, case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// A response: status, headers, body.
public struct APIResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: Data

    public init(status: Int, headers: [(name: String, value: String)] = [], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    static let jsonEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()

    public static func json<T: Encodable>(_ value: T, status: Int = 200) throws(APIError) -> APIResponse {
        do {
            let body = try jsonEncoder.encode(value)
            return APIResponse(status: status, headers: [("Content-Type", "application/json")], body: body)
        } catch {
            throw .internalError("could not encode the answer: \(error)")
        }
    }

    public static func error(_ error: APIError) -> APIResponse {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if let retry = error.retryAfterSeconds { headers.append(("Retry-After", String(retry))) }
        if let allow = error.allow { headers.append(("Allow", allow.joined(separator: ", "))) }
        return APIResponse(status: error.status, headers: headers, body: error.body)
    }

    public static func text(_ text: String, contentType: String = "text/plain; charset=utf-8", status: Int = 200) -> APIResponse {
        APIResponse(status: status, headers: [("Content-Type", contentType)], body: Data(text.utf8))
    }
}
