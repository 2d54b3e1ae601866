import COpenSSL
import Foundation
import Testing
import TestSupport
@testable import HTTPServer

@Suite("TLS")
struct TLSTests {
    @Test func roundTripWithKeepAlive() async throws {
        let (certificate, key) = try makeSelfSignedCertificate()
        let server = try TestServer(tls: TLSConfiguration(certificateChainPath: certificate, privateKeyPath: key))
        let (first, second, version) = try await offPool {
            let client = try server.client()
            try client.startTLS(trustedCertificate: certificate)
            let version = SSL_version(client.ssl)
            client.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world")
            let first = try client.readResponse()
            client.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            return (first, try client.readResponse(), version)
        }
        #expect(version >= TLS1_2_VERSION)
        #expect(first.status == 200 && first.bodyText == "hello world")
        #expect(first.headers["x-secure"] == "true")
        #expect(second.bodyText == "abc" && second.headers["x-index"] == "1")
        await server.stop()
    }

    @Test func errorsAndLargeResponsesOverTLS() async throws {
        let (certificate, key) = try makeSelfSignedCertificate()
        let server = try TestServer(tls: TLSConfiguration(certificateChainPath: certificate, privateKeyPath: key))
        let (big, refused, closed) = try await offPool {
            let client = try server.client()
            try client.startTLS(trustedCertificate: certificate)
            client.send(get("/big?n=1000000"))
            let big = try client.readResponse()
            client.send("GET / HTTP/1.1\r\nHost : a\r\n\r\n")
            let refused = try client.readResponse()
            return (big, refused, client.waitForClose())
        }
        #expect(big.body.count == 1_000_000)
        #expect(refused.status == 400 && refused.errorCode == "bad_request")
        #expect(closed)
        await server.stop()
    }

    @Test func plaintextOnTheTLSPortIsDroppedAndTLSStillWorks() async throws {
        let (certificate, key) = try makeSelfSignedCertificate()
        let server = try TestServer(tls: TLSConfiguration(certificateChainPath: certificate, privateKeyPath: key))
        let (plainReply, after) = try await offPool {
            let plain = try server.client()
            plain.send(get("/echo"))
            let reply = plain.readToEnd()
            let client = try server.client()
            try client.startTLS(trustedCertificate: certificate)
            client.send(get("/echo"))
            return (reply, try client.readResponse())
        }
        #expect(!String(decoding: plainReply, as: UTF8.self).contains("HTTP/1.1"))
        #expect(after.status == 200)
        let kinds = server.diagnostics.withLock { $0.map(\.kind) }
        #expect(kinds.contains(.tlsError))
        await server.stop()
    }

    @Test func badCertificatePathsFailAtStart() throws {
        let (certificate, _) = try makeSelfSignedCertificate()
        let server = HTTPServer(configuration: HTTPServerConfiguration(
            host: "127.0.0.1", port: 0,
            tls: TLSConfiguration(certificateChainPath: certificate, privateKeyPath: "/nonexistent/key.pem")),
            handler: TestHandler())
        #expect {
            try server.start()
        } throws: { error in
            guard case HTTPServerError.tls(let message)? = error as? HTTPServerError else { return false }
            return message.contains("private key")
        }
    }
}
