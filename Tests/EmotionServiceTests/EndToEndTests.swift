import Foundation
import Testing
@testable import EmotionService

/// The whole service on the tiny complete model (Tests/SharedFixtures/tiny-model): audio and
/// transcripts over HTTP -> turn embedder -> streams -> classifier -> online DED, against the
/// reference pipeline (Training/fixtures/make_tiny_service_model.py).
@Suite(.serialized) struct EndToEndTests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SharedFixtures/tiny-model").standardized

    struct Expected: Decodable {
        struct Turn: Decodable { let speaker: String; let audio: String?; let transcript: String }
        let dialogue: [Turn]
        let logits: [[Double]]
        let probabilities: [[Double]]
        let gates: [[Double]]
        let decoded_after_each_turn: [[Int]]
        let streams: [String]
    }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: model.appendingPathComponent("expected.json")))
    }

    static func body(_ turn: Expected.Turn, turnId: String? = nil) throws -> String {
        var object: [String: Any] = ["speaker": turn.speaker, "transcript": turn.transcript]
        if let clip = turn.audio {
            object["audio"] = try Data(contentsOf: model.appendingPathComponent("clips/\(clip)")).base64EncodedString()
        }
        if let turnId { object["turn_id"] = turnId }
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test func dialogueOverHTTPMatchesTheReferencePipeline() async throws {
        var options = ServiceHost.Options()
        options.http.port = 0
        let host = try ServiceHost.load(model: Self.model, options: options,
                                        logger: JSONLogger(output: FileHandle(forWritingAtPath: "/dev/null") ?? .standardError))
        let client = try LoopbackClient(port: try host.start().port)
        let exp = try Self.expected()
        let labels = ["ang", "hap", "neu", "sad"]
        for (i, turn) in exp.dialogue.enumerated() {
            let r = client.request("POST", "/v1/sessions/e2e/turns", json: try Self.body(turn))
            #expect(r.status == 200, "\(r.body)")
            let t = try #require(r.body["turn"] as? [String: Any])
            let probabilities = try #require(t["probabilities"] as? [String: Double])
            for (j, label) in labels.enumerated() {
                #expect(abs((probabilities[label] ?? -1) - exp.probabilities[i][j]) <= 1e-4, "turn \(i) \(label)")
            }
            let gates = try #require(t["gates"] as? [String: Double])
            for (j, name) in exp.streams.enumerated() {
                #expect(abs((gates[name] ?? -1) - exp.gates[i][j]) <= 1e-4, "turn \(i) gate \(name)")
            }
            let decoded = try #require(r.body["decoded"] as? [[String: Any]]).map { $0["emotion"] as? String }
            #expect(decoded == exp.decoded_after_each_turn[i].map { labels[$0] }, "turn \(i)")
        }
        let model = client.request("GET", "/v1/model")
        #expect(model.body["name"] as? String == "tiny-service-test-model")
        #expect((model.body["weights_sha256"] as? String)?.count == 64)
        let analysis = client.request("POST", "/v1/dialogues/analyze", json: """
            {"turns": [\(try exp.dialogue.map { try Self.body($0) }.joined(separator: ","))], "repeat_twice": false}
            """)
        #expect(analysis.status == 200)
        #expect((analysis.body["turns"] as? [[String: Any]])?.count == exp.dialogue.count)
        _ = await host.shutdown()
    }

    @Test func badAudioIsRefusedWith422AndTheSessionGoesOn() async throws {
        var options = ServiceHost.Options()
        options.http.port = 0
        let host = try ServiceHost.load(model: Self.model, options: options,
                                        logger: JSONLogger(output: FileHandle(forWritingAtPath: "/dev/null") ?? .standardError))
        let client = try LoopbackClient(port: try host.start().port)
        let junk = Data("this is not audio at all".utf8).base64EncodedString()
        let r = client.request("POST", "/v1/sessions/s/turns", json: #"{"speaker": "A", "audio": "\#(junk)"}"#)
        #expect(r.status == 422)
        #expect(((r.body["error"] as? [String: Any])?["code"] as? String) == "unreadable_audio")
        let ok = client.request("POST", "/v1/sessions/s/turns", json: #"{"speaker": "A", "transcript": "hello"}"#)
        #expect((ok.body["turn"] as? [String: Any])?["index"] as? Int == 0)
        _ = await host.shutdown()
    }
}

/// The real `emotion-server` process: SIGTERM drains, writes the sessions and exits 0; a new
/// process restores them.
@Suite(.serialized) struct ServerProcessTests {
    static func binary() throws -> URL {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("emotion-server")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        let built = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../.build/debug/emotion-server").standardized
        guard FileManager.default.isExecutableFile(atPath: built.path) else {
            throw POSIXError(.ENOENT)
        }
        return built
    }

    final class Server {
        let process = Process()
        let stderr = Pipe()
        var port = 0
        private var log = Data()

        init(state: URL) throws {
            process.executableURL = try ServerProcessTests.binary()
            process.arguments = ["--model", EndToEndTests.model.path, "--port", "0", "--state-dir", state.path,
                                 "--snapshot-interval", "0"]
            process.standardError = stderr
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            let deadline = Date().addingTimeInterval(60)
            while port == 0 && Date() < deadline {
                let chunk = stderr.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                log.append(chunk)
                for line in String(decoding: log, as: UTF8.self).split(separator: "\n") where line.contains("\"listening\"") {
                    if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                       let address = object["address"] as? String, let p = Int(address.split(separator: ":").last ?? "") {
                        port = p
                    }
                }
            }
        }

        /// Sends SIGTERM and returns the exit status and everything logged.
        func terminate() -> (status: Int32, log: String) {
            process.terminate()
            let rest = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: log + rest, as: UTF8.self))
        }
    }

    @Test func sigtermDrainsWritesStateAndARestartRestoresIt() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("server-state-\(UUID())")
        defer { try? FileManager.default.removeItem(at: state) }
        let exp = try EndToEndTests.expected()
        let first = try Server(state: state)
        #expect(first.port > 0)
        let client = try LoopbackClient(port: first.port)
        for (i, turn) in exp.dialogue.prefix(3).enumerated() {
            #expect(client.request("POST", "/v1/sessions/rolling/turns", json: try EndToEndTests.body(turn, turnId: "t\(i)")).status == 200)
        }
        let (status, log) = first.terminate()
        #expect(status == 0, "\(log)")
        #expect(log.contains("\"sessions written\""))
        #expect(!log.contains("Hello, how can I help"), "transcripts must not be logged")

        let second = try Server(state: state)
        let client2 = try LoopbackClient(port: second.port)
        let session = client2.request("GET", "/v1/sessions/rolling")
        #expect((session.body["turns"] as? [Any])?.count == 3)
        let next = client2.request("POST", "/v1/sessions/rolling/turns", json: try EndToEndTests.body(exp.dialogue[3]))
        let labels = ["ang", "hap", "neu", "sad"]
        let decoded = (next.body["decoded"] as? [[String: Any]])?.map { $0["emotion"] as? String }
        #expect(decoded == exp.decoded_after_each_turn[3].map { labels[$0] })
        #expect(second.terminate().status == 0)
    }
}
