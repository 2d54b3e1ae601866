import Foundation
import Testing
import TestSupport
@testable import EmotionService

/// Issue #12: the kernels are chosen by the CPU's feature bits and `EMOTION_KERNELS` forces each
/// path for the whole process. The real `emotion-server` on every path this CPU has (scalar
/// always) reports it in `/v1/model` and its log, and answers the tiny model's dialogue as the
/// PyTorch reference does (expected.json), towers, classifier and decoder included.
@Suite(.serialized) struct KernelPathProcessTests {
    static let paths = ["scalar", "avx2", "avx512", "avx512_bf16"]

    func serve(_ path: String?, precision: String? = nil) async throws
        -> (kernels: String?, precision: String?, probabilities: [[String: Double]], log: String) {
        var environment = path.map { ["EMOTION_KERNELS": $0] } ?? [:]
        if let precision { environment["EMOTION_WEIGHT_PRECISION"] = precision }
        let server = try ServerUnderTest(arguments: [], environment: environment)
        let port = try await offPool { server.waitUntilListening() }
        try #require(port > 0, "\(server.log)")
        let exp = try EndToEndTests.expected()
        let (kernels, held, probabilities) = try await offPool { () throws -> (String?, String?, [[String: Double]]) in
            let client = try LoopbackClient(port: port)
            let model = client.request("GET", "/v1/model").body
            let runtime = model["runtime"] as? [String: Any]
            var probabilities: [[String: Double]] = []
            for turn in exp.dialogue {
                let r = client.request("POST", "/v1/sessions/paths/turns", json: try EndToEndTests.body(turn))
                probabilities.append(((r.body["turn"] as? [String: Any])?["probabilities"] as? [String: Double]) ?? [:])
            }
            return (runtime?["kernels"] as? String, model["weight_precision"] as? String, probabilities)
        }
        kill(server.process.processIdentifier, SIGTERM)
        _ = try await offPool { server.waitForExit() }
        return (kernels, held, probabilities, server.log)
    }

    @Test func everyPathTheCPUHasAnswersAsTheReference() async throws {
        let best = try #require(try await serve(nil).kernels)
        let bestLevel = try #require(Self.paths.firstIndex(of: best), "\(best)")
        let exp = try EndToEndTests.expected()
        let labels = ["ang", "hap", "neu", "sad"]
        for path in Self.paths.prefix(bestLevel + 1) {
            let (kernels, precision, probabilities, log) = try await serve(path)
            #expect(precision == "f32")
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

    /// bf16 and f16 weights (`EMOTION_WEIGHT_PRECISION`) on every path: reported, logged, and the
    /// answers within the accuracy guard of the float32 reference (probabilities within 1e-2,
    /// the same label every turn).
    @Test(arguments: ["bf16", "f16"])
    func sixteenBitWeightsOnEveryPathStayWithinTheGuard(_ held: String) async throws {
        let best = try #require(try await serve(nil).kernels)
        let bestLevel = try #require(Self.paths.firstIndex(of: best), "\(best)")
        let exp = try EndToEndTests.expected()
        let labels = ["ang", "hap", "neu", "sad"]
        for path in Self.paths.prefix(bestLevel + 1) {
            let (kernels, precision, probabilities, log) = try await serve(path, precision: held)
            #expect(kernels == path && precision == held, "\(path): \(kernels ?? "-") \(precision ?? "-")")
            #expect(log.contains(#""weight_precision":"\#(held)""#) || log.contains(#""weight_precision": "\#(held)""#),
                    "\(path): the log names the weight precision")
            try #require(probabilities.count == exp.dialogue.count)
            for (i, row) in probabilities.enumerated() {
                let want = exp.probabilities[i]
                let got = labels.map { row[$0] ?? -1 }
                for j in labels.indices { #expect(abs(got[j] - want[j]) <= 1e-2, "\(path): turn \(i) \(labels[j])") }
                #expect(got.indices.max { got[$0] < got[$1] } == want.indices.max { want[$0] < want[$1] }, "\(path): turn \(i) label")
            }
        }
    }
}
