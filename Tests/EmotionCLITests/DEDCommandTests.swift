import CLITestSupport
import DialogicalEmotionDecoder
import Foundation
import Testing

/// A small input: two dyadic dialogues (one speaker has two turns in a row) and a one-turn
/// dialogue; labels include an out-of-set "exc" and missing labels.
private let smallInput = #"""
{"dialogue": "Ses01F_impro01", "turns": [{"id": "0-0", "speaker": "F", "logits": [0.74, 0.72, 2.62, -1.21], "label": "neu"}, {"id": "0-1", "speaker": "M", "logits": [-1.32, -0.11, 2.0, -0.02], "label": "neu"}, {"id": "0-2", "speaker": "F", "logits": [-1.91, 0.15, 0.09, 1.78], "label": "neu"}, {"id": "0-3", "speaker": "M", "logits": [0.95, -0.06, 1.61, 0.66], "label": "exc"}, {"id": "0-4", "speaker": "F", "logits": [-0.5, -0.11, 0.39, -0.59], "label": "neu"}, {"id": "0-5", "speaker": "M", "logits": [-0.73, 0.77, -0.6, 0.82]}, {"id": "0-6", "speaker": "F", "logits": [-0.55, -1.35, 0.86, -0.25], "label": "neu"}, {"id": "0-7", "speaker": "M", "logits": [-0.53, 1.09, 1.82, 0.41], "label": "hap"}, {"id": "0-8", "speaker": "F", "logits": [0.95, 0.87, 0.59, 0.61], "label": "hap"}]}
{"dialogue": "call \"42\" — Zoë", "turns": [{"id": "1-0", "speaker": "F", "logits": [-0.35, 0.55, -0.38, 1.44], "label": "sad"}, {"id": "1-1", "speaker": "M", "logits": [-0.54, 1.23, 2.62, 1.08], "label": "neu"}, {"id": "1-2", "speaker": "F", "logits": [1.1, 2.25, 1.19, 0.0], "label": "neu"}, {"id": "1-3", "speaker": "M", "logits": [-0.91, -1.55, 0.12, 0.37], "label": "exc"}, {"id": "1-4", "speaker": "F", "logits": [-1.54, -1.88, 0.68, -0.19], "label": "neu"}, {"id": "1-5", "speaker": "M", "logits": [0.67, 1.23, 1.23, 0.61]}, {"id": "1-6", "speaker": "F", "logits": [0.24, 0.66, 0.73, 1.59], "label": "sad"}, {"id": "1-7", "speaker": "M", "logits": [0.81, -1.75, -0.73, 1.46], "label": "sad"}]}

{"dialogue": "short", "turns": [{"id": "2-0", "speaker": "F", "logits": [-0.51, 1.17, -0.44, -0.23], "label": "ang"}]}

"""#

private let labelNames = ["ang", "hap", "neu", "sad"]

/// Expected results from the independent Python reference:
/// `Training/.venv/bin/python Training/reference/ded_reference.py --input small.jsonl <options>`.
private enum Reference {
    static let online = [  // --p0 0.3
        #"{"dialogue": "Ses01F_impro01", "decoded": ["neu", "neu", "neu", "neu", "neu", "neu", "neu", "neu", "neu"]}"#,
        #"{"dialogue": "call \"42\" — Zoë", "decoded": ["sad", "neu", "sad", "neu", "sad", "neu", "sad", "sad"]}"#,
        #"{"dialogue": "short", "decoded": ["hap"]}"#,
    ]
    static let onlineStderr = [
        "dialogues: 3, turns: 18, labelled turns: 14",
        "classifier: accuracy 0.6429, UAR 0.4375, weighted F1 0.6408",
        "ded: accuracy 0.6429, UAR 0.4375, weighted F1 0.5893",
    ]
    static let offline = [  // --p0 0.3 --beam 10 --alpha 2 --offline
        #"{"dialogue": "Ses01F_impro01", "decoded": ["neu", "neu", "neu", "neu", "neu", "neu", "neu", "neu", "neu"]}"#,
        #"{"dialogue": "call \"42\" — Zoë", "decoded": ["sad", "neu", "sad", "neu", "sad", "neu", "sad", "neu"]}"#,
        #"{"dialogue": "short", "decoded": ["hap"]}"#,
    ]
    static let offlineDEDMetrics = "ded: accuracy 0.5714, UAR 0.3542, weighted F1 0.5258"
    static let estimated = [  // --estimate-p0
        #"{"dialogue": "Ses01F_impro01", "decoded": ["neu", "neu", "sad", "neu", "neu", "neu", "neu", "neu", "neu"]}"#,
        #"{"dialogue": "call \"42\" — Zoë", "decoded": ["hap", "neu", "hap", "neu", "neu", "neu", "neu", "sad"]}"#,
        #"{"dialogue": "short", "decoded": ["hap"]}"#,
    ]
    static let estimatedP0Line = "p0 estimated from 9 same-speaker transitions (5 shifts): 0.5555555555555556"
    static let estimatedDEDMetrics = "ded: accuracy 0.5000, UAR 0.2708, weighted F1 0.4891"
}

private struct Dialogue: Decodable {
    struct Turn: Decodable {
        let speaker: String
        let logits: [Double]
        let label: String?
    }
    let dialogue: String
    let turns: [Turn]

    static func parse(_ jsonl: String) throws -> [Dialogue] {
        try jsonl.split(separator: "\n").filter { !$0.isEmpty }
            .map { try JSONDecoder().decode(Dialogue.self, from: Data($0.utf8)) }
    }
}

private func parseLine(_ line: String) throws -> (dialogue: String, decoded: [String]) {
    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    return (try #require(object["dialogue"] as? String), try #require(object["decoded"] as? [String]))
}

@Suite("emotion ded")
struct DEDCommandTests {
    let cli: CLIRunner
    let directory: TemporaryDirectory
    let inputPath: String

    init() throws {
        cli = try CLIRunner.locate()
        directory = try TemporaryDirectory()
        inputPath = try directory.write("small.jsonl", smallInput)
    }

    @Test func onlineDecodingMatchesReferenceAndLibrary() throws {
        let result = try cli.run(["ded", "--input", inputPath, "--p0", "0.3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines == Reference.online)
        #expect(result.stderrLines == Reference.onlineStderr)

        // The same through the library, in process.
        let parameters = try DEDParameters(p0: 0.3, alpha: 1, beamWidth: 5)
        let dialogues = try Dialogue.parse(smallInput)
        #expect(result.stdoutLines.count == dialogues.count)
        for (line, dialogue) in zip(result.stdoutLines, dialogues) {
            var decoder = try OnlineDecoder(labelCount: 4, parameters: parameters)
            for turn in dialogue.turns {
                try decoder.append(DialogueTurn(speaker: turn.speaker, logits: turn.logits))
            }
            let parsed = try parseLine(line)
            #expect(parsed.dialogue == dialogue.dialogue)
            #expect(parsed.decoded == decoder.bestPath.map { labelNames[$0] })
        }
    }

    @Test func offlineRepeatTwice() throws {
        let result = try cli.run(["ded", "--input", inputPath, "--p0", "0.3", "--beam", "10",
                                  "--alpha", "2", "--offline"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines == Reference.offline)
        #expect(result.stderrLines.last == Reference.offlineDEDMetrics)

        let parameters = try DEDParameters(p0: 0.3, alpha: 2, beamWidth: 10)
        for (line, dialogue) in zip(result.stdoutLines, try Dialogue.parse(smallInput)) {
            let turns = dialogue.turns.map { DialogueTurn(speaker: $0.speaker, logits: $0.logits) }
            let path = try OfflineDecoder.decode(turns, parameters: parameters, labelCount: 4, repeatTwice: true)
            #expect(try parseLine(line).decoded == path.map { labelNames[$0] })
        }
    }

    @Test func metricsLinesAreCorrect() throws {
        let result = try cli.run(["ded", "--input", inputPath, "--p0", "0.3"])
        // Recompute from the input and the CLI's own output with the library's metrics.
        let dialogues = try Dialogue.parse(smallInput)
        var gold: [Int] = [], classifier: [Int] = [], ded: [Int] = []
        for (line, dialogue) in zip(result.stdoutLines, dialogues) {
            let decoded = try parseLine(line).decoded
            for (turn, name) in zip(dialogue.turns, decoded) {
                guard let label = turn.label, let g = labelNames.firstIndex(of: label) else { continue }
                gold.append(g)
                let best = turn.logits.indices.max { turn.logits[$0] < turn.logits[$1] || (turn.logits[$0] == turn.logits[$1] && $0 > $1) }
                classifier.append(try #require(best))
                ded.append(try #require(labelNames.firstIndex(of: name)))
            }
        }
        #expect(gold.count == 14)
        func metricsLine(_ name: String, _ predicted: [Int]) throws -> String {
            let r = try Evaluation.report(gold: gold, predicted: predicted)
            return String(format: "%@: accuracy %.4f, UAR %.4f, weighted F1 %.4f",
                          name, r.accuracy, r.unweightedAverageRecall, r.weightedF1)
        }
        #expect(result.stderrLines.contains(try metricsLine("classifier", classifier)))
        #expect(result.stderrLines.contains(try metricsLine("ded", ded)))
        #expect(result.stderrLines.first == "dialogues: 3, turns: 18, labelled turns: 14")
    }

    @Test func estimateP0FromInput() throws {
        let result = try cli.run(["ded", "--input", inputPath, "--estimate-p0"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines == Reference.estimated)
        #expect(result.stderrLines.first == Reference.estimatedP0Line)
        #expect(result.stderrLines.last == Reference.estimatedDEDMetrics)
    }

    @Test func readsStandardInput() throws {
        let result = try cli.run(["ded", "--input", "-", "--p0", "0.3"], stdin: smallInput)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines == Reference.online)
    }

    @Test func customLabelsAndNoLabelledTurns() throws {
        let input = #"{"dialogue": "x", "turns": [{"speaker": "a", "logits": [0, 3]}, {"speaker": "b", "logits": [2, 0], "label": "zzz"}]}"# + "\n"
            + #"{"dialogue": "empty", "turns": []}"#
        let path = try directory.write("custom.jsonl", input)
        let result = try cli.run(["ded", "--input", path, "--labels", "calm, angry", "--p0", "0.5"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdoutLines == [#"{"dialogue": "x", "decoded": ["angry", "calm"]}"#,
                                       #"{"dialogue": "empty", "decoded": []}"#])
        #expect(result.stderr.contains("labelled turns: 0"))
        #expect(result.stderr.contains("metrics skipped"))
    }

    @Test func helpListsTheSubcommand() throws {
        let result = try cli.run(["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("ded"))
    }

    struct ErrorCase: CustomTestStringConvertible, Sendable {
        let name: String
        let input: String?  // nil: use the small input
        let arguments: [String]
        let message: String
        var testDescription: String { name }
    }

    static let errorCases: [ErrorCase] = [
        ErrorCase(name: "missing file", input: nil, arguments: ["--input", "/nonexistent/d.jsonl", "--p0", "0.3"],
                  message: "cannot read /nonexistent/d.jsonl"),
        ErrorCase(name: "bad JSON", input: "{\"dialogue\": \"a\", \"turns\": []}\n{\"dialogue\": \"b\", \"turns\": [\n",
                  arguments: ["--p0", "0.3"], message: "line 2: invalid JSON"),
        ErrorCase(name: "wrong logit count",
                  input: #"{"dialogue": "d7", "turns": [{"speaker": "F", "logits": [1, 2, 3, 4]}, {"id": "u2", "speaker": "M", "logits": [1, 2, 3]}]}"#,
                  arguments: ["--p0", "0.3"], message: #"line 1: dialogue "d7", turn 2 (id "u2"): expected 4 logits"#),
        ErrorCase(name: "logit not a number",
                  input: #"{"dialogue": "d", "turns": [{"speaker": "F", "logits": [1, "x", 3, 4]}]}"#,
                  arguments: ["--p0", "0.3"], message: "line 1: turns[0].logits[1]: expected a number"),
        ErrorCase(name: "turn id neither string nor number",
                  input: #"{"dialogue": "d", "turns": [{"id": true, "speaker": "F", "logits": [1, 2, 3, 4]}]}"#,
                  arguments: ["--p0", "0.3"], message: "line 1: turns[0].id: expected a string"),
        ErrorCase(name: "missing speaker", input: #"{"dialogue": "d", "turns": [{"logits": [1, 2, 3, 4]}]}"#,
                  arguments: ["--p0", "0.3"], message: #"line 1: missing field "speaker""#),
        ErrorCase(name: "overflowing logit", input: #"{"dialogue": "d", "turns": [{"speaker": "F", "logits": [1, 1e999, 3, 4]}]}"#,
                  arguments: ["--p0", "0.3"], message: "line 1: invalid JSON"),
        ErrorCase(name: "p0 out of range", input: nil, arguments: ["--p0", "1.5"], message: "p0 must be in (0, 1)"),
        ErrorCase(name: "p0 missing", input: nil, arguments: [], message: "missing --p0"),
        ErrorCase(name: "p0 twice", input: nil, arguments: ["--p0", "0.3", "--estimate-p0"], message: "either --p0 or --estimate-p0"),
        ErrorCase(name: "beam zero", input: nil, arguments: ["--p0", "0.3", "--beam", "0"], message: "beam width must be at least 1"),
        ErrorCase(name: "alpha zero", input: nil, arguments: ["--p0", "0.3", "--alpha", "0"], message: "alpha must be"),
        ErrorCase(name: "p0 not a number", input: nil, arguments: ["--p0", "abc"], message: "'abc' is invalid"),
        ErrorCase(name: "duplicate labels", input: nil, arguments: ["--p0", "0.3", "--labels", "a,b,a"], message: "duplicate label"),
        ErrorCase(name: "unknown option", input: nil, arguments: ["--p0", "0.3", "--bogus"], message: "Unknown option '--bogus'"),
        ErrorCase(name: "nothing to estimate from",
                  input: #"{"dialogue": "d", "turns": [{"speaker": "F", "logits": [1, 2, 3, 4], "label": "neu"}, {"speaker": "M", "logits": [1, 2, 3, 4], "label": "neu"}]}"#,
                  arguments: ["--estimate-p0"], message: "cannot estimate p0"),
    ]

    @Test(arguments: errorCases)
    func errorsExitWithCode2AndAMessage(_ c: ErrorCase) throws {
        var arguments = ["ded"]
        if !c.arguments.contains("--input") {
            arguments += ["--input", try c.input.map { try directory.write("case.jsonl", $0) } ?? inputPath]
        }
        arguments += c.arguments
        let result = try cli.run(arguments)
        #expect(result.status == 2, "\(c.name): \(result.stderr)")
        #expect(result.stderr.contains(c.message), "\(c.name): \(result.stderr)")
        #expect(result.stdout.isEmpty, "\(c.name): no partial output")
    }
}

@Suite("emotion ded --model")
struct DEDModelOptionTests {
    let cli: CLIRunner
    let directory: TemporaryDirectory
    let inputPath: String

    init() throws {
        cli = try CLIRunner.locate()
        directory = try TemporaryDirectory()
        inputPath = try directory.write("small.jsonl", smallInput)
        // A model package whose labels and DED section the command must pick up.
        try FileManager.default.createDirectory(at: directory.url.appendingPathComponent("model"),
                                                withIntermediateDirectories: true)
        _ = try directory.write("model/model.json", """
        {"format": "gatedxlstm-model", "format_version": 1, "name": "ded-only",
         "labels": ["ang", "hap", "neu", "sad"], "weights": "weights.safetensors",
         "ded": {"p0": 0.3, "alpha": 2, "beam": 10}}
        """)
        // An empty safetensors file: 8-byte header length, header "{}" padded to 8 bytes.
        var bytes = Data([8, 0, 0, 0, 0, 0, 0, 0])
        bytes.append(Data("{}      ".utf8))
        try bytes.write(to: directory.url.appendingPathComponent("model/weights.safetensors"))
    }

    @Test func packageSectionGivesTheDefaults() throws {
        let model = directory.url.path + "/model"
        let viaModel = try cli.run(["ded", "--input", inputPath, "--model", model, "--offline"])
        let explicit = try cli.run(["ded", "--input", inputPath, "--p0", "0.3", "--alpha", "2", "--beam", "10", "--offline"])
        #expect(viaModel.status == 0, "\(viaModel.stderr)")
        #expect(viaModel.stdoutLines == explicit.stdoutLines)
        #expect(viaModel.stdoutLines == Reference.offline)
        // Options override the package.
        let overridden = try cli.run(["ded", "--input", inputPath, "--model", model, "--alpha", "1", "--beam", "5"])
        let online = try cli.run(["ded", "--input", inputPath, "--p0", "0.3"])
        #expect(overridden.stdoutLines == online.stdoutLines)
    }

    @Test func brokenPackageIsAnInputError() throws {
        let result = try cli.run(["ded", "--input", inputPath, "--model", directory.url.path + "/missing"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--model"))
        #expect(result.stdout.isEmpty)
    }
}

/// `emotion embed` end to end on the tiny complete model (Tests/SharedFixtures/tiny-model),
/// against the reference pipeline (soundfile, librosa soxr_hq, ClapFeatureExtractor,
/// transformers HTSAT; BertTokenizerFast + BertModel + projection).
@Suite("emotion embed")
struct EmbedCommandTests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SharedFixtures/tiny-model").standardized
    let cli: CLIRunner
    let directory: TemporaryDirectory
    let expected: [String: Any]

    init() throws {
        cli = try CLIRunner.locate()
        directory = try TemporaryDirectory()
        expected = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: Self.model.appendingPathComponent("expected.json"))) as? [String: Any])
    }

    static func check(_ got: [Double], _ want: [Double]) -> (cosine: Double, maxAbs: Double) {
        let dot = zip(got, want).reduce(0) { $0 + $1.0 * $1.1 }
        let na = got.reduce(0) { $0 + $1 * $1 }.squareRoot(), nb = want.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return (dot / (na * nb), zip(got, want).map { abs($0 - $1) }.max() ?? .infinity)
    }

    @Test func embeddingsEqualTheReferencePipeline() throws {
        let audio = try #require(expected["audio"] as? [String: [Double]])
        let text = try #require(expected["text"] as? [String: [Double]])
        var lines: [String] = []
        for name in audio.keys.sorted() {
            lines.append(#"{"id": "\#(name)", "audio": "clips/\#(name)"}"#)
        }
        for (i, t) in text.keys.sorted().enumerated() {
            let quoted = String(decoding: try JSONSerialization.data(withJSONObject: [t]), as: UTF8.self).dropFirst().dropLast()
            lines.append(#"{"id": "text-\#(i)", "text": \#(quoted)}"#)
        }
        let input = Self.model.appendingPathComponent("embed-input-\(UUID()).jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try cli.run(["embed", "--model", Self.model.path, "--input", input.path])
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try result.stdoutLines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(rows.count == audio.count + text.count)
        for row in rows {
            let id = try #require(row["id"] as? String)
            if let want = audio[id] {
                let (cosine, maxAbs) = Self.check(try #require(row["audio"] as? [Double]), want)
                #expect(cosine >= 0.9999 && maxAbs <= 1e-4, "\(id): cosine \(cosine), max abs \(maxAbs)")
            } else {
                let index = try #require(Int(id.dropFirst(5)))
                let want = try #require(text[text.keys.sorted()[index]])
                let (cosine, maxAbs) = Self.check(try #require(row["text"] as? [Double]), want)
                #expect(cosine >= 0.9999 && maxAbs <= 1e-4, "\(id): cosine \(cosine), max abs \(maxAbs)")
                #expect(row["audio"] is NSNull)
            }
        }
    }

    @Test func npyOutputHasOneRowPerItem() throws {
        let prefix = directory.url.appendingPathComponent("out").path
        let result = try cli.run(["embed", "--model", Self.model.path, "--text", "hello", "--text", "help",
                                  "--audio", Self.model.appendingPathComponent("clips/agent.wav").path, "--npy", prefix])
        #expect(result.status == 0, "\(result.stderr)")
        let npy = try Data(contentsOf: URL(fileURLWithPath: prefix + ".text.npy"))
        #expect(npy.prefix(6) == Data([0x93] + Array("NUMPY".utf8)))
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        let header = String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.contains("'shape': (3, 64)") && header.contains("'<f4'"))
        #expect((10 + headerLength) % 64 == 0)
        #expect(npy.count == 10 + headerLength + 3 * 64 * 4)
        let ids = try String(contentsOfFile: prefix + ".ids.txt", encoding: .utf8)
        #expect(ids.split(separator: "\n").count == 3)
    }

    @Test func unreadableAudioIsReportedPerItem() throws {
        let bad = try directory.write("bad.wav", "RIFF....not audio")
        let result = try cli.run(["embed", "--model", Self.model.path, "--audio", bad, "--text", "hello"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("unreadable_audio"))
        #expect(result.stdoutLines.count == 1)  // the transcript still embedded
    }
}
