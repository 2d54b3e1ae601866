import Foundation
import Testing
import TestSupport
@testable import EmotionService

/// Issue #12: the kernels are chosen by the CPU's feature bits and `EMOTION_KERNELS` forces each
/// path for the whole process. The real `emotion-server` on every path this CPU has (scalar
/// always) reports it in `/v1/model` and its log, and answers the tiny model's dialogue as the
/// PyTorch reference does (expected.json), towers, classifier and decoder included.
@Suite(.serialized) struct KernelPathProcessTests {
    static let paths = ["scalar", "avx2", "avx512"]

    func serve(_ path: String?) async throws -> (kernels: String?, probabilities: [[String: Double]], log: String) {
        let server = try ServerUnderTest(arguments: [], environment: path.map { ["EMOTION_KERNELS": $0] } ?? [:])
        let port = try await offPool { server.waitUntilListening() }
        try #require(port > 0, "\(server.log)")
        let exp = try EndToEndTests.expected()
        let (kernels, probabilities) = try await offPool { () throws -> (String?, [[String: Double]]) in
            let client = try LoopbackClient(port: port)
            let runtime = client.request("GET", "/v1/model").body["runtime"] as? [String: Any]
            var probabilities: [[String: Double]] = []
            for turn in exp.dialogue {
                let r = client.request("POST", "/v1/sessions/paths/turns", json: try EndToEndTests.body(turn))
                probabilities.append(((r.body["turn"] as? [String: Any])?["probabilities"] as? [String: Double]) ?? [:])
            }
            return (runtime?["kernels"] as? String, probabilities)
        }
        kill(server.process.processIdentifier, SIGTERM)
        _ = try await offPool { server.waitForExit() }
        return (kernels, probabilities, server.log)
    }

    @Test func everyPathTheCPUHasAnswersAsTheReference() async throws {
        let best = try #require(try await serve(nil).kernels)
        let bestLevel = try #require(Self.paths.firstIndex(of: best), "\(best)")
        let exp = try EndToEndTests.expected()
        let labels = ["ang", "hap", "neu", "sad"]
        for path in Self.paths.prefix(bestLevel + 1) {
            let (kernels, probabilities, log) = try await serve(path)
            #expect(kernels == path, "EMOTION_KERNELS=\(path) runs \(kernels ?? "nothing")")
            #expect(log.contains(#""kernels":"\#(path)""#) || log.contains(#""kernels": "\#(path)""#), "\(path): the start-up log names it")
            #expect(probabilities.count == exp.dialogue.count)
            for (i, row) in probabilities.enumerated() {
                for (j, label) in labels.enumerated() {
                    #expect(abs((row[label] ?? -1) - exp.probabilities[i][j]) <= 1e-4, "\(path): turn \(i) \(label)")
                }
            }
        }
    }
}
