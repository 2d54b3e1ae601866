import CLITestSupport
import Conversation
import Foundation
import GatedXLSTM
import ModelPackage
import Numerics
import ServingPipeline
import Testing
import TestSupport

/// The shipped default model (Models/default) as the service ships it: it loads as the server
/// loads it, it reproduces the session-4 text-only figures its model card states (read from its
/// own model.json, never copied here: the package is rebuilt from time to time), and it answers
/// unambiguous single turns sensibly.
@Suite("default model", .serialized)
struct DefaultModelTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let modelDirectory = packageRoot.appendingPathComponent("Models/default")
    /// The shared data directory next to the repository (the CI machine has it).
    static let transcriptsCSV = packageRoot.appendingPathComponent("../shared/data/iemocap-text/transcripts.csv").standardized
    static let labels = ["angry", "happy", "neutral", "sad"]
    /// The target for session-4 text-only accuracy after offline DED.
    static let offlineDEDTarget = 0.72
    /// The acted speech corpora next to the repository (held-out speakers of the default model).
    static let speechData = packageRoot.appendingPathComponent("../shared/data/speech").standardized

    /// The model as `emotion-server` and `emotion evaluate` load it, once for the suite.
    static let served: Result<ServiceModel, LoadFailure> = {
        do {
            return .success(try ServiceModel.load(directory: modelDirectory, maxAudioSeconds: 600))
        } catch {
            return .failure(LoadFailure(description: "Models/default does not load as the server loads it: \(error)"))
        }
    }()

    struct LoadFailure: Error, CustomStringConvertible {
        let description: String
    }

    static func model() throws -> ServiceModel { try served.get() }

    /// model.json as JSON, for the figures and provenance.
    static func manifest() throws -> [String: Any] {
        let data = try Data(contentsOf: modelDirectory.appendingPathComponent("model.json"))
        return try #require(JSONSerialization.jsonObject(with: data) as? [String: Any], "model.json is not an object")
    }

    // MARK: - 1. The package

    @Test func loadsAsTheServerLoadsIt() async throws {
        let loaded = try await offPool { try Self.model() }
        let package = loaded.package

        // Checksum: the manifest states one, and the loader (verifyChecksum defaults to true) compared it.
        let stated = try #require(package.manifest.weightsSHA256, "model.json states no weights_sha256: nothing was verified")
        #expect(package.weights.sha256 == stated)
        #expect(throws: Never.self) { _ = try ModelPackage.load(directory: Self.modelDirectory, verifyChecksum: true) }

        // Every tensor claimed by a stage of the pipeline (ServiceModel.load also requires this).
        #expect(package.weights.unclaimedNames.isEmpty, "unclaimed tensors: \(package.weights.unclaimedNames.prefix(10))")
        #expect(package.weights.claimedNames.count == package.weights.names.count)

        #expect(package.manifest.labels == Self.labels)
        #expect(loaded.engine.classifier.labels == Self.labels)

        // The whole directory (weights, model.json, tokenizer, model card) within 100 MB.
        var total = 0
        let enumerator = try #require(FileManager.default.enumerator(at: Self.modelDirectory,
                                                                      includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey]))
        for case let url as URL in enumerator {
            let values = try url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
            if values.isRegularFile == true { total += values.fileSize ?? 0 }
        }
        #expect(total > 0)
        #expect(total <= 100_000_000, "Models/default is \(total) bytes, more than 100 MB")

        // The audio tower is the frozen Whisper-base encoder, from the checked CTranslate2 file.
        let audio = try #require(try Self.manifest()["audio"] as? [String: Any])
        #expect(audio["tower"] as? String == "whisper" && audio["front_end"] as? String == "whisper")
        let audioProvenance = try #require((try Self.manifest()["provenance"] as? [String: Any])?["audio"] as? [String: Any])
        #expect((audioProvenance["encoder"] as? String)?.contains("d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9") == true)

        // Provenance names the non-commercial licence.
        let provenance = try #require(try Self.manifest()["provenance"] as? [String: Any], "model.json has no provenance")
        let license = try #require(provenance["license"] as? String, "model.json provenance has no license")
        #expect(license.lowercased().contains("non-commercial"), "provenance.license: \(license)")
    }

    // MARK: - 2. The model card's session-4 text-only figures

    @Test func reproducesItsSession4TextFigures() async throws {
        guard FileManager.default.isReadableFile(atPath: Self.transcriptsCSV.path) else {
            Issue.record("""
                IEMOCAP transcripts not found at \(Self.transcriptsCSV.path) (<repo>/../shared/data/iemocap-text/transcripts.csv): \
                the default model's session-4 figures cannot be checked without them
                """)
            return
        }
        let dialogues = try IEMOCAPTranscripts.load(Self.transcriptsCSV).filter { $0.session == "Ses04" }
        try #require(!dialogues.isEmpty, "no session-4 dialogue in \(Self.transcriptsCSV.path)")
        let turnCount = dialogues.reduce(0) { $0 + $1.turns.count }

        let directory = try TemporaryDirectory()
        let input = directory.url.appendingPathComponent("session4.jsonl")
        try IEMOCAPTranscripts.jsonl(dialogues).write(to: input)
        let metricsURL = directory.url.appendingPathComponent("metrics.json")

        // Exactly `emotion evaluate --modality text`, as the model card's figures were measured.
        let cli = try CLIRunner.locate()
        let started = Date()
        // The CLI runs for tens of seconds: waited for off the cooperative pool.
        let arguments = ["evaluate", "--model", Self.modelDirectory.path, "--input", input.path,
                         "--modality", "text", "--metrics", metricsURL.path]
        let result = try await offPool { try cli.run(arguments) }
        let seconds = Date().timeIntervalSince(started)
        try #require(result.status == 0, "emotion evaluate failed (\(result.status)): \(result.stderr)")
        print("emotion evaluate --modality text on session 4: \(dialogues.count) dialogues, \(turnCount) turns, "
              + String(format: "%.1f s", seconds))

        let metrics = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: metricsURL)) as? [String: Any])
        #expect(metrics["modality"] as? String == "text")
        #expect(metrics["dialogues"] as? Int == dialogues.count)
        #expect(metrics["turns"] as? Int == turnCount)
        #expect(metrics["labels"] as? [String] == Self.labels)
        let scored = dialogues.reduce(0) { $0 + $1.turns.filter { $0.label != nil }.count }
        #expect(metrics["scored_turns"] as? Int == scored)
        let model = try #require(metrics["model"] as? [String: Any])
        #expect(model["weights_sha256"] as? String == (try Self.manifest()["weights_sha256"] as? String))

        let provenance = try #require(try Self.manifest()["provenance"] as? [String: Any], "model.json has no provenance")
        let figures = try #require((provenance["validation_accuracy"] as? [String: Any])?["session4 text"] as? [String: Any],
                                   "model.json has no provenance.validation_accuracy[\"session4 text\"]")
        var measured: [String: Double] = [:]
        for key in ["classifier", "ded_online", "ded_offline"] {
            let section = try #require(metrics[key] as? [String: Any], "metrics have no \(key)")
            let accuracy = try #require(section["accuracy"] as? Double)
            measured[key] = accuracy
            let stated = try #require((figures[key] as? NSNumber)?.doubleValue,
                                      "model.json states no session4 text \(key) accuracy")
            #expect(abs(accuracy - stated) <= 1e-3, "\(key): measured \(accuracy), model card \(stated)")
        }
        print("session 4 text accuracy: " + ["classifier", "ded_online", "ded_offline"]
            .map { String(format: "%@ %.4f (card %@)", $0, measured[$0] ?? .nan, "\(figures[$0] ?? "-")") }
            .joined(separator: ", "))
        let offline = try #require(measured["ded_offline"])
        #expect(offline >= Self.offlineDEDTarget, "offline DED accuracy \(offline) is below the target \(Self.offlineDEDTarget)")
    }

    // MARK: - 3. Held-out voices

    /// Audio only, one clip per request, on the speakers the model never heard (RAVDESS actors
    /// 17-20 and TESS OAF; read from ../shared/data/speech, never copied): 10 clips of each of the
    /// four labels per speaker, picked by a fixed rule; every speaker must be well above chance
    /// and the speaker mean near the model card's.
    /// The held-out speakers' clips (path relative to ../shared/data, label), by speaker; nil
    /// (an issue recorded) when the corpora are missing.
    static func heldOutClips() throws -> [String: [(path: String, label: String)]]? {
        var bySpeaker: [String: [(path: String, label: String)]] = [:]
        for corpus in ["ravdess", "tess"] {
            let manifest = Self.speechData.appendingPathComponent("\(corpus)/manifest.csv")
            guard FileManager.default.isReadableFile(atPath: manifest.path) else {
                Issue.record("acted speech not found at \(manifest.path): held-out voices cannot be checked")
                return nil
            }
            let rows = try CSV.parse(Data(contentsOf: manifest))
            let header = try #require(rows.first)
            let column = Dictionary(uniqueKeysWithValues: header.enumerated().map { ($1, $0) })
            let (path, speaker, emotion) = (try #require(column["path"]), try #require(column["speaker"]),
                                            try #require(column["emotion"]))
            for row in rows.dropFirst() where row.count == header.count {
                guard ["ravdess_17", "ravdess_18", "ravdess_19", "ravdess_20", "tess_OAF"].contains(row[speaker]),
                      Self.labels.contains(row[emotion]) else { continue }
                bySpeaker[row[speaker], default: []].append((row[path], row[emotion]))
            }
        }
        try #require(bySpeaker.count == 5, "held-out speakers found: \(bySpeaker.keys.sorted())")
        return bySpeaker
    }

    /// Ten clips of each label per held-out speaker, picked by a fixed rule.
    static func picked(_ clips: [(path: String, label: String)]) -> [(path: String, label: String)] {
        Self.labels.flatMap { label in clips.filter { $0.label == label }.sorted { $0.path < $1.path }.prefix(10) }
    }

    @Test func recognisesHeldOutVoices() async throws {
        guard let bySpeaker = try Self.heldOutClips() else { return }
        let engine = try await offPool { try Self.model() }.engine
        let labels = engine.classifier.labels
        var accuracies: [String: Double] = [:]
        for (speaker, clips) in bySpeaker.sorted(by: { $0.key < $1.key }) {
            let picked = Self.picked(clips)
            var correct = 0
            for clip in picked {
                let data = try Data(contentsOf: Self.speechData.deletingLastPathComponent().appendingPathComponent(clip.path))
                let analysis = try await engine.analyze([TurnInput(speaker: speaker, transcript: "", audio: data)])
                if labels[analysis.classifications[0].label] == clip.label { correct += 1 }
            }
            accuracies[speaker] = Double(correct) / Double(picked.count)
        }
        let mean = accuracies.values.reduce(0, +) / Double(accuracies.count)
        print("held-out voices, audio only: " + accuracies.sorted { $0.key < $1.key }
            .map { String(format: "%@ %.2f", $0.key, $0.value) }.joined(separator: ", ") + String(format: "; mean %.3f", mean))
        for (speaker, accuracy) in accuracies { #expect(accuracy >= 0.5, "\(speaker): \(accuracy)") }
        #expect(mean >= 0.7, "speaker mean \(mean)")
    }

    // MARK: - 3b. 16-bit weights

    /// Issue #12's accuracy guard on validation turns, classifier outputs turn by turn against the
    /// float32 model: session 4 as text-only dialogues and the held-out voices' clips as
    /// audio-only turns. f16 (the package's `weight_precision`; its weights are stored f16, so
    /// nothing is rounded): the argmax agrees on at least 99.5 % of the turns and every
    /// probability is within 1e-2. bf16 (8 significant bits): the argmax guard holds, the
    /// probabilities move up to about 2.7e-2 (measured), more than the 1e-2 the guard allows, which
    /// is why this package holds f16; bounded here at 5e-2 so that a regression shows.
    @Test func sixteenBitWeightsKeepTheAnswers() async throws {
        #expect(try Self.manifest()["weight_precision"] as? String == "f16")
        // Models load off the cooperative pool (seconds of synchronous work each).
        let served = try await offPool { try Self.model() }
        #expect(served.package.weights.weightPrecision == .f16)
        var inputs: [[TurnInput]] = []
        if FileManager.default.isReadableFile(atPath: Self.transcriptsCSV.path) {
            for dialogue in try IEMOCAPTranscripts.load(Self.transcriptsCSV).filter({ $0.session == "Ses04" }) {
                inputs.append(dialogue.turns.map { TurnInput(speaker: $0.speaker, transcript: $0.transcript, audio: nil) })
            }
        } else {
            Issue.record("IEMOCAP transcripts not found at \(Self.transcriptsCSV.path)")
        }
        if let bySpeaker = try Self.heldOutClips() {
            for (speaker, clips) in bySpeaker.sorted(by: { $0.key < $1.key }) {
                for clip in Self.picked(clips) {
                    let url = Self.speechData.deletingLastPathComponent().appendingPathComponent(clip.path)
                    inputs.append([TurnInput(speaker: speaker, transcript: "", audio: try Data(contentsOf: url))])
                }
            }
        }
        try #require(!inputs.isEmpty)
        func classify(_ engine: ConversationEngine) async throws -> [[Classification]] {
            var out: [[Classification]] = []
            for dialogue in inputs { out.append(try await engine.analyze(dialogue, repeatTwice: false).classifications) }
            return out
        }
        func load(_ precision: Linear.Precision) async throws -> ConversationEngine {
            try await offPool {
                try ServiceModel.load(directory: Self.modelDirectory, maxAudioSeconds: 600, weightPrecision: precision).engine
            }
        }
        let reference = try await classify(try await load(.f32))
        for (precision, bound) in [(Linear.Precision.f16, 1e-2), (.bf16, 5e-2)] {
            let engine = precision == .f16 ? served.engine : try await load(precision)
            let got = try await classify(engine)
            var turns = 0, agree = 0
            var worst = 0.0, worstText = 0.0, worstAudio = 0.0
            for (i, dialogue) in inputs.enumerated() {
                for (x, y) in zip(reference[i], got[i]) {
                    turns += 1
                    if x.label == y.label { agree += 1 }
                    let d = zip(x.probabilities, y.probabilities).map { Double(abs($0 - $1)) }.max() ?? 0
                    worst = max(worst, d)
                    if dialogue.first?.audio == nil { worstText = max(worstText, d) } else { worstAudio = max(worstAudio, d) }
                }
            }
            let agreement = Double(agree) / Double(max(turns, 1))
            print(String(format: "%@ vs f32 weights: %d turns, argmax agreement %.4f, max |dp| %.2e (text dialogues %.2e, audio clips %.2e)",
                         precision.rawValue, turns, agreement, worst, worstText, worstAudio))
            #expect(agreement >= 0.995, "\(precision): argmax agreement \(agreement) over \(turns) turns")
            #expect(worst <= bound, "\(precision): max probability difference \(worst)")
        }
    }

    // MARK: - 4. Single turns

    /// A probe of plain single sentences, three per label, written for this test (not taken from
    /// any training data). Single turns without context or voice are the weakest case of a model
    /// trained on dialogues, so the bar is twice chance (6 of 12) and every label recognised at
    /// least once, not perfection; the model card lists the probe's answers.
    static let probe: [(String, String)] = [
        ("I am so angry with you right now!", "angry"),
        ("How dare you! I hate you!", "angry"),
        ("This is ridiculous, I want my money back now!", "angry"),
        ("I'm so happy, this is wonderful news!", "happy"),
        ("That's fantastic, thank you so much!", "happy"),
        ("We won! I can't believe it, this is amazing!", "happy"),
        ("My grandmother passed away last night.", "sad"),
        ("I feel so lonely since she left.", "sad"),
        ("I lost my job today and I don't know what to do.", "sad"),
        ("The meeting is at three o'clock.", "neutral"),
        ("I will send you the form tomorrow.", "neutral"),
        ("Please hold the line.", "neutral"),
    ]

    @Test func answersPlainSingleTurns() async throws {
        let engine = try await offPool { try Self.model() }.engine
        let labels = engine.classifier.labels
        var correct = 0
        var recognised = Set<String>()
        for (transcript, expected) in Self.probe {
            let turn = TurnInput(speaker: "caller", transcript: transcript)
            // As POST /v1/dialogues/analyze answers a one-turn dialogue ...
            let analysis = try await engine.analyze([turn], repeatTwice: true)
            let label = labels[analysis.classifications[0].label]
            #expect(labels[analysis.decoded[0]] == label, "\(transcript): DED changed a one-turn dialogue")
            // ... and as the first turn of a session (POST /v1/sessions/{id}/turns): the same answer.
            let session = "default-model-\(UUID().uuidString)"
            let outcome = try await engine.submit(sessionId: session, turn: turn)
            #expect(labels[outcome.turn.label] == label, "\(transcript): session and analyze disagree")
            _ = engine.deleteSession(session)
            let probabilities = zip(labels, analysis.classifications[0].probabilities)
                .map { "\($0) \(String(format: "%.2f", $1))" }.joined(separator: ", ")
            print("probe: \(expected) -> \(label) (\(probabilities)): \(transcript)")
            if label == expected {
                correct += 1
                recognised.insert(expected)
            }
        }
        #expect(correct * 2 >= Self.probe.count, "\(correct) of \(Self.probe.count) probe sentences right")
        #expect(recognised == Set(labels), "labels never recognised: \(Set(labels).subtracting(recognised).sorted())")
    }
}

// MARK: - IEMOCAP session dialogues from the transcripts CSV

/// The transcripts CSV read as Training/pipeline/iemocap.py reads it for the default model's
/// evaluation (build_default.py): dialogues sorted by id, turns by start time (ties by utterance
/// id), speaker F/M from the utterance id, label angry (ang), happy (hap, exc), neutral (neu),
/// sad (sad), nil for any other label (context, not scored).
enum IEMOCAPTranscripts {
    static let label4 = ["ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"]
    static let emotions: Set<String> = ["ang", "hap", "exc", "neu", "sad", "fru", "sur", "fea", "dis", "oth", "xxx"]

    struct Turn: Encodable {
        var id: String
        var speaker: String
        var transcript: String
        var label: String?
        var start: Double

        private enum CodingKeys: String, CodingKey { case id, speaker, transcript, label }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(speaker, forKey: .speaker)
            try c.encode(transcript, forKey: .transcript)
            try c.encode(label, forKey: .label)  // null for a turn that is context
        }
    }

    struct Dialogue: Encodable {
        var dialogue: String
        var session: String
        var turns: [Turn]
        private enum CodingKeys: String, CodingKey { case dialogue, turns }
    }

    struct FormatError: Error, CustomStringConvertible {
        let description: String
    }

    static func load(_ url: URL) throws -> [Dialogue] {
        let rows = try CSV.parse(Data(contentsOf: url))
        guard let header = rows.first else { throw FormatError(description: "\(url.path): empty") }
        var column: [String: Int] = [:]
        for (i, name) in header.enumerated() { column[name.trimmingCharacters(in: .whitespaces)] = i }
        let needed = ["fileid", "session", "dialogue", "speaker", "time", "emotion", "transcription"]
        let missing = needed.filter { column[$0] == nil }
        guard missing.isEmpty else { throw FormatError(description: "\(url.path): missing columns \(missing)") }

        var byDialogue: [String: [Turn]] = [:]
        var sessions: [String: String] = [:]
        for (number, row) in rows.enumerated().dropFirst() where !(row.count == 1 && row[0].isEmpty) {
            func field(_ name: String) throws -> String {
                guard let i = column[name], i < row.count else {
                    throw FormatError(description: "\(url.path): row \(number + 1) has no \(name)")
                }
                return row[i].trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let id = try field("fileid"), dialogue = try field("dialogue"), emotion = try field("emotion")
            guard id.hasPrefix(dialogue + "_"), let speaker = id.split(separator: "_").last?.first.map(String.init),
                  speaker == "F" || speaker == "M" else {
                throw FormatError(description: "\(url.path): row \(number + 1): \(id) is not an utterance of \(dialogue)")
            }
            guard emotions.contains(emotion) else {
                throw FormatError(description: "\(url.path): row \(number + 1): unknown emotion \(emotion)")
            }
            let span = try field("time").split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
            guard span.count == 2, let start = Double(span[0]) else {
                throw FormatError(description: "\(url.path): row \(number + 1): time \(try field("time"))")
            }
            sessions[dialogue] = try field("session")
            byDialogue[dialogue, default: []].append(
                Turn(id: id, speaker: speaker, transcript: try field("transcription"), label: label4[emotion], start: start))
        }
        return byDialogue.keys.sorted().map { name in
            let turns = byDialogue[name]!.sorted { ($0.start, $0.id) < ($1.start, $1.id) }
            return Dialogue(dialogue: name, session: sessions[name] ?? String(name.prefix(5)), turns: turns)
        }
    }

    /// `emotion evaluate` input: one dialogue a line.
    static func jsonl(_ dialogues: [Dialogue]) throws -> Data {
        let encoder = JSONEncoder()
        var data = Data()
        for dialogue in dialogues {
            data.append(try encoder.encode(dialogue))
            data.append(0x0A)
        }
        return data
    }
}

/// RFC 4180 CSV (quoted fields with doubled quotes, separators and line breaks inside quotes,
/// LF or CRLF rows, optional UTF-8 BOM), as Python's csv module reads it.
enum CSV {
    static func parse(_ data: Data) throws -> [[String]] {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var rows: [[String]] = [], row: [String] = [], field: [UInt8] = []
        var quoted = false, i = 0
        func endField() { row.append(String(decoding: field, as: UTF8.self)); field.removeAll(keepingCapacity: true) }
        func endRow() { endField(); rows.append(row); row = [] }
        while i < bytes.count {
            let b = bytes[i]
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") { field.append(b); i += 1 } else { quoted = false }
                } else {
                    field.append(b)
                }
            } else {
                switch b {
                case UInt8(ascii: "\""): quoted = true
                case UInt8(ascii: ","): endField()
                case UInt8(ascii: "\r"):
                    if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\n") { i += 1 }
                    endRow()
                case UInt8(ascii: "\n"): endRow()
                default: field.append(b)
                }
            }
            i += 1
        }
        if quoted { throw IEMOCAPTranscripts.FormatError(description: "CSV: unterminated quoted field") }
        if !field.isEmpty || !row.isEmpty { endRow() }
        return rows
    }
}

