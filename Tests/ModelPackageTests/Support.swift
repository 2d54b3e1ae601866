import Foundation
import Numerics
import Testing
@testable import ModelPackage

// MARK: - Fixtures written by Training/fixtures/make_safetensors_fixtures.py

struct ExpectedTensor: Decodable {
    let dtype: String
    let shape: [Int]
    let float32_bits: [UInt32]
    let values: [String]
}

struct ExpectedFile: Decodable {
    let size: Int
    let sha256: String
    let metadata: [String: String]
    let tensors: [String: ExpectedTensor]
}

struct ExpectedFixtures: Decodable {
    let files: [String: ExpectedFile]
}

enum Fixtures {
    static func url(_ name: String) throws -> URL {
        try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"),
                     "fixture \(name) is missing; run Training/fixtures/make_safetensors_fixtures.py")
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(name)))
    }

    static func expected() throws -> ExpectedFixtures {
        try JSONDecoder().decode(ExpectedFixtures.self, from: Data(contentsOf: url("expected.json")))
    }
}

// MARK: - Building safetensors bytes by hand (for broken files)

enum Safetensors {
    /// `u64 LE header length` + header + data.
    static func file(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        let headerBytes = Array(header.utf8)
        var out: [UInt8] = []
        let length = declaredLength ?? UInt64(headerBytes.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: length >> (8 * UInt64(i)))) }
        out += headerBytes
        out += data
        return out
    }

    static func f32Bytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in
            let b = v.bitPattern.littleEndian
            return [UInt8(b & 0xFF), UInt8((b >> 8) & 0xFF), UInt8((b >> 16) & 0xFF), UInt8(b >> 24)]
        }
    }

    /// Header length and JSON of a file.
    static func header(of bytes: [UInt8]) -> (length: Int, json: String) {
        var length = 0
        for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
        return (length, String(decoding: bytes[8..<(8 + length)], as: UTF8.self))
    }
}

// MARK: - Temporary package directories

final class TempDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("ModelPackageTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
        return file
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> URL {
        try write(name, Array(text.utf8))
    }
}

/// A model.json with the common fields and a classifier section; `overrides` replaces or (with
/// nil) removes top-level keys, given as raw JSON text.
func manifestJSON(_ overrides: [String: String?] = [:]) -> String {
    var fields: [(String, String)] = [
        ("format", "\"gatedxlstm-model\""),
        ("format_version", "1"),
        ("name", "\"tiny-test\""),
        ("labels", "[\"angry\", \"happy\", \"neutral\", \"sad\"]"),
        ("provenance", "{\"data\": \"none\", \"metrics\": {\"uar\": 0.5}, \"license\": \"CC0\"}"),
        ("classifier", "{\"width\": 8, \"blocks\": 2, \"heads\": [1, 2]}"),
    ]
    for (key, value) in overrides {
        if let index = fields.firstIndex(where: { $0.0 == key }) {
            if let value { fields[index].1 = value } else { fields.remove(at: index) }
        } else if let value {
            fields.append((key, value))
        }
    }
    return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
}

// MARK: - Error expectations

/// The code and message of a thrown error, if it is one of ours.
func codeAndMessage(_ error: Error) -> (String, String)? {
    if let e = error as? ModelPackageError { return (e.code, e.message) }
    if let e = error as? ParameterError { return (e.code, e.message) }
    return nil
}

/// Expects `body` to throw a ModelPackageError/ParameterError with `code` whose message contains
/// every string in `mentioning`.
func expectError<T>(_ code: String, mentioning: [String] = [],
                    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) {
    do {
        _ = try body()
        Issue.record("expected error \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch {
        guard let (actual, message) = codeAndMessage(error) else {
            Issue.record("expected error \(code), got foreign error \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(actual == code, "message: \(message)", sourceLocation: sourceLocation)
        for needle in mentioning {
            #expect(message.contains(needle), "message '\(message)' does not mention '\(needle)'",
                    sourceLocation: sourceLocation)
        }
    }
}

/// Bitwise float comparison where any NaN equals any NaN.
func sameFloat(_ a: Float, _ b: Float) -> Bool {
    (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern
}

