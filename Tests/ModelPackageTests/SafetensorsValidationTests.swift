import Foundation
import Numerics
import Testing
@testable import ModelPackage
import TestSupport

/// Broken and hostile safetensors files: each must be refused with the right code and a message
/// naming the problem, and nothing may crash.
@Suite struct SafetensorsValidationTests {
    // A valid two-tensor file built by hand: a: F32 [2], b: F32 [1].
    static let validHeader = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
    static let validData = Safetensors.f32Bytes([1, 2, 3])

    @Test func handBuiltFileIsAccepted() throws {
        let file = try SafetensorsFile(bytes: Safetensors.file(header: Self.validHeader, data: Self.validData))
        #expect(file.names == ["a", "b"])
        let store = WeightStore(file: file)
        #expect(try store.parameter("a", shape: [2]).values == [1, 2])
        #expect(try store.parameter("b", shape: [1]).values == [3])
    }

    @Test func tooShortForTheLengthField() {
        for n in 0..<8 {
            expectError("truncated_file", mentioning: ["<memory>", "8-byte"]) {
                try SafetensorsFile(bytes: [UInt8](repeating: 0, count: n))
            }
        }
    }

    @Test func headerLengthLargerThanFile() {
        let bytes = Safetensors.file(header: Self.validHeader, data: Self.validData,
                                     declaredLength: UInt64(Self.validHeader.utf8.count + 13))
        expectError("truncated_file", mentioning: ["header length"]) { try SafetensorsFile(bytes: bytes) }
        for absurd: UInt64 in [UInt64.max, 1 << 63, UInt64(Int.max), 200_000_000] {
            let b = Safetensors.file(header: Self.validHeader, data: Self.validData, declaredLength: absurd)
            expectError("bad_header", mentioning: ["header length", "\(absurd)"]) { try SafetensorsFile(bytes: b) }
        }
    }

    @Test func everyTruncationOfAReferenceFileIsRefused() throws {
        let bytes = try Fixtures.bytes("mixed.safetensors")
        for n in 0..<bytes.count {
            expectError("truncated_file") { try SafetensorsFile(bytes: bytes[0..<n]) }
        }
        _ = try SafetensorsFile(bytes: bytes)
    }

    @Test func invalidJSONHeader() {
        for header in ["{\"a\": ", "not json at all", "{\"a\":{\"dtype\":\"F32\"", "\u{FF}\u{FE}{}", "{}}", "{\"a\" 1}"] {
            expectError("bad_header", mentioning: ["JSON"]) {
                try SafetensorsFile(bytes: Safetensors.file(header: header))
            }
        }
        // Swift's JSON parser tolerates a trailing comma; the entry is still refused.
        expectError("bad_header", mentioning: ["'a'"]) {
            try SafetensorsFile(bytes: Safetensors.file(header: "{\"a\":{\"dtype\":\"F32\",}}"))
        }
        let invalidUTF8: [UInt8] = [8, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D]
        expectError("bad_header") { try SafetensorsFile(bytes: invalidUTF8) }
    }

    @Test func headerMustBeAnObject() {
        for header in ["[]", "[1,2]", "42", "\"x\"", "null"] {
            expectError("bad_header") { try SafetensorsFile(bytes: Safetensors.file(header: header)) }
        }
        expectError("bad_header", mentioning: ["not a JSON object"]) {
            try SafetensorsFile(bytes: Safetensors.file(header: "[{}]"))
        }
    }

    @Test func emptyHeaderObjectAndEmptyData() throws {
        let file = try SafetensorsFile(bytes: Safetensors.file(header: "{}"))
        #expect(file.names.isEmpty)
        let withMeta = try SafetensorsFile(bytes: Safetensors.file(header: #"{"__metadata__":{"k":"v"}}"#))
        #expect(withMeta.metadata == ["k": "v"])
        // An empty header object with data bytes: the bytes belong to no tensor.
        expectError("bad_offsets", mentioning: ["trailing"]) {
            try SafetensorsFile(bytes: Safetensors.file(header: "{}", data: [1, 2, 3, 4]))
        }
    }

    @Test func malformedEntries() {
        let cases: [(String, [String])] = [
            (#"{"t":{"shape":[1],"data_offsets":[0,4]}}"#, ["'t'", "dtype"]),
            (#"{"t":{"dtype":"F32","data_offsets":[0,4]}}"#, ["'t'", "shape"]),
            (#"{"t":{"dtype":"F32","shape":[1]}}"#, ["'t'", "data_offsets"]),
            (#"{"t":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}"#, ["'t'"]),
            (#"{"t":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, ["'t'"]),
            (#"{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, ["'t'"]),
            (#"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, ["'t'", "negative"]),
            (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, ["'t'", "data_offsets"]),
            (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4]}}"#, ["'t'", "data_offsets"]),
            (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, ["'t'", "start <= end"]),
            (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, ["'t'"]),
            (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,100000000000000000000]}}"#, ["'t'"]),
            (#"{"t":[1,2,3]}"#, ["'t'"]),
            (#"{"t":null}"#, ["'t'"]),
            (#"{"__metadata__":{"k":1}}"#, ["__metadata__"]),
            (#"{"__metadata__":[]}"#, ["__metadata__"]),
        ]
        for (header, needles) in cases {
            expectError("bad_header", mentioning: needles) {
                try SafetensorsFile(bytes: Safetensors.file(header: header, data: [0, 0, 0, 0]))
            }
        }
    }

    @Test func unsupportedDtypes() {
        for dtype in ["F64", "I8", "U8", "I32", "BOOL", "F8_E4M3", "Q4_0", "f32", ""] {
            let header = #"{"weights.q":{"dtype":"\#(dtype)","shape":[2],"data_offsets":[0,2]}}"#
            expectError("unsupported_dtype", mentioning: ["'weights.q'", "dtype \(dtype)"]) {
                try SafetensorsFile(bytes: Safetensors.file(header: header, data: [0, 0]))
            }
        }
    }

    @Test func byteRangeMustMatchShape() {
        expectError("tensor_size_mismatch", mentioning: ["'t'", "needs 16 bytes", "span 12"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, data: [UInt8](repeating: 0, count: 12)))
        }
        expectError("tensor_size_mismatch", mentioning: ["'h'"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        }
    }

    @Test func absurdShapesAndOffsetsDoNotOverflow() throws {
        let big = Int.max / 2 + 1
        let overflowing = [
            #"{"t":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}"#,
            #"{"t":{"dtype":"F32","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}}"#,
            #"{"t":{"dtype":"F32","shape":[\#(big)],"data_offsets":[0,0]}}"#,
            #"{"t":{"dtype":"BF16","shape":[9223372036854775807],"data_offsets":[0,0]}}"#,
        ]
        for header in overflowing {
            expectError("tensor_size_mismatch", mentioning: ["'t'", "overflows"]) {
                try SafetensorsFile(bytes: Safetensors.file(header: header))
            }
        }
        // Consistent but absurd sizes point past the end of the file.
        expectError("truncated_file", mentioning: ["'t'"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"t":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,4611686018427387904]}}"#))
        }
        expectError("truncated_file", mentioning: ["'t'"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775803,9223372036854775807]}}"#))
        }
        // A zero in the shape before any overflow is a legal empty tensor.
        let file = try SafetensorsFile(bytes: Safetensors.file(
            header: #"{"t":{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0]}}"#))
        let p = try WeightStore(file: file).parameter("t", shape: [0, 4611686018427387904])
        #expect(p.count == 0)
    }

    @Test func tensorDataOutsideTheFile() {
        expectError("truncated_file", mentioning: ["'b'", "ends at data offset 16"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
                data: Self.validData))
        }
    }

    @Test func overlappingOffsets() {
        expectError("bad_offsets", mentioning: ["'a'", "'b'", "overlap"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                data: Self.validData))
        }
        // The same range claimed twice.
        expectError("bad_offsets", mentioning: ["overlap"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#,
                data: Self.validData))
        }
    }

    @Test func gapsAndTrailingBytes() {
        expectError("bad_offsets", mentioning: ["'b'", "belong to no tensor"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                data: Self.validData))
        }
        expectError("bad_offsets", mentioning: ["4 trailing bytes"]) {
            try SafetensorsFile(bytes: Safetensors.file(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: Self.validData))
        }
    }

    @Test func misalignedF32IsCopied() throws {
        // Header length 13 puts the data at byte 21 of 16-byte-aligned storage: not 4-aligned.
        var header = #"{"m":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#
        while (8 + header.utf8.count) % 4 == 0 { header += " " }
        let file = try SafetensorsFile(bytes: Safetensors.file(header: header, data: Safetensors.f32Bytes([1.5, -2, .infinity])))
        let store = WeightStore(file: file)
        #expect(!store.isZeroCopy("m"))
        let p = try store.parameter("m", shape: [3])
        #expect(p.values == [1.5, -2, .infinity])
        #expect(Int(bitPattern: p.pointer) % 4 == 0)
        #expect(try store.parameter("m", shape: [3]).pointer == p.pointer)
    }

    @Test func randomBytesNeverCrash() {
        var rng = SplitMix64(seed: 0x5AFE_7E45)
        var refused = 0
        for trial in 0..<3000 {
            let length = Int.random(in: 0...300, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if trial % 2 == 0, length >= 8 {
                // A plausible header length, so that the JSON parser sees the garbage.
                let declared = UInt64.random(in: 0...UInt64(length - 8), using: &rng)
                for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: declared >> (8 * UInt64(i))) }
                if declared > 0 { bytes[8] = UInt8(ascii: "{") }
            }
            if exercise(bytes) != "ok" { refused += 1 }
        }
        #expect(refused > 2900)
    }

    @Test func headerBitFlipsNeverCrash() throws {
        let bytes = try Fixtures.bytes("mixed.safetensors")
        let headerEnd = 8 + Safetensors.header(of: bytes).length
        var codes: [String: Int] = [:]
        for byte in 0..<headerEnd {
            for bit in 0..<8 {
                var flipped = bytes
                flipped[byte] ^= UInt8(1 << bit)
                codes[exercise(flipped), default: 0] += 1
            }
        }
        // Flips in the header length and in the JSON must be caught by several different checks.
        #expect(codes["truncated_file", default: 0] > 0)
        #expect(codes["bad_header", default: 0] > 0)
        #expect(codes["unsupported_dtype", default: 0] > 0)
        #expect(codes["tensor_size_mismatch", default: 0] > 0)
    }

    @Test func dataBitFlipsStillLoad() throws {
        let bytes = try Fixtures.bytes("small.safetensors")
        let dataStart = 8 + Safetensors.header(of: bytes).length
        for byte in dataStart..<bytes.count {
            var flipped = bytes
            flipped[byte] ^= 0x80
            #expect(exercise(flipped) == "ok")
        }
    }

    /// Opens `bytes` and, if accepted, reads every tensor and hashes the file. Returns "ok" when
    /// accepted, else the error code; records an issue on a foreign error.
    @discardableResult
    private func exercise(_ bytes: [UInt8]) -> String {
        do {
            let store = WeightStore(file: try SafetensorsFile(bytes: bytes))
            for name in store.names {
                let p = try store.parameter(name, shape: store.shape(of: name)!)
                _ = p.values
            }
            try store.requireAllClaimed()
            _ = store.sha256
            return "ok"
        } catch {
            guard let (code, message) = codeAndMessage(error) else {
                Issue.record("foreign error \(error)")
                return "foreign"
            }
            #expect(!message.isEmpty)
            return code
        }
    }
}
