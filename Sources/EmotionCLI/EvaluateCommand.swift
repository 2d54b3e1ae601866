import ArgumentParser
import Conversation
import DialogicalEmotionDecoder
import ErrorVocabulary
import Foundation
import GatedXLSTM
import Numerics
import ServingPipeline

/// `emotion evaluate`: a model package end to end on labelled dialogues, with exactly the code
/// that serves (model loading, turn embedder, stream assembly, gated classifier, online and offline
/// DED, all from `ServiceModel` / `ConversationEngine`), for model cards and the train/serve
/// parity check.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate a model package end to end (encoder -> classifier -> DED) on labelled dialogues.",
        discussion: """
        Input: JSON Lines, one dialogue per line; audio paths are relative to the input file's directory; "id", "transcript", "audio" and "label" are optional, but every turn needs audio or a non-blank transcript:
          {"dialogue": "Ses04F_impro01", "turns": [{"id": "u1", "speaker": "F", "transcript": "...", "audio": "wav/u1.wav", "label": "ang"}]}
        A turn whose label is null, absent or not one of the model's labels is context: classified and decoded, not scored.

        --output: one JSON line per turn, in input order ("probabilities" and "logits" in the model's label order; "online": the turn's label on the online DED path after the whole dialogue, as a session ends; "offline": DED over the dialogue repeated twice, as /v1/dialogues/analyze answers):
          {"dialogue", "id", "turn", "speaker", "label", "probabilities", "logits", "gates", "predicted", "online", "offline"}

        --metrics: JSON with count, accuracy, UAR, weighted and macro F1 and the confusion matrix (rows true, columns predicted) of "classifier", "ded_online" and "ded_offline" over the scored turns. A summary always goes to stderr. '-' writes --output or --metrics to standard output.

        Exit status 2 on usage or input errors (including unreadable or undecodable audio, reported per turn), 1 on other failures.
        """)

    enum Modality: String, ExpressibleByArgument, CaseIterable, Sendable {
        case both, text, audio
    }

    @Option(help: ArgumentHelp("Model package directory.", valueName: "dir"))
    var model: String = "Models/default"

    @Option(help: ArgumentHelp("JSON Lines file with one labelled dialogue per line ('-' for standard input).",
                               valueName: "file"))
    var input: String

    @Option(help: ArgumentHelp("Write per-turn results (JSON Lines) here ('-' for standard output).", valueName: "file"))
    var output: String?

    @Option(help: ArgumentHelp("Write the metrics (JSON) here ('-' for standard output).", valueName: "file"))
    var metrics: String?

    @Option(help: "Modalities used: both, text (every turn's audio is dropped) or audio (every transcript is dropped).")
    var modality: Modality = .both

    @Option(help: "Longest accepted clip in seconds.")
    var maxAudioSeconds: Double = 600

    @Option(help: "How packed weights are held: f32, f16 or bf16 (default: the package's weight_precision, else f32).")
    var weightPrecision: Linear.Precision?

    // MARK: - Input

    typealias DialogueRecord = DialogueLine<TurnRecord>

    /// One turn; `id` may be a string or a number.
    struct TurnRecord: Decodable {
        var id: String?
        var speaker: String
        var transcript: String?
        var audio: String?
        var label: String?

        private enum CodingKeys: String, CodingKey { case id, speaker, transcript, audio, label }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decodeTurnID(forKey: .id)
            speaker = try c.decode(String.self, forKey: .speaker)
            transcript = try c.decodeIfPresent(String.self, forKey: .transcript)
            audio = try c.decodeIfPresent(String.self, forKey: .audio)
            label = try c.decodeIfPresent(String.self, forKey: .label)
        }
    }

    /// A turn after the modality choice, with its audio path resolved.
    struct Turn: Sendable {
        var id: String?
        var speaker: String
        var transcript: String
        var audioPath: String?
        var label: String?
        /// "line 3: dialogue "d1", turn 2 (id "u2")", for messages.
        var location: String
    }

    struct Dialogue: Sendable {
        var name: String
        var turns: [Turn]
    }

    func validate() throws {
        if output == "-" && metrics == "-" {
            throw ValidationError("--output and --metrics cannot both be standard output")
        }
        guard maxAudioSeconds > 0 else { throw ValidationError("--max-audio-seconds must be positive") }
    }

    /// Reads and checks every dialogue before the model is loaded, so input errors come at once.
    func readDialogues() throws -> [Dialogue] {
        let base = input == "-" ? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            : URL(fileURLWithPath: input).deletingLastPathComponent()
        var dialogues: [Dialogue] = []
        for (number, line) in JSONLines.lines(try JSONLines.read(input)) {
            let record = try JSONLines.decode(DialogueRecord.self, line: line, number: number)
            let name = "line \(number): dialogue \(JSONLines.quote(record.dialogue))"
            guard !record.turns.isEmpty else { throw CLIError.input("\(name): no turns") }
            var turns: [Turn] = []
            for (index, t) in record.turns.enumerated() {
                let location = record.location(line: number, turn: index, id: t.id)
                var transcript = t.transcript ?? "", audio = t.audio.flatMap { $0.isEmpty ? nil : $0 }
                var dropped = ""
                switch modality {
                case .both: break
                case .text:
                    if audio != nil { dropped = " (--modality text dropped its audio)" }
                    audio = nil
                case .audio:
                    if !transcript.isEmpty { dropped = " (--modality audio dropped its transcript)" }
                    transcript = ""
                }
                let turn = Turn(id: t.id, speaker: t.speaker, transcript: transcript,
                                audioPath: audio.map { $0.hasPrefix("/") ? $0 : base.appendingPathComponent($0).path },
                                label: t.label, location: location)
                if turn.audioPath == nil && transcript.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    throw CLIError.input("\(location): the turn has neither audio nor a transcript\(dropped)")
                }
                if let path = turn.audioPath {
                    var isDirectory: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                          FileManager.default.isReadableFile(atPath: path) else {
                        throw CLIError.input("\(location): cannot read audio file \(path)")
                    }
                }
                turns.append(turn)
            }
            dialogues.append(Dialogue(name: record.dialogue, turns: turns))
        }
        guard !dialogues.isEmpty else { throw CLIError.input("no dialogues in \(input)") }
        return dialogues
    }

    /// Output paths must be writable before minutes of work are spent.
    func checkOutputPaths() throws {
        for (option, path) in [("--output", output), ("--metrics", metrics)] {
            guard let path, path != "-" else { continue }
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError.input("\(option) \(JSONLines.quote(path)): no such directory \(directory)")
            }
        }
    }

    // MARK: - Run

    func run() throws {
        let started = DispatchTime.now()
        try checkOutputPaths()
        let dialogues = try readDialogues()
        let loaded: ServiceModel
        do {
            loaded = try ServiceModel.load(directory: URL(fileURLWithPath: model), maxAudioSeconds: maxAudioSeconds,
                                           weightPrecision: weightPrecision)
        } catch {
            throw CLIError.input("--model \(JSONLines.quote(model)): \(error)")
        }
        let engine = loaded.engine
        let labels = engine.classifier.labels
        for dialogue in dialogues {
            for turn in dialogue.turns {
                let probe = TurnInput(speaker: turn.speaker, transcript: turn.transcript,
                                      audio: turn.audioPath == nil ? nil : Data())
                if let problem = engine.validationError(for: probe) {
                    throw CLIError.input("\(turn.location): \(problem.message)")
                }
            }
        }

        let t0 = DispatchTime.now()
        let embeddings = try embedAll(dialogues, engine: engine)
        let embedSeconds = Self.seconds(since: t0)

        let t1 = DispatchTime.now()
        let results = try classifyAndDecode(dialogues, embeddings: embeddings, engine: engine)
        let classifySeconds = Self.seconds(since: t1)

        // Scored turns: gold label one of the model's labels.
        let labelIndex = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
        var gold: [Int] = [], predicted: [Int] = [], online: [Int] = [], offline: [Int] = []
        var unscored: [String: Int] = [:]
        for (dialogue, result) in zip(dialogues, results) {
            for (i, turn) in dialogue.turns.enumerated() {
                guard let name = turn.label, let g = labelIndex[name] else {
                    unscored[turn.label ?? "(none)", default: 0] += 1
                    continue
                }
                gold.append(g)
                predicted.append(result.classifications[i].label)
                online.append(result.online[i])
                offline.append(result.offline[i])
            }
        }
        let turnCount = dialogues.reduce(0) { $0 + $1.turns.count }
        let sections = try [("classifier", predicted), ("ded_online", online), ("ded_offline", offline)].map {
            (name: $0.0, report: gold.isEmpty ? nil : try Evaluation.report(gold: gold, predicted: $0.1),
             confusion: try Evaluation.confusionMatrix(gold: gold, predicted: $0.1, classCount: labels.count))
        }

        if let output {
            var data = Data()
            for (dialogue, result) in zip(dialogues, results) {
                for (i, turn) in dialogue.turns.enumerated() {
                    data.append(Data(turnLine(dialogue: dialogue.name, index: i, turn: turn, labels: labels,
                                              classification: result.classifications[i],
                                              online: result.online[i], offline: result.offline[i]).utf8))
                }
            }
            try write(data, to: output, option: "--output")
        }
        if let metrics {
            let ded = engine.ded
            var json = "{\n"
            json += "  \"model\": {\"name\": \(JSONLines.quote(loaded.package.manifest.name)), "
                + "\"weights_sha256\": \(JSONLines.quote(loaded.package.weights.sha256))},\n"
            json += "  \"labels\": [\(labels.map(JSONLines.quote).joined(separator: ", "))],\n"
            json += "  \"modality\": \(JSONLines.quote(modality.rawValue)),\n"
            json += "  \"dialogues\": \(dialogues.count),\n"
            json += "  \"turns\": \(turnCount),\n"
            json += "  \"scored_turns\": \(gold.count),\n"
            json += "  \"ded\": {\"p0\": \(ded.p0), \"alpha\": \(ded.alpha), \"beam\": \(ded.beamWidth)},\n"
            json += sections.map { section in
                guard let r = section.report else { return "  \(JSONLines.quote(section.name)): null" }
                let rows = section.confusion.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }
                return "  \(JSONLines.quote(section.name)): {\"count\": \(r.count), \"accuracy\": \(r.accuracy), "
                    + "\"uar\": \(r.unweightedAverageRecall), \"weighted_f1\": \(r.weightedF1), \"macro_f1\": \(r.macroF1),\n"
                    + "    \"confusion\": [\n      " + rows.joined(separator: ",\n      ") + "]}"
            }.joined(separator: ",\n")
            json += "\n}\n"
            try write(Data(json.utf8), to: metrics, option: "--metrics")
        }

        standardError("model \(loaded.package.manifest.name) (weights sha256 \(loaded.package.weights.sha256.prefix(12))), modality \(modality.rawValue)")
        var counts = "dialogues: \(dialogues.count), turns: \(turnCount), scored turns: \(gold.count)"
        if !unscored.isEmpty {
            counts += " (not scored: " + unscored.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                .joined(separator: ", ") + ")"
        }
        standardError(counts)
        if gold.isEmpty {
            standardError("no turn has a label among the model's labels (\(labels.joined(separator: ","))): metrics skipped")
        }
        for section in sections {
            guard let r = section.report else { continue }
            standardError(String(format: "%@: accuracy %.4f, UAR %.4f, weighted F1 %.4f, macro F1 %.4f",
                                 section.name, r.accuracy, r.unweightedAverageRecall, r.weightedF1, r.macroF1))
        }
        standardError(String(format: "time: embedding %.1f s, classifier and DED %.1f s, total %.1f s",
                             embedSeconds, classifySeconds, Self.seconds(since: started)))
    }

    // MARK: - Stages

    /// Thread-safe slots for results computed concurrently.
    private final class Slots<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [T?]
        init(count: Int) { values = Array(repeating: nil, count: count) }
        func set(_ index: Int, _ value: T) { lock.lock(); values[index] = value; lock.unlock() }
        var all: [T?] { lock.lock(); defer { lock.unlock() }; return values }
    }

    /// Progress lines on stderr, at most one every 15 s.
    private final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private let total: Int, what: String
        private var done = 0
        private var last = DispatchTime.now()
        init(total: Int, what: String) { self.total = total; self.what = what }
        func step() {
            lock.lock(); defer { lock.unlock() }
            done += 1
            if EvaluateCommand.seconds(since: last) >= 15 && done < total {
                last = DispatchTime.now()
                standardError("\(what) \(done)/\(total)")
            }
        }
    }

    /// Every turn's embeddings through the engine's own `embeddings(of:)`, on all cores (the
    /// encoder is thread-safe; its inner parallel loops run serially when nested). Each distinct
    /// clip (by path) and each distinct transcript is embedded once: dialogues voiced from a bank
    /// of clips reuse them. Every failing turn is reported, then the command fails.
    func embedAll(_ dialogues: [Dialogue], engine: ConversationEngine) throws -> [[TurnEmbeddings]] {
        let items = dialogues.enumerated().flatMap { d, dialogue in dialogue.turns.indices.map { (d, $0) } }
        enum Job: Hashable { case audio(String), text(String) }
        var jobs: [Job] = [], jobIndex: [Job: Int] = [:]
        func add(_ job: Job) {
            if jobIndex[job] == nil { jobIndex[job] = jobs.count; jobs.append(job) }
        }
        for (d, t) in items {
            let turn = dialogues[d].turns[t]
            if let path = turn.audioPath { add(.audio(path)) }
            add(.text(turn.transcript))
        }
        let unique = jobs
        let slots = Slots<Result<[Float]?, Error>>(count: unique.count)
        let progress = Progress(total: unique.count, what: "embedded clips and transcripts")
        DispatchQueue.concurrentPerform(iterations: unique.count) { k in
            slots.set(k, Result {
                switch unique[k] {
                case .audio(let path):
                    guard let data = FileManager.default.contents(atPath: path) else {
                        throw ConversationError(.invalidInput, code: "file_unreadable", "cannot read \(path)")
                    }
                    return try engine.pipeline.embeddings(of: TurnInput(speaker: "-", transcript: "", audio: data)).audio
                case .text(let transcript):
                    return try engine.pipeline.embeddings(of: TurnInput(speaker: "-", transcript: transcript)).text
                }
            })
            progress.step()
        }
        let results = slots.all
        let slotsByTurn = Slots<Result<TurnEmbeddings, Error>>(count: items.count)
        for (k, (d, t)) in items.enumerated() {
            let turn = dialogues[d].turns[t]
            slotsByTurn.set(k, Result {
                func value(_ job: Job) throws -> [Float]? {
                    guard let slot = results[jobIndex[job]!] else {
                        throw ConversationError(.internal, code: "not_embedded", "not embedded")
                    }
                    return try slot.get()
                }
                let audio = try turn.audioPath.map { try value(.audio($0)) } ?? nil
                return TurnEmbeddings(speaker: turn.speaker, audio: audio, text: try value(.text(turn.transcript)))
            })
        }
        var embeddings = dialogues.map { [TurnEmbeddings](repeating: TurnEmbeddings(speaker: "", audio: nil, text: nil),
                                                          count: $0.turns.count) }
        var failures: [String] = []
        var onlyInputErrors = true
        for (k, slot) in slotsByTurn.all.enumerated() {
            let (d, t) = items[k]
            switch slot {
            case .success(let value)?:
                embeddings[d][t] = value
            case .failure(let error)?:
                let turn = dialogues[d].turns[t]
                if (error as? any CodedError)?.kind != .invalidInput { onlyInputErrors = false }
                failures.append("\(turn.location): \(error)" + (turn.audioPath.map { " (audio \($0))" } ?? ""))
            case nil:
                onlyInputErrors = false
                failures.append("\(dialogues[d].turns[t].location): not embedded")
            }
        }
        guard failures.isEmpty else {
            let shown = 20
            for line in failures.prefix(shown) { standardError("emotion evaluate: \(line)") }
            if failures.count > shown { standardError("emotion evaluate: ... and \(failures.count - shown) more") }
            throw CLIError(message: "\(failures.count) of \(items.count) turns could not be embedded",
                           exitCode: onlyInputErrors ? CLIError.usageExitCode : 1)
        }
        return embeddings
    }

    struct DialogueResult: Sendable {
        var classifications: [Classification]
        var online: [Int]
        var offline: [Int]
    }

    /// Per dialogue, the engine's own stages: classification with context in batches, online
    /// DED turn by turn as a session, offline DED repeated twice as `analyze`. Dialogues in
    /// parallel.
    func classifyAndDecode(_ dialogues: [Dialogue], embeddings: [[TurnEmbeddings]],
                           engine: ConversationEngine) throws -> [DialogueResult] {
        let slots = Slots<Result<DialogueResult, Error>>(count: dialogues.count)
        let progress = Progress(total: dialogues.count, what: "classified dialogues")
        DispatchQueue.concurrentPerform(iterations: dialogues.count) { d in
            slots.set(d, Result {
                let classifications = try engine.pipeline.classify(dialogue: embeddings[d])
                return DialogueResult(
                    classifications: classifications,
                    online: try engine.pipeline.decodeOnline(embeddings[d], classifications: classifications),
                    offline: try engine.pipeline.decodeOffline(embeddings[d], classifications: classifications,
                                                      repeatTwice: true))
            })
            progress.step()
        }
        return try slots.all.enumerated().map { d, slot in
            switch slot {
            case .success(let value)?: return value
            case .failure(let error)?:
                throw CLIError(message: "dialogue \(JSONLines.quote(dialogues[d].name)): \(error)", exitCode: 1)
            case nil:
                throw CLIError(message: "dialogue \(JSONLines.quote(dialogues[d].name)): not classified", exitCode: 1)
            }
        }
    }

    // MARK: - Output

    func turnLine(dialogue: String, index: Int, turn: Turn, labels: [String], classification c: Classification,
                  online: Int, offline: Int) -> String {
        func array(_ v: [Float]) -> String { "[" + v.map { "\($0)" }.joined(separator: ", ") + "]" }
        let gates = zip(StreamLayout.names, c.gates).map { "\(JSONLines.quote($0)): \($1)" }.joined(separator: ", ")
        return "{\"dialogue\": \(JSONLines.quote(dialogue)), \"id\": \(turn.id.map(JSONLines.quote) ?? "null"), "
            + "\"turn\": \(index), \"speaker\": \(JSONLines.quote(turn.speaker)), "
            + "\"label\": \(turn.label.map(JSONLines.quote) ?? "null"), "
            + "\"probabilities\": \(array(c.probabilities)), \"logits\": \(array(c.logits)), \"gates\": {\(gates)}, "
            + "\"predicted\": \(JSONLines.quote(labels[c.label])), \"online\": \(JSONLines.quote(labels[online])), "
            + "\"offline\": \(JSONLines.quote(labels[offline]))}\n"
    }

    func write(_ data: Data, to path: String, option: String) throws {
        if path == "-" {
            FileHandle.standardOutput.write(data)
            return
        }
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CLIError.input("\(option) \(JSONLines.quote(path)): cannot write: \(error.localizedDescription)")
        }
    }

    static func seconds(since t: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9
    }
}

extension Linear.Precision: ExpressibleByArgument {}
