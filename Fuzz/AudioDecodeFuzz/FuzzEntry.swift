// libFuzzer entry point for audio decoding: arbitrary bytes through the whole front-end
// (container sniffing, libsndfile virtual I/O, duration and truncation checks, downmix,
// resampling, log-mel windows), compiled into the AudioFrontEnd module.
//
// Checked (a failure traps and libFuzzer saves the input):
// 1. no crash (ASan: bounds, use-after-free; Swift: overflow, force-unwrap) and no hang;
// 2. the answer is either features or an AudioError with one of the documented codes;
// 3. features are sane: at least one window, every window frames x n_mels, every value finite,
//    and the duration within the configured limit.
import Foundation

private let frontEnd: AudioFrontEnd = {
    var config = AudioFrontEndConfiguration.clapUnfused
    config.sampleRate = 16_000      // smaller windows keep executions fast
    config.maxLengthSeconds = 2
    config.nFFT = 400
    config.hopLength = 160
    config.fMax = 8_000
    return try! AudioFrontEnd(configuration: config,
                              decodingOptions: AudioDecodingOptions(maxDurationSeconds: 8))
}()

private let documentedCodes: Set<String> = Set(AudioError.Code.allCases.map(\.rawValue))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    do {
        let features = try frontEnd.features(encoded: bytes)
        let c = frontEnd.configuration
        precondition(!features.windows.isEmpty, "no window")
        precondition(features.durationSeconds <= 8.5, "duration \(features.durationSeconds) beyond the limit")
        for w in features.windows {
            precondition(w.features.melCount == c.nMels, "mel count")
            precondition(w.features.values.count == w.features.frameCount * c.nMels, "shape")
            precondition(w.features.values.allSatisfy(\.isFinite), "non-finite feature")
        }
    } catch let error as AudioError {
        precondition(documentedCodes.contains(error.code.rawValue), "undocumented code \(error.code)")
    } catch {
        preconditionFailure("unexpected error type: \(error)")
    }
    return 0
}
