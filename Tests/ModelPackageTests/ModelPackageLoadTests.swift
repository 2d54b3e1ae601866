import Foundation
import Numerics
import Testing
@testable import ModelPackage

/// Whole packages in temporary directories: the happy path and each way a package can be broken.
@Suite struct ModelPackageLoadTests {
    struct ClassifierSection: Decodable, Equatable {
        let width: Int
        let blocks: Int
        let heads: [Int]
    }

    /// A package with small.safetensors (tensors "w" F32 [2,3], "h" F16 [4]).
    func validPackage(manifest: String = manifestJSON(), weightsName: String = "weights.safetensors") throws -> TempDirectory {
        let dir = try TempDirectory()
        try dir.write("model.json", manifest)
        try dir.write(weightsName, Fixtures.bytes("small.safetensors"))
        return dir
    }

    @Test func loadsAValidPackage() throws {
        let dir = try validPackage()
        let package = try ModelPackage.load(directory: dir.url)
        #expect(package.manifest.format == "gatedxlstm-model")
        #expect(package.manifest.formatVersion == 1)
        #expect(package.manifest.name == "tiny-test")
        #expect(package.manifest.labels == ["angry", "happy", "neutral", "sad"])
        #expect(package.manifest.weights == "weights.safetensors")
        #expect(package.manifest.weightsSHA256 == nil)
        #expect(package.manifest.sectionKeys == ["classifier"])
        #expect(package.manifest.provenance["license"] == .string("CC0"))
        #expect(package.manifest.provenance["metrics"]?["uar"] == .number(0.5))
        #expect(package.hasSection("classifier"))
        #expect(!package.hasSection("ded"))

        let section = try package.section("classifier", as: ClassifierSection.self)
        #expect(section == ClassifierSection(width: 8, blocks: 2, heads: [1, 2]))
        let raw = try package.section("classifier", as: JSONValue.self)
        #expect(raw["heads"]?[1]?.intValue == 2)

        let expected = try #require(try Fixtures.expected().files["small.safetensors"])
        #expect(package.weights.names == ["h", "w"])
        #expect(package.weights.sha256 == expected.sha256)
        let w = try package.weights.parameter("w", shape: [2, 3])
        #expect(w.values.map(\.bitPattern) == expected.tensors["w"]!.float32_bits)
        #expect(package.manifestSHA256 == SHA256Digest.hex(of: try Data(contentsOf: dir.url.appendingPathComponent("model.json"))))
    }

    @Test func defaultsForOptionalFields() throws {
        let dir = try validPackage(manifest: manifestJSON(["provenance": nil]))
        let package = try ModelPackage.load(directory: dir.url)
        #expect(package.manifest.provenance == .object([:]))
    }

    @Test func weightsInASubdirectory() throws {
        let dir = try validPackage(manifest: manifestJSON(["weights": "\"tensors/./w.safetensors\""]),
                                   weightsName: "tensors/w.safetensors")
        let package = try ModelPackage.load(directory: dir.url)
        #expect(package.weights.names == ["h", "w"])
    }

    @Test func checksumIsVerified() throws {
        let expected = try #require(try Fixtures.expected().files["small.safetensors"])
        let good = try validPackage(manifest: manifestJSON(["weights_sha256": "\"\(expected.sha256.uppercased())\""]))
        #expect(try ModelPackage.load(directory: good.url).manifest.weightsSHA256 == expected.sha256)

        var wrong = Array(expected.sha256)
        wrong[0] = wrong[0] == "0" ? "1" : "0"
        let bad = try validPackage(manifest: manifestJSON(["weights_sha256": "\"\(String(wrong))\""]))
        expectError("checksum_mismatch", mentioning: ["weights.safetensors", expected.sha256, String(wrong)]) {
            try ModelPackage.load(directory: bad.url)
        }
        // Verification can be skipped (e.g. a trusted, already-verified deployment).
        _ = try ModelPackage.load(directory: bad.url, verifyChecksum: false)

        let malformed = try validPackage(manifest: manifestJSON(["weights_sha256": "\"abc\""]))
        expectError("bad_manifest", mentioning: ["weights_sha256"]) { try ModelPackage.load(directory: malformed.url) }
    }

    @Test func missingManifest() throws {
        let dir = try TempDirectory()
        try dir.write("weights.safetensors", Fixtures.bytes("small.safetensors"))
        expectError("missing_file", mentioning: ["model.json"]) { try ModelPackage.load(directory: dir.url) }
        expectError("missing_file", mentioning: ["no-such-package"]) {
            try ModelPackage.load(directory: dir.url.appendingPathComponent("no-such-package"))
        }
    }

    @Test func manifestIsADirectory() throws {
        let dir = try TempDirectory()
        try FileManager.default.createDirectory(at: dir.url.appendingPathComponent("model.json"), withIntermediateDirectories: true)
        expectError("io_error", mentioning: ["model.json"]) { try ModelPackage.load(directory: dir.url) }
    }

    @Test func badJSON() throws {
        for text in ["{\"format\": \"gatedxlstm-model\",", "", "{'format': 1}", "\u{0}"] {
            let dir = try validPackage(manifest: text)
            expectError("bad_manifest", mentioning: ["model.json", "JSON"]) { try ModelPackage.load(directory: dir.url) }
        }
        // Syntax errors carry a position.
        let positioned = try validPackage(manifest: "{\n  \"format\": \"gatedxlstm-model\",\n  \"name\": nope\n}")
        expectError("bad_manifest", mentioning: ["model.json", "line 3, column"]) { try ModelPackage.load(directory: positioned.url) }
        let array = try validPackage(manifest: "[1, 2]")
        expectError("bad_manifest", mentioning: ["model.json", "object"]) { try ModelPackage.load(directory: array.url) }
    }

    @Test func wrongFormat() throws {
        let dir = try validPackage(manifest: manifestJSON(["format": "\"onnx\""]))
        expectError("unsupported_format", mentioning: ["model.json", "onnx"]) { try ModelPackage.load(directory: dir.url) }
        let missing = try validPackage(manifest: manifestJSON(["format": nil]))
        expectError("bad_manifest", mentioning: ["'format'"]) { try ModelPackage.load(directory: missing.url) }
        let number = try validPackage(manifest: manifestJSON(["format": "7"]))
        expectError("bad_manifest", mentioning: ["'format'", "string"]) { try ModelPackage.load(directory: number.url) }
    }

    @Test func formatVersion() throws {
        let newer = try validPackage(manifest: manifestJSON(["format_version": "2"]))
        expectError("unsupported_format_version", mentioning: ["format_version 2"]) { try ModelPackage.load(directory: newer.url) }
        for bad in ["\"1\"", "0", "-1", "1.5", "null"] {
            let dir = try validPackage(manifest: manifestJSON(["format_version": bad]))
            expectError("bad_manifest", mentioning: ["format_version"]) { try ModelPackage.load(directory: dir.url) }
        }
        let missing = try validPackage(manifest: manifestJSON(["format_version": nil]))
        expectError("bad_manifest", mentioning: ["'format_version'"]) { try ModelPackage.load(directory: missing.url) }
    }

    @Test func nameIsRequired() throws {
        for manifest in [manifestJSON(["name": nil]), manifestJSON(["name": "\"\""]), manifestJSON(["name": "[]"])] {
            let dir = try validPackage(manifest: manifest)
            expectError("bad_manifest", mentioning: ["name"]) { try ModelPackage.load(directory: dir.url) }
        }
    }

    @Test func labels() throws {
        let duplicate = try validPackage(manifest: manifestJSON(["labels": "[\"happy\", \"sad\", \"happy\"]"]))
        expectError("bad_manifest", mentioning: ["duplicate label 'happy'", "labels[2]"]) { try ModelPackage.load(directory: duplicate.url) }
        let cases: [(String?, String)] = [
            ("[]", "'labels' must not be empty"),
            ("\"happy\"", "'labels' must be an array"),
            ("[\"a\", 3]", "labels[1]"),
            ("[\"a\", \"\"]", "labels[1] is empty"),
            (nil, "missing key 'labels'"),
        ]
        for (value, needle) in cases {
            let dir = try validPackage(manifest: manifestJSON(["labels": value]))
            expectError("bad_manifest", mentioning: [needle]) { try ModelPackage.load(directory: dir.url) }
        }
    }

    /// `weight_precision` (how layers hold packed weights): absent means f32, "bf16" is kept, the
    /// load option overrides it either way, anything else is refused by name.
    @Test func weightPrecision() throws {
        let plainDirectory = try validPackage()
        let plain = try ModelPackage.load(directory: plainDirectory.url)
        #expect(plain.manifest.weightPrecision == nil && plain.weights.weightPrecision == .f32)
        let dir = try validPackage(manifest: manifestJSON(["weight_precision": "\"bf16\""]))
        let stated = try ModelPackage.load(directory: dir.url)
        #expect(stated.manifest.weightPrecision == .bf16 && stated.weights.weightPrecision == .bf16)
        #expect(!stated.hasSection("weight_precision"))
        #expect(try ModelPackage.load(directory: dir.url, weightPrecision: .f32).weights.weightPrecision == .f32)
        #expect(try ModelPackage.load(directory: plainDirectory.url, weightPrecision: .bf16).weights.weightPrecision == .bf16)
        for value in ["\"fp8\"", "16", "\"BF16\""] {
            let bad = try validPackage(manifest: manifestJSON(["weight_precision": value]))
            expectError("bad_manifest", mentioning: ["weight_precision"]) { try ModelPackage.load(directory: bad.url) }
        }
    }

    @Test func provenanceMustBeAnObject() throws {
        let dir = try validPackage(manifest: manifestJSON(["provenance": "\"trained by me\""]))
        expectError("bad_manifest", mentioning: ["provenance"]) { try ModelPackage.load(directory: dir.url) }
    }

    @Test func missingWeightsFile() throws {
        let dir = try TempDirectory()
        try dir.write("model.json", manifestJSON(["weights": "\"w.safetensors\""]))
        expectError("missing_file", mentioning: ["w.safetensors", "model.json"]) { try ModelPackage.load(directory: dir.url) }
        let defaultName = try TempDirectory()
        try defaultName.write("model.json", manifestJSON())
        expectError("missing_file", mentioning: ["weights.safetensors"]) { try ModelPackage.load(directory: defaultName.url) }
    }

    @Test func weightsIsADirectory() throws {
        let dir = try TempDirectory()
        try dir.write("model.json", manifestJSON())
        try FileManager.default.createDirectory(at: dir.url.appendingPathComponent("weights.safetensors"), withIntermediateDirectories: true)
        expectError("io_error", mentioning: ["weights.safetensors", "not a regular file"]) { try ModelPackage.load(directory: dir.url) }
    }

    @Test(arguments: ["../weights.safetensors", "/etc/passwd", "a/../../weights.safetensors", "..", "sub/..",
                      "", "~/w.safetensors", "a\\\\..\\\\b", ".", "a/"])
    func pathTraversalInWeights(_ path: String) throws {
        // Put a real weights file where "../weights.safetensors" would land, so that only the
        // path check can refuse it.
        let outer = try TempDirectory()
        try outer.write("weights.safetensors", Fixtures.bytes("small.safetensors"))
        let inner = outer.url.appendingPathComponent("pkg")
        try outer.write("pkg/model.json", manifestJSON(["weights": "\"\(path)\""]))
        expectError("unsafe_path", mentioning: ["weights"]) { try ModelPackage.load(directory: inner) }
    }

    @Test func everyTruncationOfTheWeightsFile() throws {
        let bytes = try Fixtures.bytes("small.safetensors")
        let dir = try TempDirectory()
        try dir.write("model.json", manifestJSON())
        for n in 0..<bytes.count {
            try dir.write("weights.safetensors", Array(bytes[0..<n]))
            expectError("truncated_file", mentioning: ["weights.safetensors"]) { try ModelPackage.load(directory: dir.url) }
        }
        try dir.write("weights.safetensors", bytes)
        _ = try ModelPackage.load(directory: dir.url)
    }

    @Test func headerLengthLargerThanTheWeightsFile() throws {
        var bytes = try Fixtures.bytes("small.safetensors")
        let length = UInt64(bytes.count)  // larger than the bytes after the length field
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: length >> (8 * UInt64(i))) }
        let dir = try TempDirectory()
        try dir.write("model.json", manifestJSON())
        try dir.write("weights.safetensors", bytes)
        expectError("truncated_file", mentioning: ["weights.safetensors", "header length \(length)"]) {
            try ModelPackage.load(directory: dir.url)
        }
    }

    @Test func brokenWeightsOnDisk() throws {
        let dir = try TempDirectory()
        try dir.write("model.json", manifestJSON())
        try dir.write("weights.safetensors", Safetensors.file(
            header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            data: Safetensors.f32Bytes([1, 2, 3])))
        expectError("bad_offsets", mentioning: ["weights.safetensors", "'a'", "'b'", "overlap"]) { try ModelPackage.load(directory: dir.url) }

        try dir.write("weights.safetensors", Safetensors.file(
            header: #"{"emb":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        expectError("unsupported_dtype", mentioning: ["weights.safetensors", "'emb'", "F64"]) { try ModelPackage.load(directory: dir.url) }

        try dir.write("weights.safetensors", Array("this is not a safetensors file, just text".utf8))
        expectError("bad_header") { try ModelPackage.load(directory: dir.url) }
    }

    @Test func tensorRequests() throws {
        let dir = try validPackage()
        let store = try ModelPackage.load(directory: dir.url).weights
        expectError("tensor_shape_mismatch", mentioning: ["'w'", "[2, 3]", "[3, 2]"]) { try store.parameter("w", shape: [3, 2]) }
        expectError("tensor_shape_mismatch", mentioning: ["'h'"]) { try store.parameter("h", shape: [4, 1]) }
        expectError("missing_tensor", mentioning: ["'blocks.0.norm.weight'", "weights.safetensors"]) {
            try store.parameter("blocks.0.norm.weight", shape: [8])
        }
        // Failed requests claim nothing.
        #expect(store.claimedNames.isEmpty)
        #expect(store.unclaimedNames == ["h", "w"])

        _ = try store.parameter("w", shape: [2, 3])
        expectError("unexpected_tensor", mentioning: ["'h'", "1 tensor"]) { try store.requireAllClaimed() }
        #expect(store.claimedNames == ["w"])
        _ = try store.tensor("h")  // inspection does not claim
        #expect(store.unclaimedNames == ["h"])
        _ = try store.parameter("h", shape: [4])
        try store.requireAllClaimed()

        store.resetClaims()
        expectError("unexpected_tensor", mentioning: ["'h'", "'w'", "2 tensors"]) { try store.requireAllClaimed() }
    }

    @Test func extraTensorsAreNamed() throws {
        let dir = try TempDirectory()
        try dir.write("model.json", manifestJSON())
        try dir.write("weights.safetensors", Fixtures.bytes("mixed.safetensors"))
        let store = try ModelPackage.load(directory: dir.url).weights
        for name in store.names where !name.hasPrefix("half.") {
            _ = try store.parameter(name, shape: store.shape(of: name)!)
        }
        expectError("unexpected_tensor", mentioning: ["'half.random'", "'half.scalar'", "'half.special'", "3 tensors"]) {
            try store.requireAllClaimed()
        }
    }

    @Test func sections() throws {
        let dir = try validPackage(manifest: manifestJSON(["ded": "{\"p0\": 0.3, \"alpha\": \"one\"}"]))
        let package = try ModelPackage.load(directory: dir.url)
        #expect(package.manifest.sectionKeys == ["classifier", "ded"])

        struct DEDSection: Decodable { let p0: Double; let alpha: Double; let beam: Int? }
        expectError("bad_manifest", mentioning: ["section 'ded'", "ded.alpha"]) { try package.section("ded", as: DEDSection.self) }
        expectError("missing_section", mentioning: ["'audio'", "model.json", "classifier"]) {
            try package.section("audio", as: JSONValue.self)
        }
        struct Strict: Decodable { let width: Int; let depth: Int }
        expectError("bad_manifest", mentioning: ["section 'classifier'", "'depth'"]) { try package.section("classifier", as: Strict.self) }
        struct Nested: Decodable { let heads: [String] }
        expectError("bad_manifest", mentioning: ["classifier.heads[0]"]) { try package.section("classifier", as: Nested.self) }
        // Common fields can be read as sections too.
        #expect(try package.section("labels", as: [String].self).count == 4)
    }

    @Test func namedFiles() throws {
        let dir = try validPackage()
        try dir.write("tokenizer/vocab.json", "{}")
        let package = try ModelPackage.load(directory: dir.url)
        #expect(try package.file("tokenizer/vocab.json").lastPathComponent == "vocab.json")
        expectError("missing_file", mentioning: ["merges.txt", "tokenizer.merges"]) {
            try package.file("tokenizer/merges.txt", key: "tokenizer.merges")
        }
        expectError("unsafe_path", mentioning: ["tokenizer.vocab"]) { try package.file("../vocab.json", key: "tokenizer.vocab") }
        expectError("missing_file") { try package.file("tokenizer") }
    }

    @Test func concurrentRequestsShareOneWidenedCopy() throws {
        let dir = try TempDirectory()
        try dir.write("model.json", manifestJSON())
        try dir.write("weights.safetensors", Fixtures.bytes("mixed.safetensors"))
        let store = try ModelPackage.load(directory: dir.url).weights
        let names = store.names
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var widened: [UInt] = []
            func add(_ address: UInt) { lock.lock(); widened.append(address); lock.unlock() }
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let name = i % 2 == 0 ? "half.special" : names[i % names.count]
            let p = try? store.parameter(name, shape: store.shape(of: name)!)
            if i % 2 == 0 { results.add(UInt(bitPattern: p?.pointer)) }
            _ = store.sha256
        }
        #expect(results.widened.count == 32)
        #expect(Set(results.widened).count == 1 && !results.widened.contains(0))
        #expect(store.claimedNames.contains("half.special"))
    }
}
