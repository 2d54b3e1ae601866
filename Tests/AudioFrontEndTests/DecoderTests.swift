import Foundation
import Testing
@testable import AudioFrontEnd
import TestSupport

func decodeError(_ data: Data, options: AudioDecodingOptions = AudioDecodingOptions()) -> AudioError.Code? {
    do {
        _ = try AudioDecoder(options: options).decode(data)
        return nil
    } catch let error as AudioError {
        return error.reason
    } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

@Suite struct DecoderTests {
    static let sine: [Float] = (0..<1600).map { Float(0.5 * sin(Double($0) * 0.07)) }

    @Test func emptyInputs() {
        #expect(decodeError(Data()) == .emptyAudio)
        #expect(decodeError(WAVBuilder(payload: []).build()) == .emptyAudio)
        #expect(decodeError(WAVBuilder(channels: 2, payload: []).build()) == .emptyAudio)
    }

    @Test func canonicalWAVRoundTrip() throws {
        let data = WAVBuilder(payload: WAVBuilder.pcm16(Self.sine)).build()
        let decoded = try AudioDecoder().decode(data)
        #expect(decoded.sampleRate == 16000)
        #expect(decoded.info.container == .wav)
        #expect(decoded.info.encoding == "pcm_16")
        #expect(decoded.info.frameCount == Self.sine.count)
        #expect(decoded.samples.count == Self.sine.count)
        // 16-bit quantisation: within half an LSB of the source.
        #expect(maxAbsDiff(decoded.samples, Self.sine) <= 0.5 / 32768 + 1e-9)
        let info = try AudioDecoder().probe(data)
        #expect(info.frameCount == Self.sine.count && info.channelCount == 1 && info.durationSeconds == 0.1)
    }

    @Test func downmixIsTheMeanOfTheChannels() throws {
        let left = Self.sine, right = Self.sine.map { -0.5 * $0 + 0.1 }, third = Self.sine.map { $0 * $0 }
        var stereo: [Float] = [], three: [Float] = []
        for i in left.indices {
            stereo += [left[i], right[i]]
            three += [left[i], right[i], third[i]]
        }
        let d2 = try AudioDecoder().decode(WAVBuilder(channels: 2, bitsPerSample: 32, payload: WAVBuilder.float32(stereo))
            .with(formatTag: 3).build())
        #expect(d2.info.channelCount == 2)
        #expect(d2.samples == left.indices.map { (left[$0] + right[$0]) / 2 })
        let d3 = try AudioDecoder().decode(WAVBuilder(channels: 3, bitsPerSample: 32, payload: WAVBuilder.float32(three))
            .with(formatTag: 3).build())
        #expect(d3.info.channelCount == 3)
        #expect(d3.samples == left.indices.map { (left[$0] + right[$0] + third[$0]) / 3 })
        // The 4-channel fixture (WAVEX) downmixes like soundfile + numpy (checked in ReferenceParityTests).
        let quad = try AudioDecoder().decode(AudioFixtures.data(AudioFixtures.case("quad_16k_pcm16").file))
        #expect(quad.info.channelCount == 4)
    }

    @Test func durationLimitFromTheHeaderBeforeDecoding() throws {
        // One hour of 8 kHz unsigned 8-bit audio: 28.8 MB, refused from the header.
        let hour = WAVBuilder(channels: 1, sampleRate: 8000, bitsPerSample: 8,
                              payload: [UInt8](repeating: 128, count: 8000 * 3600)).build()
        let start = DispatchTime.now().uptimeNanoseconds
        #expect(decodeError(hour) == .audioTooLong)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        print("hour-long WAV refused in \(elapsed) ms")
        #expect(elapsed < 200)
        #expect(throws: AudioError.self) { try AudioDecoder().probe(hour) }
        // The limit is configurable.
        let threeSeconds = WAVBuilder(sampleRate: 8000, payload: WAVBuilder.pcm16([Float](repeating: 0.1, count: 24_000))).build()
        #expect(decodeError(threeSeconds, options: .init(maxDurationSeconds: 2.9)) == .audioTooLong)
        #expect(decodeError(threeSeconds, options: .init(maxDurationSeconds: 3)) == nil)
    }

    @Test func durationLimitWhileDecodingWhenTheHeaderDoesNotSay() throws {
        // A FLAC stream whose STREAMINFO total-samples field is 0 ("unknown").
        var flac = [UInt8](try AudioFixtures.data(AudioFixtures.case("long12s_16k_flac").file))
        #expect(Array(flac[0..<4]) == Array("fLaC".utf8))
        // STREAMINFO body starts at 8; total samples = low 4 bits of byte 21 and bytes 22...25.
        flac[21] &= 0xF0
        for i in 22...25 { flac[i] = 0 }
        let data = Data(flac)
        let decoded = try AudioDecoder().decode(data)
        #expect(decoded.info.frameCount == nil)
        #expect(decoded.samples.count == 192_000)
        #expect(decodeError(data, options: .init(maxDurationSeconds: 5)) == .audioTooLong)
    }

    @Test func nonFiniteSamples() throws {
        var samples = Self.sine
        samples[10] = .nan
        samples[20] = .infinity
        samples[30] = -.infinity
        let data = WAVBuilder(bitsPerSample: 32, payload: WAVBuilder.float32(samples)).with(formatTag: 3).build()
        #expect(decodeError(data) == .nonFiniteSamples)
        let cleaned = try AudioDecoder(options: .init(nonFiniteSamples: .replaceWithZero)).decode(data)
        #expect(cleaned.samples[10] == 0 && cleaned.samples[20] == 0 && cleaned.samples[30] == 0)
        #expect(cleaned.samples[11] == samples[11])
        // The raw-samples entry point applies the same policy.
        let frontEnd = try AudioFrontEnd()
        #expect(throws: AudioError(.nonFiniteSamples, "the audio holds a non-finite sample (NaN or infinity) at frame 10")) {
            try frontEnd.features(samples: samples, sampleRate: 16000)
        }
    }

    @Test func truncatedWAVDataChunk() throws {
        let full = WAVBuilder(payload: WAVBuilder.pcm16(Self.sine)).build()
        let cut = full.prefix(full.count - 100)
        #expect(decodeError(Data(cut)) == .unreadableAudio)
        let lenient = try AudioDecoder(options: .init(acceptTruncatedData: true)).decode(Data(cut))
        #expect(lenient.samples.count == Self.sine.count - 50)
        // A lying header: the data chunk claims far more than the file holds.
        var liar = WAVBuilder(payload: WAVBuilder.pcm16(Self.sine))
        liar.dataSize = 0x7FFF_FFF0
        #expect(decodeError(liar.build()) == .unreadableAudio)
        #expect(try AudioDecoder(options: .init(acceptTruncatedData: true)).decode(liar.build()).samples.count == Self.sine.count)
        // Streaming writers that do not know the length write 0xFFFFFFFF: not truncation.
        var streaming = WAVBuilder(payload: WAVBuilder.pcm16(Self.sine))
        streaming.dataSize = 0xFFFF_FFFF
        streaming.riffSize = 0xFFFF_FFFF
        #expect(decodeError(streaming.build()) == nil || decodeError(streaming.build()) == .unreadableAudio)
    }

    @Test func lyingSampleRates() {
        for rate: UInt32 in [0, 1, 999, 192_001, 10_000_000, 0x7FFF_FFFF, 0xFFFF_FFFF] {
            let data = WAVBuilder(sampleRate: rate, payload: WAVBuilder.pcm16(Self.sine)).build()
            let code = decodeError(data)
            #expect(code == .invalidSampleRate || code == .unreadableAudio, "rate \(rate): \(String(describing: code))")
        }
        let custom = AudioDecodingOptions(sampleRateRange: 8_000...48_000)
        #expect(decodeError(WAVBuilder(sampleRate: 96_000, payload: WAVBuilder.pcm16(Self.sine)).build(), options: custom) == .invalidSampleRate)
        #expect(decodeError(WAVBuilder(sampleRate: 8_000, payload: WAVBuilder.pcm16(Self.sine)).build(), options: custom) == nil)
    }

    @Test func lyingChannelCounts() {
        for channels: UInt16 in [0, 33, 64, 1000, 1025, 0xFFFF] {
            var b = WAVBuilder(channels: channels, payload: WAVBuilder.pcm16(Self.sine))
            if channels == 0 { b.blockAlign = 2 }
            let code = decodeError(b.build())
            #expect(code == .invalidChannelCount || code == .unreadableAudio, "channels \(channels): \(String(describing: code))")
        }
        #expect(decodeError(WAVBuilder(channels: 4, payload: WAVBuilder.pcm16(Self.sine)).build(),
                            options: .init(maxChannels: 2)) == .invalidChannelCount)
    }

    @Test func unsupportedEncodings() {
        // Format tags libsndfile does not decode, plain and inside WAVE_FORMAT_EXTENSIBLE.
        for tag: UInt16 in [0x1234, 0x0161 /* WMA */, 0x2000 /* AC-3 */, 0xFFFF] {
            let data = WAVBuilder(payload: WAVBuilder.pcm16(Self.sine)).with(formatTag: tag).build()
            #expect(decodeError(data) == .unsupportedEncoding, "tag 0x\(String(tag, radix: 16))")
        }
        #expect(decodeError(Self.extensibleWAV(subformat: 0x2000)) == .unsupportedEncoding)
        #expect(decodeError(Self.extensibleWAV(subformat: 0x0001)) == nil)
        // A known tag with a malformed fmt chunk (MPEG needs the extended chunk; float is 32/64-bit).
        for (tag, bits) in [(UInt16(0x55), UInt16(16)), (3, 16)] {
            let data = WAVBuilder(bitsPerSample: bits, payload: WAVBuilder.pcm16(Self.sine)).with(formatTag: tag).build()
            #expect(decodeError(data) == .unreadableAudio, "tag \(tag) bits \(bits)")
        }
        // An Ogg stream whose codec libsndfile does not decode (Speex).
        var ogg = Array("OggS".utf8) + [0, 2] + [UInt8](repeating: 0, count: 20) + [1, 80]
        ogg += Array("Speex   ".utf8) + [UInt8](repeating: 0, count: 72)
        #expect(decodeError(Data(ogg)) == .unsupportedEncoding)
        // A container the options do not accept.
        let flac = try! AudioFixtures.data(AudioFixtures.case("tiny_8k_flac").file)
        #expect(decodeError(flac, options: .init(containers: [.wav])) == .unsupportedEncoding)
    }

    @Test func unrecognisedBytes() {
        #expect(decodeError(Data("hello, this is not audio at all".utf8)) == .unreadableAudio)
        #expect(decodeError(Data("RIFF\u{0}\u{0}\u{0}\u{0}AVI LIST".utf8)) == .unreadableAudio)
        // libsndfile reads MATLAB and PAF files; we refuse them before it looks.
        #expect(decodeError(Data("MATLAB 5.0 MAT-file, written by nobody".utf8) + Data(count: 200)) == .unreadableAudio)
        #expect(decodeError(Data(" paf".utf8) + Data(count: 2000)) == .unreadableAudio)
        #expect(decodeError(Data([0x52, 0x49, 0x46])) == .unreadableAudio)
    }
}

extension DecoderTests {
    /// A WAVE_FORMAT_EXTENSIBLE file (fmt chunk of 40 bytes) with the given sub-format tag, 16-bit mono.
    static func extensibleWAV(subformat: UInt16) -> Data {
        var d = Data()
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        let payload = WAVBuilder.pcm16(sine)
        d.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(4 + 48 + 8 + payload.count))
        d.append(contentsOf: Array("WAVEfmt ".utf8)); u32(40)
        u16(0xFFFE); u16(1); u32(16000); u32(32000); u16(2); u16(16)
        u16(22); u16(16); u32(4)  // cbSize, valid bits, channel mask
        u16(subformat)
        d.append(contentsOf: [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71])
        d.append(contentsOf: Array("data".utf8)); u32(UInt32(payload.count))
        d.append(contentsOf: payload)
        return d
    }
}

extension WAVBuilder {
    func with(formatTag: UInt16) -> WAVBuilder {
        var b = self
        b.formatTag = formatTag
        return b
    }
}
