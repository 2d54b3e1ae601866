#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ErrorVocabulary

/// Why the server could not start (all internal: the server's configuration or host).
public enum HTTPServerError: CodedError, Equatable {
    case invalidConfiguration(String)
    /// getaddrinfo/socket/bind/listen failure, with errno's text.
    case socket(String)
    case tls(String)
    case alreadyStarted

    public var description: String {
        switch self {
        case .invalidConfiguration(let m): return "invalid HTTP server configuration: \(m)"
        case .socket(let m): return "socket error: \(m)"
        case .tls(let m): return "TLS error: \(m)"
        case .alreadyStarted: return "the server was already started"
        }
    }

    public var code: String {
        switch self {
        case .invalidConfiguration: return "invalid_configuration"
        case .socket: return "socket_error"
        case .tls: return "tls_error"
        case .alreadyStarted: return "already_started"
        }
    }
    public var message: String { description }
    public var kind: ErrorKind { .internal }
}

/// Thin POSIX socket helpers (no state).
enum Socket {
    static func errnoText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    /// A non-blocking listening socket bound to host:port, and the address it is bound to.
    static func listen(host: String, port: Int, backlog: Int, reusePort: Bool) throws(HTTPServerError) -> (Int32, HTTPRemoteAddress) {
        guard (0...65535).contains(port) else { throw .invalidConfiguration("port \(port) out of range") }
        guard backlog >= 1 else { throw .invalidConfiguration("backlog must be positive") }
        var name = host
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>? = nil
        let status = name.isEmpty || name == "*"
            ? getaddrinfo(nil, String(port), &hints, &result)
            : getaddrinfo(name, String(port), &hints, &result)
        guard status == 0, let info = result else {
            throw .socket("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(result) }

        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        let fd = socket(info.pointee.ai_family, type, 0)
        guard fd >= 0 else { throw .socket("socket: \(errnoText())") }
        var one: Int32 = 1
        var zero: Int32 = 0
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size)
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) }
        if info.pointee.ai_family == AF_INET6 {
            // "::" serves IPv4 too.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, size)
        }
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let text = errnoText()
            close(fd)
            throw .socket("bind \(host):\(port): \(text)")
        }
        #if canImport(Glibc)
        let listened = Glibc.listen(fd, Int32(clamping: backlog))
        #else
        let listened = Darwin.listen(fd, Int32(clamping: backlog))
        #endif
        guard listened == 0 else {
            let text = errnoText()
            close(fd)
            throw .socket("listen: \(text)")
        }
        setNonBlocking(fd)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let bound = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let address = bound == 0 ? describe(&storage) : HTTPRemoteAddress(host: name, port: port)
        return (fd, address)
    }

    enum AcceptResult {
        case accepted(Int32, HTTPRemoteAddress)
        case wouldBlock
        case failed(Int32)
    }

    static func accept(_ listener: Int32) -> AcceptResult {
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    #if canImport(Glibc)
                    Glibc.accept(listener, address, &length)
                    #else
                    Darwin.accept(listener, address, &length)
                    #endif
                }
            }
            if fd >= 0 {
                setNonBlocking(fd)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                #if !canImport(Glibc)
                var noSigPipe: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &noSigPipe, socklen_t(MemoryLayout<Int32>.size))
                #endif
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return .accepted(fd, describe(&storage))
            }
            let code = errno
            switch code {
            case EINTR, ECONNABORTED, EPROTO: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(code)
            }
        }
    }

    static func cString(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func closeDescriptor(_ fd: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    static func describe(_ storage: inout sockaddr_storage) -> HTTPRemoteAddress {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count))
                    return HTTPRemoteAddress(host: cString(buffer), port: Int(UInt16(bigEndian: sin.pointee.sin_port)))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var addr = sin6.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
                    var host = cString(buffer)
                    if host.hasPrefix("::ffff:"), host.contains(".") { host.removeFirst(7) }  // v4-mapped
                    return HTTPRemoteAddress(host: host, port: Int(UInt16(bigEndian: sin6.pointee.sin6_port)))
                }
            }
        default:
            return HTTPRemoteAddress(host: "unknown", port: 0)
        }
    }

    #if canImport(Glibc)
    static let sendFlags = Int32(MSG_NOSIGNAL)
    #else
    static let sendFlags: Int32 = 0
    #endif
}
