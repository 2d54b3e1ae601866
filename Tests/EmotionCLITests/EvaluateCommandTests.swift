import CLITestSupport
import Conversation
import DialogicalEmotionDecoder
import EmotionService
import Foundation
import Testing

/// `emotion evaluate` end to end on the tiny complete model (Tests/SharedFixtures/tiny-model):
/// its answers are checked against the reference pipeline's (expected.json, PyTorch), against the
/// service's own engine (whole-dialogue analysis and turn-by-turn sessions, in process), and its
/// metrics against figures recomputed here from its per-turn output.
@Suite("emotion evaluate")
struct EvaluateCommandTests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SharedFixtures/tiny-model").standardized
    static let labels = ["ang", "hap", "neu", "sad"]

    struct Turn {
        var id: String?
        var speaker: String
        var transcript: String?
        var audio: String?
        var label: String?
        /// With a nil label: leave the field out instead of writing null.
        var labelAbsent = false
    }

    let cli: CLIRunner
    let directory: TemporaryDirectory
    let expected: EndToEndReference

    /// The reference pipeline's answers for its 6-turn dialogue (3 speakers, audio-only and
    /// text-only turns).
    struct EndToEndReference: Decodable {
        struct Turn: Decodable { let speaker: String; let audio: String?; let transcript: String }
        let dialogue: [Turn]
        let probabilities: [[Double]]
        let gates: [[Double]]
        let decoded_after_each_turn: [[Int]]
        let streams: [String]
    }

    init() throws {
        cli = try CLIRunner.locate()
        directory = try TemporaryDirectory()
        expected = try JSONDecoder().decode(EndToEndReference.self,
                                            from: Data(contentsOf: Self.model.appendingPathComponent("expected.json")))
        // Clips next to the input file, so relative audio paths resolve against its directory.
        let clips = directory.url.appendingPathComponent("clips")
        try FileManager.default.createDirectory(at: clips, withIntermediateDirectories: true)
        for name in ["agent.wav", "caller.wav", "long.wav"] {
            try FileManager.default.copyItem(at: Self.model.appendingPathComponent("clips/\(name)"),
                                             to: clips.appendingPathComponent(name))
        }
    }

    // MARK: - Inputs

    /// The reference dialogue with labels (relative audio paths), and a second dialogue with an
    /// absolute audio path, numeric and missing ids, an out-of-set label and missing labels.
    var mixed: [(String, [Turn])] {
        let labels: [String?] = ["neu", "ang", nil, "ang", "exc", "hap"]
        let first = expected.dialogue.enumerated().map { i, t in
            Turn(id: "u\(i + 1)", speaker: t.speaker, transcript: t.transcript,
                 audio: t.audio.map { "clips/\($0)" }, label: labels[i])
        }
        let second = [
            Turn(id: "1", speaker: "F", transcript: nil, audio: Self.model.appendingPathComponent("clips/long.wav").path, label: "sad"),
            Turn(id: nil, speaker: "M", transcript: "Thank you, that's wonderful news.", audio: nil, label: "hap"),
            Turn(id: "3", speaker: "F", transcript: "Hello, how can I help you today?", audio: "clips/caller.wav", label: "neu"),
            Turn(id: "4", speaker: "M", transcript: "I'm sorry to hear that. Let me check.", audio: "clips/agent.wav", label: "neu"),
            Turn(id: "5", speaker: "M", transcript: "", audio: "clips/agent.wav", label: nil, labelAbsent: true),
            Turn(id: "6", speaker: "F", transcript: "My order never arrived and nobody called me back!", audio: nil, label: "ang"),
        ]
        return [("Ses01F_impro01", first), ("call \"7\" — Zoë", second)]
    }

    /// Every turn with both audio and a transcript (for the --modality runs).
    var full: [(String, [Turn])] {
        let texts = ["Hello, how can I help you today?", "My order never arrived and nobody called me back!",
                     "I'm sorry to hear that. Let me check.", "Café crème, naïve résumé 😀 — 你好"]
        let clips = ["agent.wav", "caller.wav", "long.wav", "caller.wav"]
        let speakers = ["A", "B", "A", "B"]
        let labels: [String?] = ["neu", "ang", "sad", nil]
        return [("full", (0..<4).map { Turn(id: "f\($0)", speaker: speakers[$0], transcript: texts[$0],
                                            audio: "clips/\(clips[$0])", label: labels[$0]) })]
    }

    static func jsonl(_ dialogues: [(String, [Turn])]) throws -> String {
        try dialogues.map { name, turns in
            let objects: [[String: Any]] = turns.map { t in
                var o: [String: Any] = ["speaker": t.speaker]
                if !t.labelAbsent { o["label"] = t.label.map { $0 as Any } ?? NSNull() }
                if let id = t.id { o["id"] = Int(id).map { $0 as Any } ?? id }
                if let transcript = t.transcript { o["transcript"] = transcript }
                if let audio = t.audio { o["audio"] = audio }
                return o
            }
            let data = try JSONSerialization.data(withJSONObject: ["dialogue": name, "turns": objects])
            return String(decoding: data, as: UTF8.self)
        }.joined(separator: "\n") + "\n"
    }

    func write(_ name: String, _ dialogues: [(String, [Turn])]) throws -> String {
        try directory.write(name, try Self.jsonl(dialogues))
    }

    static func parse(_ lines: [String]) throws -> [[String: Any]] {
        try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func evaluate(_ input: String, _ extra: [String] = []) throws -> (result: CLIRunner.Result, turns: [[String: Any]]) {
        let result = try cli.run(["evaluate", "--model", Self.model.path, "--input", input, "--output", "-"] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        return (result, try Self.parse(result.stdoutLines))
    }

    static func turnInputs(_ turns: [Turn], base: URL) throws -> [TurnInput] {
        try turns.map { t in
            let audio = try t.audio.map { try Data(contentsOf: $0.hasPrefix("/") ? URL(fileURLWithPath: $0) : base.appendingPathComponent($0)) }
            return TurnInput(speaker: t.speaker, transcript: t.transcript ?? "", audio: audio)
        }
    }

    // MARK: - Tests

    @Test func answersEqualTheServicesAndTheReferencePipelines() async throws {
        let dialogues = mixed
        let (_, rows) = try evaluate(try write("mixed.jsonl", dialogues))
        #expect(rows.count == dialogues.reduce(0) { $0 + $1.1.count })

        // The service's engine, in process: whole-dialogue analysis (as /v1/dialogues/analyze) and
        // one session per dialogue fed turn by turn (as /v1/sessions/{id}/turns).
        let host = try ServiceHost.load(model: Self.model, options: ServiceHost.Options(), maxAudioSeconds: 600)
        var offset = 0
        for (index, (name, turns)) in dialogues.enumerated() {
            let inputs = try Self.turnInputs(turns, base: directory.url)
            let analysis = try await host.engine.analyze(inputs, repeatTwice: true)
            var outcomes: [TurnOutcome] = []
            for input in inputs { outcomes.append(try await host.engine.submit(sessionId: "s\(index)", turn: input)) }
            for (i, turn) in turns.enumerated() {
                let row = rows[offset + i]
                #expect(row["dialogue"] as? String == name)
                #expect(row["id"] as? String == turn.id, "\(name) \(i)")
                #expect(row["turn"] as? Int == i)
                #expect(row["speaker"] as? String == turn.speaker)
                #expect(row["label"] as? String == turn.label)
                let probabilities = try #require(row["probabilities"] as? [Double])
                let logits = try #require(row["logits"] as? [Double])
                let gates = try #require(row["gates"] as? [String: Double])
                let served = analysis.classifications[i], session = outcomes[i].turn
                for j in Self.labels.indices {
                    #expect(abs(probabilities[j] - Double(served.probabilities[j])) <= 1e-6, "\(name) \(i)")
                    #expect(abs(probabilities[j] - Double(session.probabilities[j])) <= 1e-6, "\(name) \(i)")
                    #expect(abs(logits[j] - Double(served.logits[j])) <= 1e-5, "\(name) \(i)")
                }
                #expect(gates.count == 12)
                for (s, stream) in expected.streams.enumerated() {
                    #expect(abs((gates[stream] ?? -1) - Double(served.gates[s])) <= 1e-6, "\(name) \(i) \(stream)")
                }
                #expect(row["predicted"] as? String == Self.labels[session.label])
                #expect(row["online"] as? String == Self.labels[outcomes.last!.decoded[i]], "\(name) \(i)")
                #expect(row["offline"] as? String == Self.labels[analysis.decoded[i]], "\(name) \(i)")
            }
            offset += turns.count
        }
        // The first dialogue is the reference pipeline's (PyTorch): same tolerance as the service's test.
        for (i, want) in expected.probabilities.enumerated() {
            let got = try #require(rows[i]["probabilities"] as? [Double])
            for j in want.indices { #expect(abs(got[j] - want[j]) <= 1e-4, "reference turn \(i)") }
            let gates = try #require(rows[i]["gates"] as? [String: Double])
            for (s, stream) in expected.streams.enumerated() {
                #expect(abs((gates[stream] ?? -1) - expected.gates[i][s]) <= 1e-4, "reference turn \(i) \(stream)")
            }
            #expect(rows[i]["online"] as? String == Self.labels[expected.decoded_after_each_turn.last![i]])
        }
        _ = await host.shutdown()
    }

    @Test func metricsAgreeWithThePerTurnOutput() throws {
        let input = try write("mixed.jsonl", mixed)
        let metricsPath = directory.url.appendingPathComponent("metrics.json").path
        let (result, rows) = try evaluate(input, ["--metrics", metricsPath])
        let metrics = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metricsPath))) as? [String: Any])

        // Recomputed here, independently of DialogicalEmotionDecoder.Evaluation.
        var gold: [Int] = []
        var predictions: [String: [Int]] = ["classifier": [], "ded_online": [], "ded_offline": []]
        for row in rows {
            let probabilities = try #require(row["probabilities"] as? [Double])
            let argmax = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
            #expect(row["predicted"] as? String == Self.labels[argmax])
            guard let label = row["label"] as? String, let g = Self.labels.firstIndex(of: label) else { continue }
            gold.append(g)
            for (key, field) in [("classifier", "predicted"), ("ded_online", "online"), ("ded_offline", "offline")] {
                let name = try #require(row[field] as? String)
                predictions[key]!.append(try #require(Self.labels.firstIndex(of: name)))
            }
        }
        #expect(gold.count == 9)  // 12 turns: one "exc", one null and one absent label are context
        #expect(metrics["dialogues"] as? Int == 2)
        #expect(metrics["turns"] as? Int == 12)
        #expect(metrics["scored_turns"] as? Int == 9)
        #expect(metrics["labels"] as? [String] == Self.labels)
        #expect(metrics["modality"] as? String == "both")
        let model = try #require(metrics["model"] as? [String: Any])
        #expect(model["name"] as? String == "tiny-service-test-model")
        #expect(model["weights_sha256"] as? String == (try Self.sha256(Self.model.appendingPathComponent("weights.safetensors"))))

        for (key, predicted) in predictions {
            let section = try #require(metrics[key] as? [String: Any], "\(key)")
            var confusion = Array(repeating: [Int](repeating: 0, count: 4), count: 4)
            for (g, p) in zip(gold, predicted) { confusion[g][p] += 1 }
            #expect(section["confusion"] as? [[Int]] == confusion, "\(key)")
            #expect(section["count"] as? Int == gold.count)
            let correct = (0..<4).reduce(0) { $0 + confusion[$1][$1] }
            let accuracy = Double(correct) / Double(gold.count)
            var recalls: [Double] = [], f1: [Int: Double] = [:]
            for c in 0..<4 {
                let support = confusion[c].reduce(0, +), predictedCount = (0..<4).reduce(0) { $0 + confusion[$1][c] }
                if support > 0 { recalls.append(Double(confusion[c][c]) / Double(support)) }
                if support > 0 || predictedCount > 0 {
                    let tp = Double(confusion[c][c])
                    f1[c] = tp == 0 ? 0 : 2 * tp / Double(support + predictedCount)
                }
            }
            let uar = recalls.reduce(0, +) / Double(recalls.count)
            let weighted = (0..<4).reduce(0.0) { $0 + (f1[$1] ?? 0) * Double(confusion[$1].reduce(0, +)) } / Double(gold.count)
            let macro = f1.values.reduce(0, +) / Double(f1.count)
            #expect(abs((section["accuracy"] as? Double ?? -1) - accuracy) <= 1e-12, "\(key)")
            #expect(abs((section["uar"] as? Double ?? -1) - uar) <= 1e-12, "\(key)")
            #expect(abs((section["weighted_f1"] as? Double ?? -1) - weighted) <= 1e-12, "\(key)")
            #expect(abs((section["macro_f1"] as? Double ?? -1) - macro) <= 1e-12, "\(key)")
            #expect(result.stderrLines.contains(String(format: "%@: accuracy %.4f, UAR %.4f, weighted F1 %.4f, macro F1 %.4f",
                                                       key, accuracy, uar, weighted, macro)), "\(result.stderr)")
        }
        #expect(result.stderrLines.contains("dialogues: 2, turns: 12, scored turns: 9 (not scored: (none) 2, exc 1)"),
                "\(result.stderr)")
    }

    @Test func handCheckedMetrics() throws {
        // The tiny random model answers "neu" for these turns (checked below), so the figures are
        // known by hand: gold neu, ang, sad, neu -> 2 of 4 right; recalls neu 1, ang 0, sad 0 ->
        // UAR 1/3; F1 neu 2*2/(2+4) = 2/3, others 0 -> weighted (2 * 2/3) / 4 = 1/3, macro 2/9.
        let dialogue = [("hand", [
            Turn(id: "h1", speaker: "A", transcript: "Hello, how can I help you today?", audio: "clips/agent.wav", label: "neu"),
            Turn(id: "h2", speaker: "B", transcript: "My order never arrived and nobody called me back!", audio: "clips/caller.wav", label: "ang"),
            Turn(id: "h3", speaker: "A", transcript: "I'm sorry to hear that. Let me check.", audio: nil, label: "sad"),
            Turn(id: "h4", speaker: "B", transcript: nil, audio: "clips/long.wav", label: "neu"),
        ])]
        let metricsPath = directory.url.appendingPathComponent("hand.json").path
        let (_, rows) = try evaluate(try write("hand.jsonl", dialogue), ["--metrics", metricsPath])
        for row in rows {
            #expect(row["predicted"] as? String == "neu")
            #expect(row["online"] as? String == "neu")
            #expect(row["offline"] as? String == "neu")
        }
        let metrics = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metricsPath))) as? [String: Any])
        for key in ["classifier", "ded_online", "ded_offline"] {
            let section = try #require(metrics[key] as? [String: Any])
            #expect(section["confusion"] as? [[Int]] == [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 1, 0]])
            #expect(section["accuracy"] as? Double == 0.5)
            #expect(abs((section["uar"] as? Double ?? -1) - 1.0 / 3.0) < 1e-15)
            #expect(abs((section["weighted_f1"] as? Double ?? -1) - 1.0 / 3.0) < 1e-15)
            #expect(abs((section["macro_f1"] as? Double ?? -1) - 2.0 / 9.0) < 1e-15)
        }
    }

    @Test func modalityFlagsDropTheModality() throws {
        let dialogues = full
        let input = try write("full.jsonl", dialogues)
        let withoutAudio = try write("text-only.jsonl", dialogues.map { ($0.0, $0.1.map { var t = $0; t.audio = nil; return t }) })
        let withoutText = try write("audio-only.jsonl", dialogues.map { ($0.0, $0.1.map { var t = $0; t.transcript = nil; return t }) })

        let both = try evaluate(input)
        let text = try evaluate(input, ["--modality", "text"])
        let textReference = try evaluate(withoutAudio)
        let audio = try evaluate(input, ["--modality", "audio"])
        let audioReference = try evaluate(withoutText)
        #expect(text.result.stdoutLines == textReference.result.stdoutLines)
        #expect(audio.result.stdoutLines == audioReference.result.stdoutLines)
        #expect(text.result.stdoutLines.count == 4 && audio.result.stdoutLines.count == 4)
        for (name, run) in [("text", text), ("audio", audio)] {
            let probabilities = try run.turns.map { try #require($0["probabilities"] as? [Double]) }
            let reference = try both.turns.map { try #require($0["probabilities"] as? [Double]) }
            #expect(probabilities != reference, "--modality \(name) changed nothing")
        }
        // Without audio the gate sees zeros for every turn: one gate vector for all turns (up to
        // the vectorised sigmoid's last bit, which depends on the position in the batch).
        let gates = try text.turns.map { try #require($0["gates"] as? [String: Double]) }
        #expect(gates.allSatisfy { g in g.allSatisfy { abs($0.value - gates[0][$0.key]!) <= 1e-6 } })
        #expect(Set(try both.turns.map { try #require($0["gates"] as? [String: Double]) }).count == 4)

        let metricsPath = directory.url.appendingPathComponent("audio-metrics.json").path
        _ = try evaluate(input, ["--modality", "audio", "--metrics", metricsPath])
        let metrics = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metricsPath))) as? [String: Any])
        #expect(metrics["modality"] as? String == "audio")

        // A text-only turn has nothing left under --modality audio.
        let failed = try cli.run(["evaluate", "--model", Self.model.path, "--input", try write("mixed.jsonl", mixed),
                                  "--modality", "audio"])
        #expect(failed.status == 2)
        #expect(failed.stderr.contains(#"line 1: dialogue "Ses01F_impro01", turn 3 (id "u3"): the turn has neither audio nor a transcript (--modality audio dropped its transcript)"#),
                "\(failed.stderr)")
    }

    @Test func inputErrorsNameTheProblemAndExitWith2() throws {
        let outputPath = directory.url.appendingPathComponent("out.jsonl").path
        func fails(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try cli.run(["evaluate", "--model", Self.model.path, "--output", outputPath] + arguments)
            #expect(result.status == 2, "\(result.stderr)", sourceLocation: sourceLocation)
            #expect(result.stderr.contains(message), "\(result.stderr)", sourceLocation: sourceLocation)
            #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: outputPath), sourceLocation: sourceLocation)
        }
        let missing = directory.url.appendingPathComponent("nope.jsonl").path
        try fails(["--input", missing], "emotion: error: cannot read \(missing): no such file")

        let empty = [("d1", [Turn(id: "x1", speaker: "A", transcript: "hello", audio: nil, label: "neu"),
                             Turn(id: "x2", speaker: "B", transcript: "   ", audio: nil, label: "neu")])]
        try fails(["--input", try write("empty-turn.jsonl", empty)],
                  #"line 1: dialogue "d1", turn 2 (id "x2"): the turn has neither audio nor a transcript"#)

        let noClip = [("d1", [Turn(id: "x1", speaker: "A", transcript: "hello", audio: "clips/none.wav", label: "neu")])]
        try fails(["--input", try write("no-clip.jsonl", noClip)],
                  #"line 1: dialogue "d1", turn 1 (id "x1"): cannot read audio file \#(directory.url.path)/clips/none.wav"#)

        _ = try directory.write("clips/junk.wav", "RIFF....not audio at all")
        let junk = [("ok", [Turn(id: "a", speaker: "A", transcript: "hello", audio: nil, label: "neu")]),
                    ("d2", [Turn(id: "x1", speaker: "A", transcript: "hello", audio: "clips/junk.wav", label: "neu")])]
        try fails(["--input", try write("junk.jsonl", junk)],
                  #"line 2: dialogue "d2", turn 1 (id "x1"): unreadable_audio"#)

        try fails(["--input", try directory.write("bad.jsonl", "{\"dialogue\": \"d\", \"turns\": [{\"speaker\": \"A\", \"transcript\": \"hi\"}]}\n{\"dialogue\": \"e\", \"turns\": [{\"transcript\": \"hi\"}]}\n")],
                  #"line 2: missing field "speaker" in turns[0]"#)
        try fails(["--input", try directory.write("broken.jsonl", "{\"dialogue\": \"d\", \"turns\": [}\n")], "line 1: invalid JSON")
        try fails(["--input", try directory.write("no-turns.jsonl", "{\"dialogue\": \"d\", \"turns\": []}\n")],
                  #"line 1: dialogue "d": no turns"#)
        try fails(["--input", try directory.write("blank.jsonl", "\n\n")], "no dialogues in")
        let ok = try write("ok.jsonl", [("d", [Turn(id: "1", speaker: "A", transcript: "hi", audio: nil, label: "neu")])])
        try fails(["--input", ok, "--modality", "video"], "--modality")
        try fails(["--input", ok, "--metrics", "/nonexistent-dir/m.json"], "--metrics \"/nonexistent-dir/m.json\": no such directory")
        let result = try cli.run(["evaluate", "--model", directory.url.path, "--input", ok])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--model \"\(directory.url.path)\""), "\(result.stderr)")
    }

    static func sha256(_ file: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: data, as: UTF8.self).prefix(64))
    }
}
