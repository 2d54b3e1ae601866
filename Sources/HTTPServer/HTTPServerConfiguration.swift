import Foundation

/// Everything the server can be told: where to listen, TLS, and every limit and timeout.
public struct HTTPServerConfiguration: Sendable {
    /// Numeric IPv4/IPv6 address or host name to bind. `0.0.0.0` = every IPv4 interface, `::` =
    /// every interface, IPv4 included (dual stack); `[::1]` brackets are accepted.
    public var host: String
    /// TCP port; 0 picks a free one (read it back from `HTTPServer.localAddress`).
    public var port: Int
    /// `listen(2)` backlog (the kernel caps it at `net.core.somaxconn`). At least 128.
    public var backlog: Int
    /// Also set SO_REUSEPORT (several processes on one port). SO_REUSEADDR is always set.
    public var reusePort: Bool
    /// TLS on this listener; nil for plain HTTP.
    public var tls: TLSConfiguration?
    public var limits: HTTPServerLimits
    /// Serial I/O queues (event loops) the connections are spread over; at most this many threads
    /// parse and write at once. Handlers must not block them.
    public var ioQueueCount: Int

    public init(host: String = "127.0.0.1", port: Int = 8080, backlog: Int = 511, reusePort: Bool = false,
                tls: TLSConfiguration? = nil, limits: HTTPServerLimits = HTTPServerLimits(),
                ioQueueCount: Int = HTTPServerConfiguration.defaultIOQueueCount)
    {
        self.host = host
        self.port = port
        self.backlog = backlog
        self.reusePort = reusePort
        self.tls = tls
        self.limits = limits
        self.ioQueueCount = ioQueueCount
    }

    /// The number of active processors (at least 1).
    public static var defaultIOQueueCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}

/// Sizes, counts and timeouts. Defaults suit an API service behind a load balancer; every value
/// is documented in Docs/HTTP_SERVER.md.
public struct HTTPServerLimits: Sendable {
    /// Longest request line (method, target, version) before 414 `uri_too_long`.
    public var maxRequestLineBytes: Int = 8 * 1024
    /// Largest head (request line + header fields + CRLFs) before 431 `header_too_large`. Also the
    /// bound on a chunked body's trailer section.
    public var maxHeaderBytes: Int = 16 * 1024
    /// Most header fields before 431 `too_many_headers`. Also the bound on trailer fields.
    public var maxHeaderCount: Int = 100
    /// Largest body before 413 `payload_too_large` (checked against Content-Length at once, and
    /// against every chunk size as it is announced).
    public var maxBodyBytes: Int = 8 * 1024 * 1024
    /// Request-body bytes all connections together may hold in memory at once (see
    /// `HTTPBodyBudget`): a request whose declared length does not fit, or a chunked body that
    /// grows past what is left, is answered 503 `body_budget_exhausted` + `Retry-After`.
    /// Raised to `maxBodyBytes` if lower, so that one maximal body always fits.
    public var maxBufferedBodyBytes: Int = 64 * 1024 * 1024
    /// Longest chunk-size line (size + extensions) before 400 `invalid_chunked_encoding`.
    public var maxChunkLineBytes: Int = 4 * 1024
    /// Methods that must carry Content-Length or Transfer-Encoding (else 411 `length_required`).
    /// Empty by default: RFC 9112 reads a request without either as having no body.
    public var lengthRequiredMethods: Set<String> = []

    /// From the connection's accept (first request) or the request's first byte (later requests)
    /// to the end of the head; then 408 `request_timeout`. A silent new connection is closed
    /// without a response.
    public var headTimeout: Duration = .seconds(10)
    /// From the end of the head to the end of the body; then 408 `request_timeout`.
    public var bodyTimeout: Duration = .seconds(60)
    /// How long a keep-alive connection may wait for its next request; then it is closed silently.
    /// Above the usual 60 s of load balancers so that the balancer closes first.
    public var idleTimeout: Duration = .seconds(65)
    /// From a response being queued to its last byte being accepted by the kernel; then the
    /// connection is dropped (a client that does not read).
    public var writeTimeout: Duration = .seconds(30)
    /// After an error response or `Connection: close`, the write side is shut and input is
    /// discarded for at most this long before the socket is closed, so the client can read the
    /// response instead of getting a reset.
    public var lingerTimeout: Duration = .seconds(2)

    /// Connections served at once. A new connection beyond it first makes room by closing the
    /// open connection that has sent the least of a request head (an idle keep-alive one, then
    /// the slowest partial head: slow-header clients cannot lock healthy ones out); when every
    /// connection is past its head, the server accepts up to `overflowConnections` more and
    /// answers each one's first request with 503 `service_unavailable` + `Retry-After`, then
    /// closes; beyond that it accepts and closes at once.
    public var maxConnections: Int = 512
    public var overflowConnections: Int = 64
    /// `Retry-After` seconds on 503 answers for the connection limit.
    public var retryAfterSeconds: Int = 1
    /// After this many requests a connection's response carries `Connection: close` (lets a load
    /// balancer rebalance long-lived clients). 0 = unlimited.
    public var maxRequestsPerConnection: Int = 10_000
    /// Longest `X-Request-Id` taken from a client.
    public var maxRequestIDLength: Int = 128

    public init() {}
}

/// TLS for a listener: PEM certificate chain (leaf first) and PEM private key.
public struct TLSConfiguration: Sendable {
    public enum ProtocolVersion: Sendable {
        case tls1_2
        case tls1_3
    }

    public var certificateChainPath: String
    public var privateKeyPath: String
    /// Oldest protocol accepted; TLS 1.2 by default (never lower).
    public var minimumVersion: ProtocolVersion
    /// OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites keep OpenSSL's defaults); nil = OpenSSL's
    /// default list.
    public var cipherList: String?

    public init(certificateChainPath: String, privateKeyPath: String, minimumVersion: ProtocolVersion = .tls1_2,
                cipherList: String? = nil)
    {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.minimumVersion = minimumVersion
        self.cipherList = cipherList
    }
}

extension Duration {
    var nanosecondsClamped: Int {
        let c = components
        if c.seconds < 0 { return 0 }
        if c.seconds > Int64(Int.max / 1_000_000_000) - 1 { return Int.max }
        return Int(c.seconds) * 1_000_000_000 + Int(c.attoseconds / 1_000_000_000)
    }
}
