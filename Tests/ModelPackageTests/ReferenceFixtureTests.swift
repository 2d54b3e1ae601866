import Foundation
import Numerics
import Testing
@testable import ModelPackage

/// The reader against files written by PyPI's `safetensors` and values computed by torch
/// (`tensor.float()`), SHA-256 by hashlib: see Training/fixtures/make_safetensors_fixtures.py.
@Suite struct ReferenceFixtureTests {
    static let fixtureNames = ["mixed.safetensors", "small.safetensors", "numpy_f32.safetensors"]

    @Test(arguments: fixtureNames)
    func headerMatchesReference(_ name: String) throws {
        let expected = try #require(try Fixtures.expected().files[name])
        let file = try SafetensorsFile(url: Fixtures.url(name))
        #expect(file.isMemoryMapped)
        #expect(file.fileSize == expected.size)
        #expect(file.metadata == expected.metadata)
        #expect(Set(file.names) == Set(expected.tensors.keys))
        #expect(file.names.count == expected.tensors.count)
        for (tensorName, tensor) in expected.tensors {
            let info = try #require(file.tensors[tensorName])
            #expect(info.dtype.rawValue == tensor.dtype, "\(tensorName)")
            #expect(info.shape == tensor.shape, "\(tensorName)")
            #expect(info.elementCount == tensor.float32_bits.count, "\(tensorName)")
        }
    }

    @Test(arguments: fixtureNames)
    func valuesMatchTorchBitwise(_ name: String) throws {
        let expected = try #require(try Fixtures.expected().files[name])
        let store = try WeightStore(url: Fixtures.url(name))
        for (tensorName, tensor) in expected.tensors.sorted(by: { $0.key < $1.key }) {
            #expect(store.dtype(of: tensorName)?.rawValue == tensor.dtype)
            #expect(store.shape(of: tensorName) == tensor.shape)
            let parameter = try store.parameter(tensorName, shape: tensor.shape)
            #expect(parameter.name == tensorName)
            #expect(parameter.shape == tensor.shape)
            let values = parameter.values
            try #require(values.count == tensor.float32_bits.count, "\(tensorName)")
            var mismatches: [String] = []
            for (i, bits) in tensor.float32_bits.enumerated() where !sameFloat(values[i], Float(bitPattern: bits)) {
                mismatches.append("[\(i)] got \(values[i]) (0x\(String(values[i].bitPattern, radix: 16))), torch \(tensor.values[i]) (0x\(String(bits, radix: 16)))")
            }
            #expect(mismatches.isEmpty, "\(name) \(tensorName): \(mismatches.prefix(5))")
        }
        #expect(store.unclaimedNames.isEmpty)
        try store.requireAllClaimed()
    }

    @Test func specialHalfValuesAreCovered() throws {
        // The fixture must actually exercise subnormals, infinities, NaN and signed zero, or the
        // bitwise test above proves little.
        let store = try WeightStore(url: Fixtures.url("mixed.safetensors"))
        for name in ["half.special", "bf16.special"] {
            let values = try store.tensor(name).values
            #expect(values.contains { $0.isNaN }, "\(name)")
            #expect(values.contains { $0 == .infinity } && values.contains { $0 == -.infinity }, "\(name)")
            // Subnormal in the stored format: below the smallest normal half (2^-14) / float (2^-126).
            let smallestNormal: Float = name == "half.special" ? 6.103515625e-05 : Float.leastNormalMagnitude
            #expect(values.contains { $0 != 0 && abs($0) < smallestNormal }, "\(name)")
            #expect(values.contains { $0 == 0 && $0.sign == .minus }, "\(name)")
        }
        #expect(try store.tensor("scalar").shape == [])
        #expect(try store.tensor("scalar").values == [3.25])
        #expect(try store.tensor("empty").values.isEmpty)
        #expect(try store.tensor("bf16.empty").shape == [3, 0, 2])
    }

    @Test(arguments: fixtureNames)
    func sha256MatchesHashlib(_ name: String) throws {
        let expected = try #require(try Fixtures.expected().files[name])
        let store = try WeightStore(url: Fixtures.url(name))
        #expect(store.sha256 == expected.sha256)
        #expect(store.sha256 == expected.sha256)  // cached path
        #expect(store.fileSize == expected.size)
    }

    @Test func sha256KnownAnswers() {
        // FIPS 180-2 test vectors.
        #expect(SHA256Digest.hex(of: Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Digest.hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256Digest.hex(of: Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(SHA256Digest.hex(of: million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func f32TensorsAreZeroCopyIntoTheMapping() throws {
        let store = try WeightStore(url: Fixtures.url("mixed.safetensors"))
        let mapping = store.file.bytes
        let start = UInt(bitPattern: mapping.baseAddress!)
        let end = start + UInt(mapping.count)
        for name in ["encoder.weight", "encoder.bias", "scalar"] {
            let p = try store.parameter(name, shape: store.shape(of: name)!)
            let address = UInt(bitPattern: p.pointer)
            #expect(address >= start && address + UInt(p.count * 4) <= end, "\(name) is not inside the mapping")
            #expect(address == UInt(bitPattern: store.file.rawBytes(of: name)!.baseAddress!))
            #expect(store.isZeroCopy(name))
        }
        // Widened tensors live elsewhere, and are widened once.
        let h1 = try store.parameter("half.random", shape: [3, 5])
        let h2 = try store.parameter("half.random", shape: [3, 5])
        let address = UInt(bitPattern: h1.pointer)
        #expect(!(address >= start && address < end))
        #expect(h1.pointer == h2.pointer)
        #expect(!store.isZeroCopy("half.random"))
    }

    @Test func parametersOutliveTheStore() throws {
        var parameter: Parameter?
        var widened: Parameter?
        do {
            let store = try WeightStore(url: Fixtures.url("small.safetensors"))
            parameter = try store.parameter("w", shape: [2, 3])
            widened = try store.parameter("h", shape: [4])
        }
        let expected = try #require(try Fixtures.expected().files["small.safetensors"])
        #expect(parameter!.values.map(\.bitPattern) == expected.tensors["w"]!.float32_bits)
        #expect(widened!.values.map(\.bitPattern) == expected.tensors["h"]!.float32_bits)
    }
}
