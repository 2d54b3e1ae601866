import Conversation
import DialogicalEmotionDecoder
import Foundation
import ConversationTestSupport
import Testing
@testable import EmotionService

/// A minimal HTTP/1.1 client over a loopback socket, reading one response at a time
/// (Content-Length bodies), so that tests speak to the real server.
final class LoopbackClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
    }

    deinit { if !closed { close(fd) } }

    /// Closes the connection abortively (SO_LINGER 0: a reset, as a client that gives up or dies).
    /// Ends the client's sending side (FIN), as a proxy does when its own client has left.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    func abort() {
        guard !closed else { return }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
        closed = true
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    func request(_ method: String, _ path: String, json: String? = nil, headers: [String] = []) -> (status: Int, headers: [String: String], body: [String: Any]) {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
        for h in headers { head += h + "\r\n" }
        if let json {
            head += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json
        } else {
            head += "\r\n"
        }
        send(head)
        let r = readResponse()
        return (r.status, r.headers, (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:])
    }

    /// Reads one response; status 0 when the connection closed first.
    func readResponse() -> (status: Int, headers: [String: String], body: [UInt8]) {
        func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { return false }
            buffer += chunk[0..<n]
            return true
        }
        var headEnd: Int?
        while headEnd == nil {
            if let r = buffer.firstRange(of: [13, 10, 13, 10]) { headEnd = r.upperBound; break }
            guard fill() else { return (0, [:], []) }
        }
        guard let end = headEnd else { return (0, [:], []) }
        let lines = String(decoding: buffer[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while buffer.count < end + length { guard fill() else { break } }
        let body = Array(buffer[end..<min(buffer.count, end + length)])
        buffer.removeFirst(min(buffer.count, end + length))
        return (status, headers, body)
    }
}

extension ServiceHost.Options {
    /// A service on a free loopback port, snapshots only at shutdown.
    static func loopback(maxBodyBytes: Int, stateDirectory: URL? = nil) -> ServiceHost.Options {
        var options = ServiceHost.Options()
        options.http.port = 0
        options.http.limits.lengthRequiredMethods = ["POST"]
        options.http.limits.maxBodyBytes = maxBodyBytes
        options.stateDirectory = stateDirectory
        options.snapshotInterval = 0
        return options
    }
}

@Suite(.serialized) struct ServerSocketTests {
    func makeHost(stateDirectory: URL? = nil, configure: (inout ServiceHost.Options) -> Void = { _ in }) throws -> ServiceHost {
        var options = ServiceHost.Options.loopback(maxBodyBytes: 64 * 1024, stateDirectory: stateDirectory)
        options.replicaId = "test-replica"
        configure(&options)
        let engine = try ConversationEngine(classifier: try makeClassifier(), encoder: FakeEncoder(),
                                            ded: try DEDParameters(p0: 0.2), configuration: options.conversation)
        return try ServiceHost(engine: engine, description: ["name": "socket-test"], options: options,
                               logger: JSONLogger(output: FileHandle(forWritingAtPath: "/dev/null") ?? .standardError))
    }

    @Test func turnsSessionsAndErrorsOverOneKeepAliveConnection() async throws {
        let host = try makeHost()
        let address = try host.start()
        let client = try LoopbackClient(port: address.port)
        let a = client.request("POST", "/v1/sessions/call-1/turns", json: #"{"speaker": "A", "transcript": "hello"}"#,
                               headers: ["X-Request-Id: abc-123"])
        #expect(a.status == 200)
        #expect(a.headers["x-request-id"] == "abc-123")
        #expect(a.headers["x-replica-id"] == "test-replica")
        #expect((a.body["turn"] as? [String: Any])?["index"] as? Int == 0)
        let b = client.request("POST", "/v1/sessions/call-1/turns", json: #"{"speaker": "B", "transcript": "hi there"}"#)
        #expect((b.body["decoded"] as? [Any])?.count == 2)
        #expect(client.request("GET", "/v1/sessions/call-1").status == 200)
        #expect(client.request("GET", "/readyz").status == 200)
        // 415: a body that is not JSON.
        client.send("POST /v1/sessions/call-1/turns HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\n\r\na=b&c")
        let r415 = client.readResponse()
        #expect(r415.status == 415)
        #expect(String(decoding: r415.body, as: UTF8.self).contains("unsupported_media_type"))
        // Still the same connection.
        #expect(client.request("GET", "/healthz").status == 200)
        _ = await host.shutdown()
    }

    @Test func lengthRequiredAndPayloadTooLarge() async throws {
        let host = try makeHost()
        let address = try host.start()
        let c1 = try LoopbackClient(port: address.port)
        c1.send("POST /v1/sessions/s/turns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n")
        #expect(c1.readResponse().status == 411)
        let c2 = try LoopbackClient(port: address.port)
        c2.send("POST /v1/sessions/s/turns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999\r\n\r\n")
        let r = c2.readResponse()
        #expect(r.status == 413)
        #expect(String(decoding: r.body, as: UTF8.self).contains("\"code\""))
        _ = await host.shutdown()
    }

    @Test func shutdownWritesSessionsThatANewProcessRestores() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("host-state-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try makeHost(stateDirectory: directory)
        let port = try first.start().port
        let client = try LoopbackClient(port: port)
        for (i, text) in ["one", "two", "three"].enumerated() {
            let r = client.request("POST", "/v1/sessions/keep-me/turns", json: #"{"speaker": "\#(i % 2 == 0 ? "A" : "B")", "transcript": "\#(text)", "turn_id": "t\#(i)"}"#)
            #expect(r.status == 200)
        }
        #expect(await first.shutdown())
        #expect(!first.isReady)

        let second = try makeHost(stateDirectory: directory)
        let port2 = try second.start().port
        let client2 = try LoopbackClient(port: port2)
        let session = client2.request("GET", "/v1/sessions/keep-me")
        #expect(session.status == 200)
        #expect((session.body["turns"] as? [[String: Any]])?.map { $0["transcript"] as? String } == ["one", "two", "three"])
        // A retry of a turn from before the restart is recognised; the next turn continues the dialogue.
        let retry = client2.request("POST", "/v1/sessions/keep-me/turns", json: #"{"speaker": "B", "transcript": "two", "turn_id": "t1"}"#)
        #expect(retry.body["replayed"] as? Bool == true)
        let next = client2.request("POST", "/v1/sessions/keep-me/turns", json: #"{"speaker": "B", "transcript": "four"}"#)
        #expect((next.body["turn"] as? [String: Any])?["index"] as? Int == 3)
        _ = await second.shutdown()
    }
}
