import COpenSSL

/// A TLS server context (SSL_CTX): certificate chain, key, TLS 1.2 or later. Shared by every
/// connection of a listener; OpenSSL allows concurrent use of a configured context.
final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    init(configuration: TLSConfiguration) throws(HTTPServerError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw .tls("SSL_CTX_new failed: \(TLSContext.errorString())")
        }
        context = ctx
        let minimum = configuration.minimumVersion == .tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(minimum), nil) == 1 else {
            throw .tls("cannot set the minimum TLS version: \(TLSContext.errorString())")
        }
        // SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION
        // (function-like macros in ssl.h, not visible to Swift).
        let options: UInt64 = (1 << 17) | (1 << 22) | (1 << 30)
        _ = SSL_CTX_set_options(ctx, options)
        // Free the per-connection record buffers while a connection is idle.
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, Int(SSL_MODE_RELEASE_BUFFERS), nil)
        if let ciphers = configuration.cipherList, SSL_CTX_set_cipher_list(ctx, ciphers) != 1 {
            throw .tls("invalid cipher list: \(TLSContext.errorString())")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, configuration.certificateChainPath) == 1 else {
            throw .tls("cannot load the certificate chain \(configuration.certificateChainPath): \(TLSContext.errorString())")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, configuration.privateKeyPath, SSL_FILETYPE_PEM) == 1 else {
            throw .tls("cannot load the private key \(configuration.privateKeyPath): \(TLSContext.errorString())")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw .tls("the private key does not match the certificate: \(TLSContext.errorString())")
        }
    }

    deinit { SSL_CTX_free(context) }

    /// The calling thread's OpenSSL error queue as text (and cleared).
    static func errorString() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages.isEmpty ? "unknown error" : messages.joined(separator: "; ")
    }
}

/// One connection's TLS session over memory BIOs: a byte transformer, so the connection does all
/// socket I/O itself and the HTTP code is the same with and without TLS.
///
/// Ciphertext from the socket goes in through `feed`, plaintext comes out; plaintext to send goes
/// in through `write` (held until the handshake completes), ciphertext to send comes out of
/// `takeOutput`. Used only on its connection's queue; the thread's error queue is cleared before
/// every OpenSSL call because Dispatch may run the queue on different threads.
final class TLSEngine {
    enum FeedResult {
        case ok
        /// close_notify received.
        case closed
        case failed(String)
    }

    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer
    private var pendingPlaintext: [UInt8] = []
    private var shutdownSent = false

    init(context: TLSContext) throws(HTTPServerError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw .tls("SSL_new failed: \(TLSContext.errorString())") }
        guard let r = BIO_new(BIO_s_mem()), let w = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .tls("BIO_new failed")
        }
        self.ssl = ssl
        readBIO = r
        writeBIO = w
        SSL_set_bio(ssl, r, w)  // the SSL now owns both BIOs
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    var handshakeComplete: Bool { SSL_is_init_finished(ssl) == 1 }
    var hasPendingPlaintext: Bool { !pendingPlaintext.isEmpty }

    /// Feeds ciphertext; appends the plaintext it yields.
    func feed(_ ciphertext: UnsafeRawBufferPointer, plaintext: inout [UInt8]) -> FeedResult {
        ERR_clear_error()
        var offset = 0
        while offset < ciphertext.count, let base = ciphertext.baseAddress {
            let n = BIO_write(readBIO, base + offset, Int32(min(ciphertext.count - offset, Int(Int32.max))))
            if n <= 0 { return .failed("BIO_write failed") }
            offset += Int(n)
        }
        if !handshakeComplete {
            let r = SSL_do_handshake(ssl)
            if r != 1 {
                let error = SSL_get_error(ssl, r)
                if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return .ok }
                return .failed("handshake: \(TLSContext.errorString())")
            }
            flushPendingPlaintext()
        }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                plaintext.append(contentsOf: chunk[0..<Int(n)])
                continue
            }
            let error = SSL_get_error(ssl, n)
            switch error {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .ok
            case SSL_ERROR_ZERO_RETURN: return .closed
            default: return .failed("read: \(TLSContext.errorString())")
            }
        }
    }

    /// Encrypts plaintext (or holds it until the handshake is complete).
    func write(_ plaintext: [UInt8]) {
        pendingPlaintext.append(contentsOf: plaintext)
        if handshakeComplete { flushPendingPlaintext() }
    }

    private func flushPendingPlaintext() {
        guard !pendingPlaintext.isEmpty, !shutdownSent else { return }
        ERR_clear_error()
        var offset = 0
        while offset < pendingPlaintext.count {
            let n = pendingPlaintext.withUnsafeBytes { raw -> Int32 in
                guard let base = raw.baseAddress else { return 0 }
                return SSL_write(ssl, base + offset, Int32(min(raw.count - offset, 1 << 30)))
            }
            if n <= 0 { break }
            offset += Int(n)
        }
        pendingPlaintext.removeFirst(offset)
    }

    /// Queues close_notify.
    func shutdown() {
        guard !shutdownSent else { return }
        shutdownSent = true
        if handshakeComplete {
            ERR_clear_error()
            _ = SSL_shutdown(ssl)
        }
    }

    /// Ciphertext waiting to be sent.
    func takeOutput(into output: inout [UInt8]) {
        let pending = Int(BIO_ctrl_pending(writeBIO))
        guard pending > 0 else { return }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: pending))
        let n = output.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return 0 }
            return BIO_read(writeBIO, base + start, Int32(pending))
        }
        output.removeLast(pending - max(0, Int(n)))
    }
}
