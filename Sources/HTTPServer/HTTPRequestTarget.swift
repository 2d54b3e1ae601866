/// A request-target in origin form (`/path?query`), or `*` for `OPTIONS *`.
///
/// `path` and `query` are kept as received (percent-encoded, no dot-segment removal: routing is the
/// library user's business); `decodedPath` and `queryItems` decode them.
public struct HTTPRequestTarget: Hashable, Sendable, CustomStringConvertible {
    /// The target exactly as received.
    public var raw: String
    /// The path part, percent-encoded as received (`*` for asterisk-form).
    public var path: String
    /// The query part without `?`, or nil when there was no `?`.
    public var query: String?

    public var description: String { raw }

    /// Parses an origin-form or asterisk-form target; throws `invalid_target` for anything else.
    public init(_ raw: String, method: HTTPMethod = .get) throws(HTTPError) {
        self = try HTTPRequestTarget.parse(Array(raw.utf8), method: method)
    }

    init(raw: String, path: String, query: String?) {
        self.raw = raw
        self.path = path
        self.query = query
    }

    /// The path with percent-escapes decoded, or nil when they do not decode to UTF-8 or decode to
    /// NUL. `%2F` decodes to `/`; routers that care should use `path`.
    public var decodedPath: String? {
        guard let bytes = HTTPRequestTarget.percentDecode(Array(path.utf8), plusAsSpace: false),
              !bytes.contains(0) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    /// `name=value` pairs of the query, `+` as space, percent-decoded (invalid UTF-8 repaired with
    /// U+FFFD), in order, duplicates kept.
    public var queryItems: [HTTPQueryItem] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = HTTPRequestTarget.decodeComponent(parts[0])
            let value = parts.count > 1 ? HTTPRequestTarget.decodeComponent(parts[1]) : ""
            return HTTPQueryItem(name: name, value: value)
        }
    }

    /// The first value of query parameter `name`.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    private static func decodeComponent(_ text: Substring) -> String {
        let bytes = HTTPRequestTarget.percentDecode(Array(text.utf8), plusAsSpace: true) ?? Array(text.utf8)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func percentDecode(_ bytes: [UInt8], plusAsSpace: Bool) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == ASCII.percent {
                guard i + 2 < bytes.count, let hi = ASCII.hexValue(bytes[i + 1]),
                      let lo = ASCII.hexValue(bytes[i + 2]) else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(plusAsSpace && b == 0x2B ? ASCII.sp : b)
                i += 1
            }
        }
        return out
    }

    /// Strict target validation (RFC 9112 section 3.2), for a server that is not a proxy.
    static func parse<C: RandomAccessCollection>(_ bytes: C, method: HTTPMethod) throws(HTTPError) -> HTTPRequestTarget
    where C.Element == UInt8, C.Index == Int {
        guard let first = bytes.first else { throw .invalidTarget("empty request-target") }
        let raw = String(decoding: bytes, as: UTF8.self)
        if bytes.count == 1 && first == 0x2A {  // "*"
            guard method == .options else { throw .invalidTarget("asterisk-form target is only allowed with OPTIONS") }
            return HTTPRequestTarget(raw: raw, path: "*", query: nil)
        }
        guard first == 0x2F else {  // "/"
            if method == .connect {
                throw .invalidTarget("authority-form targets (CONNECT) are not served")
            }
            throw .invalidTarget("absolute-form and other non-origin targets are not accepted (not a proxy)")
        }
        var queryStart: Int? = nil
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            switch b {
            case 0x23:  // "#"
                throw .invalidTarget("fragment in request-target")
            case ASCII.percent:
                guard i + 2 < bytes.endIndex, ASCII.hexValue(bytes[i + 1]) != nil,
                      ASCII.hexValue(bytes[i + 2]) != nil else {
                    throw .invalidTarget("invalid percent-encoding in request-target")
                }
                i += 3
                continue
            case 0x3F:  // "?"
                if queryStart == nil { queryStart = i }
            case 0x21...0x7E:
                break
            default:
                throw .invalidTarget("invalid byte in request-target")
            }
            i += 1
        }
        if let q = queryStart {
            return HTTPRequestTarget(raw: raw,
                                     path: String(decoding: bytes[bytes.startIndex..<q], as: UTF8.self),
                                     query: String(decoding: bytes[(q + 1)..<bytes.endIndex], as: UTF8.self))
        }
        return HTTPRequestTarget(raw: raw, path: raw, query: nil)
    }
}

public struct HTTPQueryItem: Hashable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
