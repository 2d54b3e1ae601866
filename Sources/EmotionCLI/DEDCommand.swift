import ArgumentParser
import DialogicalEmotionDecoder
import Foundation
import ModelPackage

/// `emotion ded`: decode dialogues' emotion sequences from classifier logits with the Dialogical
/// Emotion Decoder and report accuracy, UAR and weighted F1 of the classifier and of DED.
struct DEDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ded",
        abstract: "Decode dialogue emotion sequences from classifier logits with the Dialogical Emotion Decoder.",
        discussion: """
        Input: JSON Lines, one dialogue per line ("id" and "label" are optional):
          {"dialogue": "d1", "turns": [{"id": "t1", "speaker": "F", "logits": [0.1, 2.0, -1.0, 0.3], "label": "hap"}]}

        Output on stdout, one line per dialogue, in input order:
          {"dialogue": "d1", "decoded": ["hap"]}

        On stderr: counts, then accuracy, UAR and weighted F1 of the classifier's argmax and of DED over the turns whose label is one of --labels. Exit code 2 on usage or input errors. See Docs/DED.md.
        """)

    @Option(help: ArgumentHelp("JSON Lines file with one dialogue per line ('-' for standard input).",
                               valueName: "file"))
    var input: String

    @Option(help: ArgumentHelp("Model package directory: its labels and its 'ded' section (p0, alpha, beam) become the defaults; the options below override them.",
                               valueName: "dir"))
    var model: String?

    @Option(help: "Comma-separated label names, in the order of the logits (default: the model's labels, else ang,hap,neu,sad).")
    var labels: String?

    @Option(help: "Probability that a speaker's emotion shifts between two consecutive turns of that speaker, in (0, 1). Required unless --estimate-p0 or --model.")
    var p0: Double?

    @Flag(help: "Estimate p0 from the labelled turns of the input itself (prints it on stderr). Only for experiments: evaluating with p0 estimated on the test labels is optimistic.")
    var estimateP0 = false

    @Option(help: "Concentration of the prior over emotion states (> 0; default: the model's, else 1).")
    var alpha: Double?

    @Option(help: "Beam width (>= 1; default: the model's, else 5).")
    var beam: Int?

    @Flag(help: "Decode each whole dialogue offline, repeated twice (keeping the second copy), instead of online turn by turn.")
    var offline = false

    /// One dialogue line of the input.
    typealias DialogueRecord = DialogueLine<TurnRecord>

    /// One turn; `id` (string or number) is only used in messages.
    struct TurnRecord: Decodable {
        var id: String?
        var speaker: String
        var logits: [Double]
        var label: String?

        private enum CodingKeys: String, CodingKey { case id, speaker, logits, label }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decodeTurnID(forKey: .id)
            speaker = try c.decode(String.self, forKey: .speaker)
            logits = try c.decode([Double].self, forKey: .logits)
            label = try c.decodeIfPresent(String.self, forKey: .label)
        }
    }

    func run() throws {
        let packaged = try packageDefaults()
        let labelNames = try parseLabels(labels ?? packaged?.labels.joined(separator: ",") ?? "ang,hap,neu,sad")
        let dialogues = try readDialogues(labelCount: labelNames.count)
        let p0 = try resolveP0(dialogues: dialogues, labels: labelNames, packaged: packaged?.ded?.p0)
        let parameters: DEDParameters
        do {
            parameters = try DEDParameters(p0: p0,
                                           alpha: alpha ?? packaged?.ded?.alpha ?? DEDParameters.defaultAlpha,
                                           beamWidth: beam ?? packaged?.ded?.beamWidth ?? DEDParameters.defaultBeamWidth)
        } catch let error as DEDError {
            throw CLIError.input(error.message)
        }

        let labelIndex = Dictionary(uniqueKeysWithValues: labelNames.enumerated().map { ($1, $0) })
        var gold: [Int] = [], classifier: [Int] = [], decoded: [Int] = []
        var turnCount = 0
        for (line, record) in dialogues {
            let turns = record.turns.map { DialogueTurn(speaker: $0.speaker, logits: $0.logits) }
            let path: [Int]
            do {
                if offline {
                    path = try OfflineDecoder.decode(turns, parameters: parameters,
                                                     labelCount: labelNames.count, repeatTwice: true)
                } else {
                    var decoder = try OnlineDecoder(labelCount: labelNames.count, parameters: parameters)
                    for turn in turns { try decoder.append(turn) }
                    path = decoder.bestPath
                }
            } catch let error as DEDError {  // unreachable: the input was validated while reading
                throw CLIError.input("line \(line): dialogue \(JSONLines.quote(record.dialogue)): \(error.message)")
            }
            let names = path.map { JSONLines.quote(labelNames[$0]) }.joined(separator: ", ")
            print("{\"dialogue\": \(JSONLines.quote(record.dialogue)), \"decoded\": [\(names)]}")

            turnCount += turns.count
            for (turn, label) in zip(record.turns, path) {
                guard let name = turn.label, let g = labelIndex[name] else { continue }
                gold.append(g)
                classifier.append(Self.argmax(turn.logits))
                decoded.append(label)
            }
        }

        standardError("dialogues: \(dialogues.count), turns: \(turnCount), labelled turns: \(gold.count)")
        guard !gold.isEmpty else {
            standardError("no turn has a label in --labels: metrics skipped")
            return
        }
        for (name, predicted) in [("classifier", classifier), ("ded", decoded)] {
            let r = try Evaluation.report(gold: gold, predicted: predicted)
            standardError(String(format: "%@: accuracy %.4f, UAR %.4f, weighted F1 %.4f",
                                 name, r.accuracy, r.unweightedAverageRecall, r.weightedF1))
        }
    }

    /// Index of the largest logit (the first one on ties): the classifier's own decision.
    static func argmax(_ logits: [Double]) -> Int {
        var best = 0
        for (i, v) in logits.enumerated() where v > logits[best] { best = i }
        return best
    }

    /// Labels and DED parameters of `--model`, if given (the weights are not checksummed here).
    private func packageDefaults() throws -> (labels: [String], ded: DEDParameters?)? {
        guard let model else { return nil }
        do {
            let package = try ModelPackage.load(directory: URL(fileURLWithPath: model), verifyChecksum: false)
            let ded = package.hasSection("ded") ? try package.section("ded", as: DEDParameters.self) : nil
            return (package.manifest.labels, ded)
        } catch {
            throw CLIError.input("--model \(JSONLines.quote(model)): \(error)")
        }
    }

    private func parseLabels(_ labels: String) throws -> [String] {
        let names = labels.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.contains(where: \.isEmpty) else {
            throw CLIError.input("--labels: empty label name in \(JSONLines.quote(labels))")
        }
        guard Set(names).count == names.count else {
            throw CLIError.input("--labels: duplicate label name in \(JSONLines.quote(labels))")
        }
        return names
    }

    /// Reads and validates every dialogue before any output, so a bad line produces an error
    /// and no partial output.
    private func readDialogues(labelCount: Int) throws -> [(line: Int, record: DialogueRecord)] {
        let data = try JSONLines.read(input)
        var result: [(Int, DialogueRecord)] = []
        for (number, text) in JSONLines.lines(data) {
            let record = try JSONLines.decode(DialogueRecord.self, line: text, number: number)
            for (index, turn) in record.turns.enumerated() {
                let name = record.location(line: number, turn: index, id: turn.id)
                guard turn.logits.count == labelCount else {
                    throw CLIError.input("\(name): expected \(labelCount) logits (one per label in --labels), got \(turn.logits.count)")
                }
                guard turn.logits.allSatisfy(\.isFinite) else {
                    throw CLIError.input("\(name): logits must be finite numbers")
                }
            }
            result.append((number, record))
        }
        return result
    }

    private func resolveP0(dialogues: [(line: Int, record: DialogueRecord)], labels: [String],
                           packaged: Double?) throws -> Double {
        switch (p0, estimateP0) {
        case (.some, true):
            throw CLIError.input("use either --p0 or --estimate-p0, not both")
        case (nil, false):
            if let packaged { return packaged }
            throw CLIError.input("missing --p0 (or use --estimate-p0 to estimate it from the input's labels, or --model)")
        case (.some(let value), false):
            return value
        case (nil, true):
            let labelled = dialogues.map { $0.record.turns.map { LabelledTurn(speaker: $0.speaker, label: $0.label) } }
            let counts = TransitionEstimator.transitionCounts(dialogues: labelled, labels: labels)
            do {
                let value = try TransitionEstimator.estimateP0(dialogues: labelled, labels: labels)
                standardError("p0 estimated from \(counts.pairs) same-speaker transitions (\(counts.shifts) shifts): \(value)")
                return value
            } catch let error as DEDError {
                throw CLIError.input("cannot estimate p0: \(error.message)")
            }
        }
    }
}
