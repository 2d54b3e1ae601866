import Foundation
import Testing
@testable import AudioFrontEnd
import TestSupport

/// Hostile bytes: every truncation of small valid files, random bytes, random bytes behind valid
/// magic numbers, and random mutations of valid files. Each input must either decode or throw an
/// `AudioError`, quickly; nothing may crash or hang.
@Suite struct FuzzTests {
    /// Decodes `data`; returns the error code (nil on success) and checks the time taken.
    static func attempt(_ data: Data, decoder: AudioDecoder = AudioDecoder(), budgetMs: Double = 2_000,
                        _ context: @autoclosure () -> String) -> AudioError.Code? {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            if ms > budgetMs { Issue.record("\(context()): took \(ms) ms") }
        }
        do {
            let decoded = try decoder.decode(data)
            if decoded.samples.isEmpty { Issue.record("\(context()): success with no samples") }
            if decoded.samples.contains(where: { !$0.isFinite }) { Issue.record("\(context()): non-finite samples") }
            return nil
        } catch let error as AudioError {
            return error.reason
        } catch {
            Issue.record("\(context()): unexpected error \(error)")
            return nil
        }
    }

    static let smallFiles = ["tiny_8k_pcm16", "tiny_8k_flac", "tiny_stereo_16k_float", "click_8k_u8", "vorbis_16k", "mp3_44k1"]

    /// Every prefix of small WAV, FLAC, Ogg and MP3 files.
    @Test(arguments: smallFiles)
    func everyTruncation(_ name: String) throws {
        let c = AudioFixtures.case(name)
        let full = try AudioFixtures.data(c.file)
        var outcomes: [String: Int] = [:]
        for length in 0..<full.count {
            let code = Self.attempt(full.prefix(length), "\(name) cut to \(length) bytes")
            outcomes[code?.rawValue ?? "decoded", default: 0] += 1
            if length == 0 { #expect(code == .emptyAudio) }
            // Lossless files: every proper prefix is refused (libsndfile would silently shorten them).
            if ["tiny_8k_pcm16", "tiny_8k_flac", "tiny_stereo_16k_float", "click_8k_u8"].contains(name), length > 0 {
                #expect(code == .unreadableAudio || code == .emptyAudio, "\(name) cut to \(length): \(String(describing: code))")
            }
        }
        #expect(Self.attempt(full, "\(name) whole") == nil)
        print("truncations of \(name) (\(full.count) bytes): \(outcomes.sorted { $0.key < $1.key })")
    }

    /// Truncations with `acceptTruncatedData`: what is present decodes, nothing crashes.
    @Test func lenientTruncations() throws {
        let decoder = AudioDecoder(options: .init(acceptTruncatedData: true))
        for name in ["tiny_8k_pcm16", "click_8k_u8"] {
            let full = try AudioFixtures.data(AudioFixtures.case(name).file)
            var decodedCount = 0
            for length in 1..<full.count where Self.attempt(full.prefix(length), decoder: decoder, "\(name) lenient \(length)") == nil {
                decodedCount += 1
            }
            print("lenient truncations of \(name): \(decodedCount) of \(full.count - 1) decode")
            #expect(decodedCount > full.count / 2)
        }
    }

    @Test func randomBytes() {
        var rng = SplitMix64(seed: 11)
        var outcomes: [String: Int] = [:]
        for i in 0..<2_000 {
            let count = Int(rng.next() % 3_000) + 1
            let data = Data((0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            let code = Self.attempt(data, "random \(i)")
            outcomes[code?.rawValue ?? "decoded", default: 0] += 1
        }
        print("random bytes: \(outcomes.sorted { $0.key < $1.key })")
    }

    /// Random bytes behind each accepted container's magic number, so that they reach the parsers.
    @Test func randomBytesBehindMagicNumbers() {
        let magics: [[UInt8]] = [
            Array("RIFF".utf8) + [0x24, 0x10, 0, 0] + Array("WAVEfmt ".utf8),
            Array("RIFF".utf8) + [0xFF, 0xFF, 0xFF, 0xFF] + Array("WAVEfmt ".utf8) + [16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0] + Array("data".utf8),
            Array("RIFX".utf8) + [0, 0, 0x10, 0x24] + Array("WAVEfmt ".utf8),
            Array("RF64".utf8) + [0xFF, 0xFF, 0xFF, 0xFF] + Array("WAVEds64".utf8),
            Array("fLaC".utf8), Array("fLaC".utf8) + [0x80, 0, 0, 0x22],
            Array("OggS".utf8) + [0, 2], Array("FORM".utf8) + [0, 0, 0x10, 0] + Array("AIFFCOMM".utf8),
            Array("FORM".utf8) + [0, 0, 0x10, 0] + Array("AIFCFVER".utf8), Array(".snd".utf8) + [0, 0, 0, 24],
            Array("caff".utf8) + [0, 1, 0, 0], Array("ID3".utf8) + [4, 0, 0, 0, 0, 0, 10], [0xFF, 0xFB, 0x90, 0x64],
            [0x72, 0x69, 0x66, 0x66, 0x2E, 0x91, 0xCF, 0x11, 0xA5, 0xD6, 0x28, 0xDB, 0x04, 0xC1, 0x00, 0x00],
        ]
        var rng = SplitMix64(seed: 12)
        var outcomes: [String: Int] = [:]
        for (m, magic) in magics.enumerated() {
            for i in 0..<150 {
                let count = Int(rng.next() % 4_000)
                let data = Data(magic + (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                let code = Self.attempt(data, "magic \(m) random \(i)")
                outcomes[code?.rawValue ?? "decoded", default: 0] += 1
            }
        }
        print("random bytes behind magic numbers: \(outcomes.sorted { $0.key < $1.key })")
    }

    /// Valid files with a few random bytes overwritten (headers included).
    @Test(arguments: ["tiny_8k_pcm16", "tiny_8k_flac", "tiny_stereo_16k_float", "vorbis_16k", "mp3_44k1", "aiff_22k05_pcm16"])
    func mutations(_ name: String) throws {
        let full = [UInt8](try AudioFixtures.data(AudioFixtures.case(name).file))
        var rng = SplitMix64(seed: UInt64(name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        var outcomes: [String: Int] = [:]
        // Small decoder limits so that mutated lengths cannot make a test slow.
        let decoder = AudioDecoder(options: .init(maxDurationSeconds: 30))
        for i in 0..<300 {
            var bytes = full
            let edits = Int(rng.next() % 8) + 1
            for _ in 0..<edits {
                // Mostly the first 64 bytes (the header), sometimes anywhere.
                let span = rng.next() % 3 == 0 ? bytes.count : min(64, bytes.count)
                bytes[Int(rng.next() % UInt64(span))] = UInt8(truncatingIfNeeded: rng.next())
            }
            let code = Self.attempt(Data(bytes), decoder: decoder, "\(name) mutation \(i)")
            outcomes[code?.rawValue ?? "decoded", default: 0] += 1
        }
        print("mutations of \(name): \(outcomes.sorted { $0.key < $1.key })")
    }

    /// Many threads decoding at once (libsndfile's open-error state is process-wide).
    @Test func concurrentDecoding() throws {
        let inputs: [(Data, AudioError.Code?)] = [
            (try AudioFixtures.data(AudioFixtures.case("tiny_8k_pcm16").file), nil),
            (try AudioFixtures.data(AudioFixtures.case("tiny_8k_flac").file), nil),
            (Data("not audio at all, not at all".utf8), .unreadableAudio),
            (WAVBuilder(payload: WAVBuilder.pcm16([0.1, 0.2])).with(formatTag: 0x1234).build(), .unsupportedEncoding),
            (WAVBuilder(sampleRate: 10_000_000, payload: WAVBuilder.pcm16([0.1, 0.2])).build(), .invalidSampleRate),
            (Data(try AudioFixtures.data(AudioFixtures.case("tiny_8k_flac").file).prefix(300)), .unreadableAudio),
        ]
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 600) { i in
            let (data, expected) = inputs[i % inputs.count]
            var code: AudioError.Code? = nil
            do { _ = try AudioDecoder().decode(data) } catch let e as AudioError { code = e.reason } catch {}
            if code != expected { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
    }
}

import Synchronization
