import Foundation
import Numerics
import Conversation
import DialogicalEmotionDecoder
import GatedXLSTM

/// Test doubles shared by the Conversation and EmotionService tests: a classifier with
/// fabricated weights, a deterministic stand-in encoder, and a collector of completions.

/// Fabricates any requested tensor from a seed derived from its name (a random classifier
/// without a fixture file).
public final class RandomParameters: ParameterSource, @unchecked Sendable {
    public init() {}
    public func parameter(_ name: String, shape: [Int]) throws -> Parameter {
        var state = UInt64(truncatingIfNeeded: name.utf8.reduce(1469598103934665603) { ($0 ^ UInt64($1)) &* 1099511628211 })
        let count = shape.reduce(1, *)
        let fanIn = Float(shape.last ?? 1)
        let values = (0..<count).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(state >> 40) / Float(1 << 24) * 2 - 1
            return name.hasSuffix("norm.weight") ? 0.1 * u : u / fanIn.squareRoot()
        }
        return Parameter(name: name, shape: shape, values: values)
    }
}

public func makeClassifier() throws -> GatedXLSTMClassifier {
    let config = ClassifierConfiguration(embeddingDim: 64, steps: 8, stepDim: 8,
                                         stack: .init(width: 16, blocks: 1, heads: 2))
    return try GatedXLSTMClassifier(configuration: config, labels: ["ang", "hap", "neu", "sad"],
                                    parameters: RandomParameters())
}

/// An engine over `makeClassifier()`, `encoder` and DED (p0 0.2, alpha 1, beam 5), with the
/// default configuration changed by `configure`: what the conversation tests run on.
public func makeEngine(_ encoder: FakeEncoder = FakeEncoder(),
                       configure: (inout ConversationConfiguration) -> Void = { _ in }) throws -> ConversationEngine {
    var config = ConversationConfiguration()
    configure(&config)
    return try ConversationEngine(classifier: try makeClassifier(), encoder: encoder,
                                  ded: try DEDParameters(p0: 0.2, alpha: 1, beamWidth: 5), configuration: config)
}

/// A deterministic stand-in encoder: embeddings are pseudo-random functions of the content.
/// Audio whose first byte is 0xFF is "undecodable"; a clip lasts one millisecond per byte
/// (`audioSeconds(of:)`); `gate` (if set) blocks every call until signalled, to hold turns in
/// the queue.
public final class FakeEncoder: TurnEncoder, @unchecked Sendable {
    public let dimension = 64
    let gate: DispatchSemaphore?
    private let lock = NSLock()
    private(set) var calls = 0

    public init(gate: DispatchSemaphore? = nil) { self.gate = gate }

    /// Embedding calls so far (counted before the gate).
    public var callCount: Int { lock.withLock { calls } }

    /// The sizes of the batches of clips `embed(audios:)` was given, in order.
    public var audioBatches: [Int] { lock.withLock { batches } }
    private var batches: [Int] = []

    public func embed(audios: [Data]) -> [Result<[Float], any Error>] {
        lock.withLock { batches.append(audios.count) }
        return audios.map { clip in Result { try embed(audio: clip) } }
    }

    public func audioSeconds(of audio: Data) throws -> Double { Double(audio.count) / 1000 }

    func vector(_ seed: UInt64) -> [Float] {
        var s = seed | 1
        let v = (0..<dimension).map { _ -> Float in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Float(Int64(bitPattern: s) >> 40) / Float(1 << 23)
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { $0 / norm }
    }

    func bump() {
        lock.lock(); calls += 1; lock.unlock()
        gate?.wait()
    }

    public func embed(audio: Data) throws -> [Float] {
        bump()
        if audio.first == 0xFF {
            throw ConversationError(.invalidInput, code: "unreadable_audio", "not audio")
        }
        return vector(audio.reduce(7) { ($0 ^ UInt64($1)) &* 1099511628211 })
    }

    public func embed(text: String) throws -> [Float] {
        bump()
        return vector(text.utf8.reduce(11) { ($0 ^ UInt64($1)) &* 1099511628211 })
    }
}

/// Collects results from completion callbacks.
public final class Collector: @unchecked Sendable {
    public init() {}
    private let lock = NSLock()
    private var results: [Int: Result<TurnOutcome, ConversationError>] = [:]
    private let group = DispatchGroup()

    public func callback(_ key: Int) -> ConversationEngine.Completion {
        group.enter()
        return { result in
            self.lock.lock()
            self.results[key] = result
            self.lock.unlock()
            self.group.leave()
        }
    }

    public func wait(seconds: Double = 30) -> Bool { group.wait(timeout: .now() + seconds) == .success }

    public subscript(_ key: Int) -> Result<TurnOutcome, ConversationError>? {
        lock.lock(); defer { lock.unlock() }
        return results[key]
    }
}

extension Result {
    public var value: Success? { if case .success(let v) = self { return v }; return nil }
    public var error: Failure? { if case .failure(let e) = self { return e }; return nil }
}
