import ArgumentParser
import Foundation
import ModelPackage
import ServingPipeline

/// `emotion embed`: audio files and transcripts to embeddings with exactly the encoder that
/// serves, so training data is embedded by the serving code (train/serve parity).
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed audio files and/or transcripts with a model package's encoder.",
        discussion: """
        Items come from --audio/--text (each embedded on its own) or from --input, a JSON Lines file
        with one item per line: {"id": "u1", "audio": "clips/u1.flac", "text": "transcript"} (audio
        paths relative to the input file; either field may be absent).

        Output: JSON Lines on stdout (or --output), one line per item:
          {"id": "u1", "audio": [512 floats] or null, "text": [512 floats] or null}
        or, with --npy PREFIX, PREFIX.audio.npy and PREFIX.text.npy (float32, one row per item, zeros
        where a modality is absent) and PREFIX.ids.txt. Items that fail are reported on stderr with
        their id and the error code; the exit status is then 1.
        """)

    @Option(help: ArgumentHelp("Model package directory.", valueName: "dir")) var model: String = "Models/default"
    @Option(help: ArgumentHelp("An audio file to embed (repeatable).", valueName: "file")) var audio: [String] = []
    @Option(help: ArgumentHelp("A transcript to embed (repeatable).", valueName: "text")) var text: [String] = []
    @Option(help: ArgumentHelp("JSON Lines file of items ('-' for standard input).", valueName: "file")) var input: String?
    @Option(help: ArgumentHelp("Write JSON Lines here instead of stdout.", valueName: "file")) var output: String?
    @Option(help: ArgumentHelp("Write .npy matrices with this path prefix instead of JSON Lines.", valueName: "prefix")) var npy: String?
    @Option(help: "Longest accepted clip in seconds.") var maxAudioSeconds: Double = 600

    struct Item: Decodable {
        var id: String
        var audio: String?
        var text: String?
    }

    func items() throws -> [Item] {
        var list: [Item] = []
        for (i, path) in audio.enumerated() { list.append(Item(id: "audio-\(i)", audio: path, text: nil)) }
        for (i, t) in text.enumerated() { list.append(Item(id: "text-\(i)", audio: nil, text: t)) }
        if let input {
            let base = input == "-" ? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
                : URL(fileURLWithPath: input).deletingLastPathComponent()
            for (number, line) in JSONLines.lines(try JSONLines.read(input)) {
                var item = try JSONLines.decode(Item.self, line: line, number: number)
                if let a = item.audio, !a.hasPrefix("/") { item.audio = base.appendingPathComponent(a).path }
                list.append(item)
            }
        }
        guard !list.isEmpty else { throw CLIError.input("nothing to embed: give --audio, --text or --input") }
        return list
    }

    func run() throws {
        let list = try items()
        let encoder: TurnEmbedder
        do {
            encoder = try TurnEmbedder(package: ModelPackage.load(directory: URL(fileURLWithPath: model)),
                                       maxAudioSeconds: maxAudioSeconds)
        } catch {
            throw CLIError.input("--model \(JSONLines.quote(model)): \(error)")
        }
        let d = encoder.dimension
        var rows: [(id: String, audio: [Float]?, text: [Float]?)] = []
        var failures = 0
        for item in list {
            do {
                var a: [Float]?, t: [Float]?
                if let path = item.audio {
                    guard let data = FileManager.default.contents(atPath: path) else {
                        throw TurnEmbedderError(code: "file_unreadable", message: "cannot read \(path)")
                    }
                    a = try encoder.embed(audio: data)
                }
                if let s = item.text, !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    t = try encoder.embed(text: s)
                }
                rows.append((item.id, a, t))
            } catch {
                failures += 1
                standardError("emotion embed: \(item.id): \(error)")
            }
        }
        if let npy {
            try NPY.write(rows.map { $0.audio ?? [Float](repeating: 0, count: d) }, columns: d, to: npy + ".audio.npy")
            try NPY.write(rows.map { $0.text ?? [Float](repeating: 0, count: d) }, columns: d, to: npy + ".text.npy")
            try Data(rows.map { $0.id + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: npy + ".ids.txt"))
        } else {
            var out = Data()
            func array(_ v: [Float]?) -> String {
                guard let v else { return "null" }
                return "[" + v.map { "\($0)" }.joined(separator: ",") + "]"
            }
            for r in rows {
                out.append(Data("{\"id\": \(JSONLines.quote(r.id)), \"audio\": \(array(r.audio)), \"text\": \(array(r.text))}\n".utf8))
            }
            if let output { try out.write(to: URL(fileURLWithPath: output)) } else { FileHandle.standardOutput.write(out) }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// NumPy `.npy` (format 1.0) writer for float32 matrices.
enum NPY {
    static func write(_ rows: [[Float]], columns: Int, to path: String) throws {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows.count), \(columns)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(Data(header.utf8))
        data.reserveCapacity(data.count + rows.count * columns * 4)
        for row in rows {
            for v in row { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
