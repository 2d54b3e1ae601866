import Foundation
import Testing
@testable import AudioFrontEnd

/// The fixtures written by Training/fixtures/make_audio_fixtures.py.
struct AudioFixtures: Decodable {
    struct Decoded: Decodable {
        let file: String
        let head: Int
        let step: Int
    }

    struct Window: Decodable {
        let start: Int
        let count: Int
    }

    struct Features: Decodable {
        let file: String
        let framesPerWindow: Int
        let nMels: Int
        let frames: [Int]
        enum CodingKeys: String, CodingKey {
            case file, frames, framesPerWindow = "frames_per_window", nMels = "n_mels"
        }
    }

    struct Case: Decodable, CustomTestStringConvertible {
        let name: String
        let file: String
        let config: AudioFrontEndConfiguration
        let lossy: Bool
        let sampleRate: Int
        let channels: Int
        let frames: Int
        let format: String
        let subtype: String
        let decoded: Decoded
        let resampledLength: Int
        let windows: [Window]
        let features: Features
        var testDescription: String { name }

        enum CodingKeys: String, CodingKey {
            case name, file, config, lossy, channels, frames, format, subtype, decoded, windows, features
            case sampleRate = "sample_rate", resampledLength = "resampled_length"
        }
    }

    struct ResampleCase: Decodable, CustomTestStringConvertible {
        let name: String
        let from: Int
        let to: Int
        let input: String
        let output: String
        var testDescription: String { name }
    }

    let cases: [Case]
    let resampleCases: [ResampleCase]
    let minTailS: Double

    enum CodingKeys: String, CodingKey {
        case cases, resampleCases = "resample_cases", minTailS = "min_tail_s"
    }

    static let directory: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    static let shared: AudioFixtures = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("manifest.json"))
        return try! JSONDecoder().decode(AudioFixtures.self, from: data)
    }()

    static func data(_ relative: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(relative))
    }

    static func floats(_ relative: String) throws -> [Float] {
        let data = try self.data(relative)
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    static func `case`(_ name: String) -> Case {
        shared.cases.first { $0.name == name }!
    }
}

/// A canonical little-endian PCM WAV (RIFF, fmt chunk of 16 bytes, data chunk), with every
/// header field overridable so that tests can write lying headers.
struct WAVBuilder {
    var formatTag: UInt16 = 1
    var channels: UInt16 = 1
    var sampleRate: UInt32 = 16000
    var bitsPerSample: UInt16 = 16
    var blockAlign: UInt16? = nil
    var byteRate: UInt32? = nil
    var dataSize: UInt32? = nil
    var riffSize: UInt32? = nil
    var payload: [UInt8] = []

    func build() -> Data {
        var d = Data()
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        let align = blockAlign ?? UInt16(truncatingIfNeeded: Int(channels) * Int(bitsPerSample) / 8)
        d.append(contentsOf: Array("RIFF".utf8))
        u32(riffSize ?? UInt32(36 + payload.count))
        d.append(contentsOf: Array("WAVEfmt ".utf8))
        u32(16)
        u16(formatTag)
        u16(channels)
        u32(sampleRate)
        u32(byteRate ?? sampleRate &* UInt32(align))
        u16(align)
        u16(bitsPerSample)
        d.append(contentsOf: Array("data".utf8))
        u32(dataSize ?? UInt32(payload.count))
        d.append(contentsOf: payload)
        return d
    }

    /// 16-bit PCM payload from float samples (interleaved when several channels).
    static func pcm16(_ samples: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(samples.count * 2)
        for s in samples {
            let v = Int16(max(-32768, min(32767, (s * 32768).rounded())))
            withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }

    static func float32(_ samples: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for s in samples { withUnsafeBytes(of: s.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }
}

