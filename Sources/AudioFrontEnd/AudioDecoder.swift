import CSndFile
import Foundation

/// The containers the decoder accepts. libsndfile reads more (PAF, SD2, MAT, VOC, ...), but
/// those are refused before libsndfile sees the bytes (see ``AudioDecoder``).
public enum AudioContainer: String, Sendable, CaseIterable, Codable {
    case wav, wavex, rf64, w64, flac, ogg, aiff, au, caf, mpeg
}

/// What to do with NaN or infinite samples (possible only in floating-point files).
public enum NonFiniteSamplePolicy: String, Sendable, Codable {
    /// Refuse the clip with `non_finite_samples` (the default).
    case reject
    /// Replace every non-finite mono sample (after the channel mean) by 0.
    case replaceWithZero = "replace_with_zero"
}

/// Limits and policies for decoding untrusted bytes.
public struct AudioDecodingOptions: Sendable, Equatable {
    /// Clips longer than this (in seconds) are refused with `audio_too_long`: from the header,
    /// before decoding, when the header states the length; otherwise while decoding, as soon as
    /// the limit is passed. Default 120 s.
    public var maxDurationSeconds: Double
    /// Accepted sample rates (Hz); others give `invalid_sample_rate`. Default 1 kHz ... 192 kHz.
    public var sampleRateRange: ClosedRange<Int>
    /// At most this many channels (`invalid_channel_count` beyond). Default 32.
    public var maxChannels: Int
    /// NaN / infinity handling. Default `.reject`.
    public var nonFiniteSamples: NonFiniteSamplePolicy
    /// When false (the default) a file whose data ends before its header says it does is refused
    /// with `unreadable_audio`; when true the frames present are decoded, and a decoder error
    /// after some frames keeps those frames.
    public var acceptTruncatedData: Bool
    /// Accepted containers; the others give `unsupported_encoding`. Default: all of them.
    public var containers: Set<AudioContainer>

    public init(maxDurationSeconds: Double = 120, sampleRateRange: ClosedRange<Int> = 1_000...192_000,
                maxChannels: Int = 32, nonFiniteSamples: NonFiniteSamplePolicy = .reject,
                acceptTruncatedData: Bool = false, containers: Set<AudioContainer> = Set(AudioContainer.allCases)) {
        self.maxDurationSeconds = maxDurationSeconds
        self.sampleRateRange = sampleRateRange
        self.maxChannels = maxChannels
        self.nonFiniteSamples = nonFiniteSamples
        self.acceptTruncatedData = acceptTruncatedData
        self.containers = containers
    }
}

/// What a file's header says, without decoding its data.
public struct AudioInfo: Sendable, Equatable {
    public var container: AudioContainer
    /// libsndfile's sub-format name in lower case: "pcm_16", "pcm_24", "pcm_32", "pcm_u8",
    /// "pcm_s8", "float", "double", "ulaw", "alaw", "vorbis", "opus", "mpeg_layer_iii", ...
    public var encoding: String
    public var sampleRate: Int
    public var channelCount: Int
    /// Frames per channel according to the header (nil when the header does not say).
    public var frameCount: Int?
    public var durationSeconds: Double? { frameCount.map { Double($0) / Double(sampleRate) } }
}

/// A decoded clip: mono (the mean of the channels), float32, at the file's own sample rate.
public struct DecodedAudio: Sendable, Equatable {
    public var samples: [Float]
    public var sampleRate: Int
    public var info: AudioInfo
    public var durationSeconds: Double { Double(samples.count) / Double(sampleRate) }

    public init(samples: [Float], sampleRate: Int, info: AudioInfo) {
        self.samples = samples
        self.sampleRate = sampleRate
        self.info = info
    }
}

/// Decodes audio files held in memory (a request body; never a temporary file) with libsndfile's
/// virtual I/O, then mixes the channels down to mono (mean of the channels, in float32).
///
/// Integer PCM is scaled by libsndfile to [-1, 1) (x / 2^(bits-1); unsigned 8-bit is
/// (x - 128) / 128); float files are passed through unscaled.
///
/// Defences against hostile bytes, in order: an empty buffer is `empty_audio`; the first bytes
/// must carry the magic number of an accepted container (otherwise `unreadable_audio`, so
/// libsndfile's rarely used parsers never see arbitrary bytes); libsndfile's open errors map to
/// `unsupported_encoding` (its "unsupported encoding") or `unreadable_audio`; sample rate and
/// channel count are checked against the options; the duration in the header is checked
/// against the limit before any data is decoded; a WAV whose data chunk is longer than the
/// bytes present, or a stream that decodes to fewer frames than its header states, is
/// truncated (`unreadable_audio`); decoding runs in bounded chunks and stops with
/// `audio_too_long` as soon as the limit is passed, whatever the header said.
public struct AudioDecoder: Sendable {
    public var options: AudioDecodingOptions

    public init(options: AudioDecodingOptions = AudioDecodingOptions()) {
        self.options = options
    }

    /// Decodes `data` to mono float32 at the file's sample rate. Throws ``AudioError``.
    public func decode(_ data: Data) throws -> DecodedAudio {
        try data.withUnsafeBytes { try decode(bytes: $0) }
    }

    /// Reads and checks the header only (container, encoding, rate, channels, length, and the
    /// duration limit). Throws ``AudioError``.
    public func probe(_ data: Data) throws -> AudioInfo {
        try data.withUnsafeBytes { raw in
            try withOpenFile(raw) { _, info in info }
        }
    }

    /// Decodes the bytes in `bytes` (which must stay valid during the call).
    public func decode(bytes: UnsafeRawBufferPointer) throws -> DecodedAudio {
        try withOpenFile(bytes) { file, info in
            let channels = info.channelCount
            let maxFrames = Self.maxFrames(seconds: options.maxDurationSeconds, sampleRate: info.sampleRate)
            let chunkFrames = max(1, 65_536 / channels)
            var samples: [Float] = []
            if let known = info.frameCount { samples.reserveCapacity(known) }
            var chunk = [Float](repeating: 0, count: chunkFrames * channels)
            var total = 0
            while true {
                let got = chunk.withUnsafeMutableBufferPointer { buf in
                    Int(sf_readf_float(file, buf.baseAddress, sf_count_t(chunkFrames)))
                }
                if got <= 0 { break }
                total += got
                if total > maxFrames {
                    throw AudioError(.audioTooLong, "the audio is longer than the limit of \(Self.format(options.maxDurationSeconds)) s")
                }
                chunk.withUnsafeBufferPointer { buf in
                    Self.appendMono(buf.baseAddress!, frames: got, channels: channels, to: &samples)
                }
            }
            let status = sf_error(file)
            if status != 0, !(options.acceptTruncatedData && total > 0) {
                let reason = String(cString: sf_strerror(file))
                throw AudioError(.unreadableAudio, "the audio data could not be decoded after \(total) frames: \(reason)")
            }
            if let known = info.frameCount, total < known, info.container != .mpeg, !options.acceptTruncatedData {
                throw AudioError(.unreadableAudio, "the audio data is truncated: the header states \(known) frames, only \(total) could be decoded")
            }
            if total == 0 {
                throw AudioError(.emptyAudio, "the audio holds no samples")
            }
            try Self.checkFinite(&samples, policy: options.nonFiniteSamples)
            return DecodedAudio(samples: samples, sampleRate: info.sampleRate,
                                info: AudioInfo(container: info.container, encoding: info.encoding,
                                                sampleRate: info.sampleRate, channelCount: channels,
                                                frameCount: info.frameCount))
        }
    }

    // MARK: - Opening and header checks

    private func withOpenFile<T>(_ bytes: UnsafeRawBufferPointer,
                                 _ body: (OpaquePointer, AudioInfo) throws -> T) throws -> T {
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw AudioError(.emptyAudio, "no audio bytes")
        }
        let sniffed = Self.sniff(bytes)
        switch sniffed {
        case .none:
            throw AudioError(.unreadableAudio, "not a recognised audio file (expected WAV, FLAC, Ogg, AIFF, AU, CAF or MP3)")
        case .some(.some(let container)) where !options.containers.contains(container):
            throw AudioError(.unsupportedEncoding, "\(container.rawValue) files are not accepted")
        default:
            break
        }

        let reader = UnsafeMutablePointer<MemoryReader>.allocate(capacity: 1)
        reader.initialize(to: MemoryReader(base: base, count: Int64(bytes.count), position: 0))
        defer { reader.deinitialize(count: 1); reader.deallocate() }

        var vio = SF_VIRTUAL_IO(
            get_filelen: { user in user!.assumingMemoryBound(to: MemoryReader.self).pointee.count },
            seek: { offset, whence, user in
                user!.assumingMemoryBound(to: MemoryReader.self).pointee.seek(offset, whence)
            },
            read: { destination, count, user in
                user!.assumingMemoryBound(to: MemoryReader.self).pointee.read(destination, count)
            },
            write: { _, _, _ in 0 },
            tell: { user in user!.assumingMemoryBound(to: MemoryReader.self).pointee.position })
        var sfInfo = SF_INFO()
        // sf_open_virtual reports failures through a process-wide variable (sf_error(NULL)), so
        // opening is serialised; reading from an open handle is independent per handle.
        let (opened, code, reason): (OpaquePointer?, Int32, String) = sndfileOpenLock.withLock {
            guard let handle = sf_open_virtual(&vio, Int32(SFM_READ), &sfInfo, UnsafeMutableRawPointer(reader)) else {
                return (nil, sf_error(nil), String(cString: sf_strerror(nil)))
            }
            return (handle, 0, "")
        }
        guard let file = opened else {
            if let tag = Self.unknownWAVFormatTag(bytes) {
                throw AudioError(.unsupportedEncoding, "WAV format tag 0x\(String(tag, radix: 16)) is not a supported encoding (PCM, IEEE float, A-law, mu-law, ADPCM, GSM 6.10, MPEG)")
            }
            if Self.unknownOggCodec(bytes) {
                throw AudioError(.unsupportedEncoding, "the Ogg stream's codec is not supported (Vorbis, Opus and FLAC are)")
            }
            // libsndfile's "unimplemented format" also covers headers cut short, so only its
            // explicit "unsupported encoding" is trusted here.
            if code == Int32(SF_ERR_UNSUPPORTED_ENCODING) {
                throw AudioError(.unsupportedEncoding, "the audio encoding is not supported: \(reason)")
            }
            throw AudioError(.unreadableAudio, "the audio file could not be read: \(reason)")
        }
        defer { sf_close(file) }

        let major = Int(sfInfo.format) & Int(SF_FORMAT_TYPEMASK)
        guard let container = Self.container(major: major) else {
            throw AudioError(.unsupportedEncoding, "the audio container (libsndfile format 0x\(String(major, radix: 16))) is not accepted")
        }
        guard options.containers.contains(container) else {
            throw AudioError(.unsupportedEncoding, "\(container.rawValue) files are not accepted")
        }
        let encoding = Self.encodingName(Int(sfInfo.format) & Int(SF_FORMAT_SUBMASK))
        let channels = Int(sfInfo.channels)
        guard channels >= 1, channels <= options.maxChannels else {
            throw AudioError(.invalidChannelCount, "the audio has \(channels) channels; 1 to \(options.maxChannels) are accepted")
        }
        let rate = Int(sfInfo.samplerate)
        guard options.sampleRateRange.contains(rate) else {
            throw AudioError(.invalidSampleRate, "the sample rate \(rate) Hz is outside \(options.sampleRateRange.lowerBound)...\(options.sampleRateRange.upperBound) Hz")
        }
        // libsndfile uses SF_COUNT_MAX (or a negative value) when the length is unknown.
        let frames: Int? = (sfInfo.frames >= 0 && sfInfo.frames < Int64.max / 2) ? Int(sfInfo.frames) : nil
        if let frames, frames > Self.maxFrames(seconds: options.maxDurationSeconds, sampleRate: rate) {
            throw AudioError(.audioTooLong, "the audio lasts \(Self.format(Double(frames) / Double(rate))) s; the limit is \(Self.format(options.maxDurationSeconds)) s")
        }
        if !options.acceptTruncatedData, let (declared, available) = Self.truncatedDataChunk(bytes, container: container) {
            throw AudioError(.unreadableAudio, declared < 0
                ? "the \(container.rawValue) file is truncated before its audio data"
                : "the \(container.rawValue) data is truncated: its header declares \(declared) bytes of audio data but only \(available) follow")
        }
        if frames == 0 {
            throw AudioError(.emptyAudio, "the audio holds no samples")
        }
        let info = AudioInfo(container: container, encoding: encoding, sampleRate: rate,
                             channelCount: channels, frameCount: frames)
        return try body(file, info)
    }

    static func maxFrames(seconds: Double, sampleRate: Int) -> Int {
        let f = (seconds * Double(sampleRate)).rounded(.down)
        guard f.isFinite, f >= 0 else { return f > 0 ? Int.max : 0 }
        return f >= Double(Int.max / 2) ? Int.max / 2 : Int(f)
    }

    static func format(_ seconds: Double) -> String {
        String(format: "%.3g", seconds)
    }

    // MARK: - Downmix and sanitising

    /// Appends the mean of the channels of `frames` interleaved frames (float32, channels summed
    /// in order then divided by the count, as numpy's `mean(axis=1)` does).
    static func appendMono(_ interleaved: UnsafePointer<Float>, frames: Int, channels: Int, to out: inout [Float]) {
        if channels == 1 {
            out.append(contentsOf: UnsafeBufferPointer(start: interleaved, count: frames))
            return
        }
        let divisor = Float(channels)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: frames))
        out.withUnsafeMutableBufferPointer { dst in
            for f in 0..<frames {
                let row = interleaved + f * channels
                var s = row[0]
                for c in 1..<channels { s += row[c] }
                dst[start + f] = s / divisor
            }
        }
    }

    static func checkFinite(_ samples: inout [Float], policy: NonFiniteSamplePolicy) throws {
        guard let bad = samples.firstIndex(where: { !$0.isFinite }) else { return }
        switch policy {
        case .reject:
            throw AudioError(.nonFiniteSamples, "the audio holds a non-finite sample (NaN or infinity) at frame \(bad)")
        case .replaceWithZero:
            for i in bad..<samples.count where !samples[i].isFinite { samples[i] = 0 }
        }
    }

    // MARK: - Container sniffing

    /// The container the first bytes announce: `nil` for none we accept, `.some(nil)` when it
    /// can only be known after libsndfile parses it (an ID3 tag may precede MP3 or FLAC data).
    static func sniff(_ bytes: UnsafeRawBufferPointer) -> AudioContainer?? {
        func tag(_ at: Int, _ s: String) -> Bool {
            let u = Array(s.utf8)
            guard bytes.count >= at + u.count else { return false }
            for (i, c) in u.enumerated() where bytes[at + i] != c { return false }
            return true
        }
        if tag(0, "RIFF") || tag(0, "RIFX") { return tag(8, "WAVE") ? .some(.wav) : nil }
        if tag(0, "RF64") || tag(0, "BW64") { return .some(.rf64) }
        if tag(0, "riff"), bytes.count >= 16,
           [0x2E, 0x91, 0xCF, 0x11].elementsEqual((4..<8).map { bytes[$0] }) { return .some(.w64) }
        if tag(0, "fLaC") { return .some(.flac) }
        if tag(0, "OggS") { return .some(.ogg) }
        if tag(0, "FORM") { return (tag(8, "AIFF") || tag(8, "AIFC")) ? .some(.aiff) : nil }
        if tag(0, ".snd") || tag(0, "dns.") { return .some(.au) }
        if tag(0, "caff") { return .some(.caf) }
        if tag(0, "ID3") { return .some(nil) }
        if bytes.count >= 4, bytes[0] == 0xFF, bytes[1] & 0xE0 == 0xE0 { return .some(.mpeg) }
        return nil
    }

    static func container(major: Int) -> AudioContainer? {
        switch major {
        case Int(SF_FORMAT_WAV): return .wav
        case Int(SF_FORMAT_WAVEX): return .wavex
        case Int(SF_FORMAT_RF64): return .rf64
        case Int(SF_FORMAT_W64): return .w64
        case Int(SF_FORMAT_FLAC): return .flac
        case Int(SF_FORMAT_OGG): return .ogg
        case Int(SF_FORMAT_AIFF): return .aiff
        case Int(SF_FORMAT_AU): return .au
        case Int(SF_FORMAT_CAF): return .caf
        case Int(SF_FORMAT_MPEG): return .mpeg
        default: return nil
        }
    }

    static func encodingName(_ sub: Int) -> String {
        let names: [Int: String] = [
            SF_FORMAT_PCM_S8: "pcm_s8", SF_FORMAT_PCM_16: "pcm_16",
            SF_FORMAT_PCM_24: "pcm_24", SF_FORMAT_PCM_32: "pcm_32",
            SF_FORMAT_PCM_U8: "pcm_u8", SF_FORMAT_FLOAT: "float",
            SF_FORMAT_DOUBLE: "double", SF_FORMAT_ULAW: "ulaw",
            SF_FORMAT_ALAW: "alaw", SF_FORMAT_IMA_ADPCM: "ima_adpcm",
            SF_FORMAT_MS_ADPCM: "ms_adpcm", SF_FORMAT_GSM610: "gsm610",
            SF_FORMAT_VORBIS: "vorbis", SF_FORMAT_OPUS: "opus",
            SF_FORMAT_ALAC_16: "alac_16", SF_FORMAT_ALAC_20: "alac_20",
            SF_FORMAT_ALAC_24: "alac_24", SF_FORMAT_ALAC_32: "alac_32",
            SF_FORMAT_MPEG_LAYER_I: "mpeg_layer_i", SF_FORMAT_MPEG_LAYER_II: "mpeg_layer_ii",
            SF_FORMAT_MPEG_LAYER_III: "mpeg_layer_iii",
        ]
        return names[sub] ?? "0x" + String(sub, radix: 16)
    }

    /// WAV format tags libsndfile decodes: PCM, MS ADPCM, IEEE float, A-law, mu-law, IMA ADPCM,
    /// GSM 6.10, G.721, MPEG layer I/II, MPEG layer III.
    static let decodableWAVFormatTags: Set<Int> = [0x1, 0x2, 0x3, 0x6, 0x7, 0x11, 0x31, 0x40, 0x50, 0x55]

    /// For a RIFF/RIFX WAVE file whose fmt chunk names a format tag libsndfile does not decode
    /// (resolving WAVE_FORMAT_EXTENSIBLE's sub-format), that tag.
    static func unknownWAVFormatTag(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard case .some(.some(.wav)) = sniff(bytes) else { return nil }
        let bigEndian = bytes[3] == UInt8(ascii: "X")
        func u(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= bytes.count else { return nil }
            var v = 0
            for i in 0..<n { v |= Int(bytes[at + (bigEndian ? n - 1 - i : i)]) << (8 * i) }
            return v
        }
        var offset = 12
        while offset + 8 <= bytes.count, let size = u(offset + 4, 4) {
            if bytes[offset] == UInt8(ascii: "f"), bytes[offset + 1] == UInt8(ascii: "m"),
               bytes[offset + 2] == UInt8(ascii: "t"), bytes[offset + 3] == UInt8(ascii: " ") {
                guard var tag = u(offset + 8, 2) else { return nil }
                if tag == 0xFFFE {
                    // WAVEFORMATEXTENSIBLE: the sub-format GUID starts with the real tag.
                    guard size >= 40, let sub = u(offset + 8 + 24, 2) else { return nil }
                    tag = sub
                }
                return decodableWAVFormatTags.contains(tag) ? nil : tag
            }
            offset += 8 + size + (size & 1)
        }
        return nil
    }

    /// True for an Ogg file whose first packet is complete and is not a Vorbis, Opus or FLAC
    /// identification header (Speex, Theora, Ogg PCM, a skeleton, ...).
    static func unknownOggCodec(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard case .some(.some(.ogg)) = sniff(bytes), bytes.count >= 27 else { return false }
        let segments = Int(bytes[26])
        let start = 27 + segments
        guard bytes.count >= start + 8 else { return false }
        let head = Array(bytes[start..<(start + 8)])
        let known: [[UInt8]] = [[0x01] + Array("vorbis".utf8), Array("OpusHead".utf8), [0x7F] + Array("FLAC".utf8)]
        return !known.contains { head.starts(with: $0) }
    }

    /// The audio data's declared size and the bytes present, when the header declares more
    /// than the file holds (a truncated file): the data chunk of RIFF/RIFX WAVE, the SSND chunk
    /// of AIFF/AIFC, the data size of AU. libsndfile itself silently shortens such files to the
    /// bytes present. Sizes that mean "unknown" (0 and 0xFFFFFFFF in WAV, 0xFFFFFFFF in AU) are
    /// not truncation; bytes ending inside a chunk before the data chunk give (-1, 0). Other
    /// containers are checked by the decoded frame count.
    static func truncatedDataChunk(_ bytes: UnsafeRawBufferPointer, container: AudioContainer) -> (Int, Int)? {
        guard bytes.count >= 12 else { return nil }
        func u32(_ at: Int, bigEndian: Bool) -> Int {
            guard at + 4 <= bytes.count else { return 0 }
            let b = (0..<4).map { Int(bytes[at + $0]) }
            return bigEndian ? (b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) : (b[3] << 24 | b[2] << 16 | b[1] << 8 | b[0])
        }
        func id(_ at: Int, _ s: String) -> Bool {
            let u = Array(s.utf8)
            return at + 4 <= bytes.count && (0..<4).allSatisfy { bytes[at + $0] == u[$0] }
        }
        switch container {
        case .wav, .wavex, .aiff:
            let riff = container != .aiff
            let bigEndian = !riff || bytes[3] == UInt8(ascii: "X")
            let dataID = riff ? "data" : "SSND"
            var offset = 12
            while offset + 8 <= bytes.count {
                let size = u32(offset + 4, bigEndian: bigEndian)
                if id(offset, dataID) {
                    let available = bytes.count - (offset + 8)
                    if riff, size == 0 || size == 0xFFFF_FFFF { return nil }
                    return size > available ? (size, available) : nil
                }
                offset += 8 + size + (size & 1)
            }
            // The bytes end inside a chunk before the data chunk: its declared size is unknown.
            return offset == bytes.count ? nil : (-1, 0)
        case .au:
            let bigEndian = bytes[0] == UInt8(ascii: ".")
            let dataOffset = u32(4, bigEndian: bigEndian), size = u32(8, bigEndian: bigEndian)
            guard size != 0xFFFF_FFFF, dataOffset <= bytes.count else { return nil }
            let available = bytes.count - dataOffset
            return size > available ? (size, available) : nil
        default:
            return nil
        }
    }
}

/// libsndfile reports open failures through process-wide state; see `withOpenFile`.
private let sndfileOpenLock = NSLock()

/// The read-only file that libsndfile's virtual I/O sees: the caller's bytes.
private struct MemoryReader {
    let base: UnsafeRawPointer
    let count: Int64
    var position: Int64

    mutating func seek(_ offset: sf_count_t, _ whence: Int32) -> sf_count_t {
        let origin: Int64
        switch whence {
        case SEEK_SET: origin = 0
        case SEEK_CUR: origin = position
        case SEEK_END: origin = count
        default: return -1
        }
        let (target, overflow) = origin.addingReportingOverflow(offset)
        guard !overflow, target >= 0 else { return -1 }
        position = target
        return position
    }

    mutating func read(_ destination: UnsafeMutableRawPointer?, _ requested: sf_count_t) -> sf_count_t {
        guard let destination, requested > 0, position < count else { return 0 }
        let n = min(requested, count - position)
        destination.copyMemory(from: base + Int(position), byteCount: Int(n))
        position += n
        return n
    }
}
