#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Testing
import TestSupport
import COpenSSL
@testable import HTTPServer

/// Delays of the test handler run here (a serial queue gets its own thread when needed).
let delayQueue = DispatchQueue(label: "test.delays")

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Limits with short timeouts for tests.
func testLimits() -> HTTPServerLimits {
    var limits = HTTPServerLimits()
    limits.headTimeout = .seconds(3)
    limits.bodyTimeout = .seconds(3)
    limits.idleTimeout = .seconds(3)
    limits.writeTimeout = .seconds(3)
    limits.lingerTimeout = .milliseconds(500)
    limits.maxBodyBytes = 64 * 1024
    limits.maxHeaderBytes = 8 * 1024
    limits.maxRequestLineBytes = 2 * 1024
    limits.maxHeaderCount = 50
    return limits
}

/// The handler used by most tests; Dispatch only (no Tasks), so it never needs the cooperative pool.
///
/// - `/slow?ms=N`: answers after N ms (`&report=1`: the body says whether the client was still
///   there then, `HTTPResponder.isConnectionOpen`).
/// - `/throw`: throws HTTPError 409 `conflict`.
/// - `/crash`: throws a plain error (500 `internal_error`).
/// - `/drop`: drops the responder without answering (500 `internal_error`).
/// - `/close`: answers with `Connection: close`.
/// - `/head-length`: empty body with `Content-Length: 1234` (for HEAD).
/// - `/big?n=N`: N bytes of body.
/// - anything else: echoes the body; X-Method, X-Path, X-Query, X-Index, X-Trailers headers.
struct TestHandler: HTTPHandler {
    /// Counts `/slow` requests that reached the handler, so that a test can wait for one to be
    /// in progress instead of sleeping and hoping.
    var slowStarted = Locked<Int>(0)

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        switch request.path {
        case "/slow":
            slowStarted.withLock { $0 += 1 }
            let ms = Int(request.target.queryValue("ms") ?? "") ?? 100
            let report = request.target.queryValue("report") != nil
            delayQueue.asyncAfter(deadline: .now() + .milliseconds(ms)) {
                let presence = report ? (responder.isConnectionOpen ? " client=present" : " client=gone") : ""
                responder.respond(HTTPResponse(status: .ok, body: "slow \(ms)\(presence)"))
            }
        case "/throw":
            responder.fail(HTTPError(kind: .conflict, code: "conflict", message: "already there"))
        case "/crash":
            struct Boom: Error {}
            responder.fail(Boom())
        case "/drop":
            return
        case "/close":
            responder.respond(HTTPResponse(status: .ok, headers: ["Connection": "close"], body: "bye"))
        case "/head-length":
            responder.respond(HTTPResponse(status: .ok, headers: ["Content-Length": "1234"], body: []))
        case "/big":
            let n = Int(request.target.queryValue("n") ?? "") ?? 0
            responder.respond(HTTPResponse(status: .ok, body: [UInt8](repeating: 0x61, count: n)))
        default:
            var headers: HTTPHeaders = [
                "X-Method": request.method.rawValue,
                "X-Path": request.path,
                "X-Index": String(request.indexOnConnection),
                "X-Trailers": request.trailers.map { "\($0.name)=\($0.value)" }.joined(separator: ";"),
                "X-Secure": String(request.isSecure),
                "X-Remote": request.remoteAddress.host,
            ]
            if let query = request.target.query { headers.add(name: "X-Query", value: query) }
            responder.respond(HTTPResponse(status: .ok, headers: headers, bytes: request.body))
        }
    }
}

/// A running server plus the logs and diagnostics it reported.
final class TestServer: Sendable {
    let server: HTTPServer
    let port: Int
    let logs = Locked<[HTTPRequestLog]>([])
    let diagnostics = Locked<[HTTPServerDiagnostic]>([])

    /// `/slow` requests the default handler has started.
    let slowStarted: Locked<Int>

    init(limits: HTTPServerLimits = testLimits(), tls: TLSConfiguration? = nil,
         handler: (any HTTPHandler)? = nil) throws
    {
        let test = TestHandler()
        slowStarted = test.slowStarted
        let handler = handler ?? test
        let logs = self.logs
        let diagnostics = self.diagnostics
        let configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0, tls: tls, limits: limits)
        server = HTTPServer(configuration: configuration, handler: handler,
                            onRequestComplete: { log in logs.withLock { $0.append(log) } },
                            onDiagnostic: { d in diagnostics.withLock { $0.append(d) } })
        port = try server.start().port
    }

    func client(timeout: Double = 5) throws -> RawClient { try RawClient(port: port, timeout: timeout) }

    func stop() async { await server.shutdown(gracePeriod: .seconds(2)) }

    /// Blocks until `count` `/slow` requests have reached the handler (false after 30 s).
    func waitForSlowRequests(_ count: Int) -> Bool {
        for _ in 0..<3000 {
            if slowStarted.withLock({ $0 }) >= count { return true }
            usleep(10_000)
        }
        return false
    }

    /// Waits until `count` logs have arrived (they are reported after the write completes).
    func waitForLogs(_ count: Int, timeout: Double = 3) -> [HTTPRequestLog] {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            let current = logs.withLock { $0 }
            if current.count >= count { return current }
            usleep(5_000)
        }
        return logs.withLock { $0 }
    }
}

struct ParsedResponse: Sendable {
    var status: Int
    var reason: String
    var headers: HTTPHeaders
    var body: [UInt8]
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    /// The `code` of a JSON error body.
    var errorCode: String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let error = object["error"] as? [String: Any] else { return nil }
        return error["code"] as? String
    }
}

/// A blocking loopback client that sends arbitrary bytes and parses responses.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    /// Set by `startTLS`: reads and writes go through OpenSSL.
    private var sslContext: OpaquePointer?
    private(set) var ssl: OpaquePointer?

    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw TestFailure("connect failed: \(errno)")
        }
        setTimeout(timeout)
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        if let sslContext { SSL_CTX_free(sslContext) }
        close(fd)
    }

    /// TLS handshake, verifying the server against `trustedCertificate` (PEM path).
    func startTLS(trustedCertificate: String) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TestFailure("SSL_CTX_new") }
        sslContext = context
        guard SSL_CTX_load_verify_locations(context, trustedCertificate, nil) == 1 else {
            throw TestFailure("cannot load \(trustedCertificate)")
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        guard let ssl = SSL_new(context) else { throw TestFailure("SSL_new") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        guard SSL_connect(ssl) == 1 else { throw TestFailure("TLS handshake failed") }
        guard SSL_get_verify_result(ssl) == X509_V_OK else { throw TestFailure("certificate not verified") }
    }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends everything; false when the peer is gone.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                if let ssl { return Int(SSL_write(ssl, raw.baseAddress! + offset, Int32(raw.count - offset))) }
                return Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads more bytes; nil on EOF, timeout or error.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { raw -> Int in
            if let ssl { return Int(SSL_read(ssl, raw.baseAddress, Int32(raw.count))) }
            return recv(fd, raw.baseAddress, raw.count, 0)
        }
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Reads one response (body by Content-Length; none for HEAD, 1xx, 204, 304).
    func readResponse(isHEAD: Bool = false) throws -> ParsedResponse {
        while true {
            if let end = headEnd() {
                let headText = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = headText.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst()
                let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
                guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
                    throw TestFailure("bad status line: \(statusLine)")
                }
                var headers = HTTPHeaders()
                for line in lines where !line.isEmpty {
                    guard let colon = line.firstIndex(of: ":") else { throw TestFailure("bad header line \(line)") }
                    headers.add(name: String(line[..<colon]),
                                value: String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
                }
                var length = Int(headers["content-length"] ?? "0") ?? 0
                if isHEAD || status < 200 || status == 204 || status == 304 { length = 0 }
                let bodyStart = end + 4
                while buffer.count < bodyStart + length {
                    guard fill() else { throw TestFailure("connection ended inside a body") }
                }
                let body = Array(buffer[bodyStart..<(bodyStart + length)])
                buffer.removeFirst(bodyStart + length)
                return ParsedResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "",
                                      headers: headers, body: body)
            }
            guard fill() else {
                throw TestFailure("no response (got \(buffer.count) bytes: \(String(decoding: buffer, as: UTF8.self).prefix(200)))")
            }
        }
    }

    private func headEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4)
        where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// True when the peer closes (EOF or reset) within the receive timeout, discarding any bytes.
    func waitForClose() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// Everything until EOF (or timeout).
    func readToEnd() -> [UInt8] {
        while fill() {}
        let all = buffer
        buffer = []
        return all
    }
}

/// `GET path` with Host, as bytes.
func get(_ path: String, extra: String = "") -> String {
    "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\(extra)\r\n"
}

/// Checks that `server` still serves a plain request on a fresh connection.
func expectServes(_ server: TestServer, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let response = try await offPool {
        let client = try server.client()
        client.send(get("/ok"))
        return try client.readResponse()
    }
    #expect(response.status == 200, sourceLocation: sourceLocation)
}

/// A self-signed P-256 certificate for `localhost`/127.0.0.1 made with libcrypto (no `openssl`
/// command needed). Returns the certificate and key paths.
func makeSelfSignedCertificate() throws -> (certificate: String, key: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("httpserver-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    guard let keyContext = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw TestFailure("EVP_PKEY_CTX_new_from_name") }
    defer { EVP_PKEY_CTX_free(keyContext) }
    guard EVP_PKEY_keygen_init(keyContext) == 1, EVP_PKEY_CTX_set_group_name(keyContext, "P-256") == 1 else {
        throw TestFailure("keygen init")
    }
    var generated: OpaquePointer? = nil
    guard EVP_PKEY_generate(keyContext, &generated) == 1, let key = generated else { throw TestFailure("keygen") }
    defer { EVP_PKEY_free(key) }
    guard let certificate = X509_new() else { throw TestFailure("X509_new") }
    defer { X509_free(certificate) }
    X509_set_version(certificate, 2)
    ASN1_INTEGER_set(X509_get_serialNumber(certificate), Int(UInt32.random(in: 1...UInt32.max)))
    X509_gmtime_adj(X509_getm_notBefore(certificate), -60)
    X509_gmtime_adj(X509_getm_notAfter(certificate), 86_400)
    X509_set_pubkey(certificate, key)
    let name = X509_get_subject_name(certificate)
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, "localhost", -1, -1, 0)
    X509_set_issuer_name(certificate, name)
    guard X509_sign(certificate, key, EVP_sha256()) > 0 else { throw TestFailure("X509_sign") }
    let certificatePath = directory.appendingPathComponent("cert.pem").path
    let keyPath = directory.appendingPathComponent("key.pem").path
    guard let certificateBIO = BIO_new_file(certificatePath, "w") else { throw TestFailure("BIO_new_file") }
    PEM_write_bio_X509(certificateBIO, certificate)
    BIO_free(certificateBIO)
    guard let keyBIO = BIO_new_file(keyPath, "w") else { throw TestFailure("BIO_new_file") }
    PEM_write_bio_PrivateKey(keyBIO, key, nil, nil, 0, nil, nil)
    BIO_free(keyBIO)
    return (certificatePath, keyPath)
}
