#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Serialises a response head and body for HTTP/1.1 (Content-Length framing; no chunked output).
///
/// Server-owned fields are written by the encoder and a handler's versions dropped:
/// Content-Length, Transfer-Encoding, Connection, X-Request-Id (and Date unless the handler set
/// one). Handler fields with an invalid name or a value containing CR, LF, NUL or other control
/// bytes are dropped, so a handler cannot split a response. Statuses outside 200...999 become 500.
enum HTTPResponseEncoder {
    struct Encoded {
        var bytes: [UInt8]
        var status: Int
        var bodyBytes: Int
    }

    static func encode(_ response: HTTPResponse, isHEAD: Bool, keepAlive: Bool, requestVersion: HTTPVersion,
                       requestID: String?, date: String = HTTPDate.now()) -> Encoded
    {
        var status = response.status
        var body = response.body
        var userHeaders = response.headers
        if status.code < 200 || status.code > 999 {
            status = .internalServerError
            body = []
            userHeaders = HTTPHeaders()
        }
        var out: [UInt8] = []
        out.reserveCapacity(256 + body.count)
        out.append(contentsOf: "HTTP/1.1 \(status.code) ".utf8)
        let reason = status.reasonPhrase.utf8.allSatisfy { $0 == ASCII.htab || ($0 >= 0x20 && $0 < 0x7F) }
            ? status.reasonPhrase : HTTPStatus.standardReasonPhrase(status.code)
        out.append(contentsOf: reason.utf8)
        out.append(contentsOf: "\r\n".utf8)

        let bodyAllowed = !(status.code == 204 || status.code == 304)
        var userContentLength: String? = nil
        var hasDate = false
        for field in userHeaders {
            let name = field.name
            if name.asciiCaseInsensitiveEquals("content-length") {
                userContentLength = field.value
                continue
            }
            if name.asciiCaseInsensitiveEquals("transfer-encoding") || name.asciiCaseInsensitiveEquals("connection")
                || name.asciiCaseInsensitiveEquals(RequestID.headerName) { continue }
            guard ASCII.isToken(name), field.value.utf8.allSatisfy(ASCII.isFieldValueChar) else { continue }
            if name.asciiCaseInsensitiveEquals("date") { hasDate = true }
            appendField(&out, name, field.value)
        }
        if !hasDate { appendField(&out, "Date", date) }
        if bodyAllowed {
            var length = String(body.count)
            // A HEAD response may announce the length of the GET body without carrying it.
            if isHEAD, body.isEmpty, let declared = userContentLength?.trimmingHTTPWhitespace(),
               HTTPRequestFraming.parseContentLength(declared) != nil {
                length = declared
            }
            appendField(&out, "Content-Length", length)
        }
        if !keepAlive {
            appendField(&out, "Connection", "close")
        } else if !requestVersion.isAtLeast1_1 {
            appendField(&out, "Connection", "keep-alive")
        }
        if let requestID { appendField(&out, RequestID.headerName, requestID) }
        out.append(contentsOf: "\r\n".utf8)
        let sendBody = bodyAllowed && !isHEAD
        if sendBody { out.append(contentsOf: body) }
        return Encoded(bytes: out, status: status.code, bodyBytes: sendBody ? body.count : 0)
    }

    static let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private static func appendField(_ out: inout [UInt8], _ name: String, _ value: String) {
        out.append(contentsOf: name.utf8)
        out.append(ASCII.colon)
        out.append(ASCII.sp)
        out.append(contentsOf: value.utf8)
        out.append(ASCII.cr)
        out.append(ASCII.lf)
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for the Date field.
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String { format(time(nil)) }

    static func format(_ seconds: time_t) -> String {
        var t = seconds
        var parts = tm()
        guard gmtime_r(&t, &parts) != nil else { return "Thu, 01 Jan 1970 00:00:00 GMT" }
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let day = days[Int(parts.tm_wday) % 7]
        let month = months[Int(parts.tm_mon) % 12]
        return "\(day), \(two(parts.tm_mday)) \(month) \(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
