import Foundation
import Numerics
import XLSTM
import ErrorVocabulary

/// The classifier's answer for one turn.
public struct Classification: Sendable, Equatable {
    public var logits: [Float]
    public var probabilities: [Float]
    /// 12 gate weights in `StreamLayout.names` order; stream 0 is ungated (1.0).
    public var gates: [Float]

    /// The classifier's own decision: the index of the most probable label (the first on ties).
    public var label: Int {
        probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
    }
}

/// Errors about classifier inputs and configuration, with stable codes.
public struct ClassifierError: CodedError, Equatable {
    public let code: String
    public let message: String
    /// Internal: the service builds the classifier's inputs itself from a model package.
    public var kind: ErrorKind { .internal }
}

/// The gated xLSTM classifier of GatedxLSTM: one mLSTM stack per stream, a sigmoid gate from
/// the current speaker's audio over streams 1...11, concatenation and a linear layer.
///
/// Deterministic (no dropout at inference), gated per utterance. Streams run in parallel with
/// single-threaded BLAS: the products are small (16 rows a turn), so parallel streams beat
/// threaded BLAS on few cores.
public final class GatedXLSTMClassifier: Sendable {
    public let configuration: ClassifierConfiguration
    public let labels: [String]
    let inputProjection: [(weight: Linear, bias: Parameter)]
    let stacks: [MLSTMStack]
    let gateWeight: Linear, gateBias: Parameter
    let outputWeight: Linear, outputBias: Parameter
    let workspaces = ScratchPool { Workspace() }

    /// Reads every parameter by name and shape (PyTorch `state_dict` names of the reference
    /// module: `streams.{i}.input_proj.*`, `streams.{i}.stack.*`, `gate.*`, `classifier.*`).
    /// Sets OpenBLAS to one thread per product: the classifier parallelises over streams.
    public init(configuration: ClassifierConfiguration, labels: [String], parameters: ParameterSource) throws {
        if let problem = configuration.validationError() {
            throw ClassifierError(code: "invalid_configuration", message: "classifier: \(problem)")
        }
        guard !labels.isEmpty else {
            throw ClassifierError(code: "invalid_configuration", message: "classifier: no labels")
        }
        self.configuration = configuration
        self.labels = labels
        let c = configuration, n = StreamLayout.count
        func packed(_ name: String, _ shape: [Int]) throws -> Linear {
            let p = try parameters.parameter(name, shape: shape)
            defer { parameters.release(p) }
            return Linear(p, precision: parameters.weightPrecision)
        }
        inputProjection = try (0..<n).map {
            (try packed("streams.\($0).input_proj.weight", [c.width, c.stepDim]),
             try parameters.parameter("streams.\($0).input_proj.bias", shape: [c.width]))
        }
        stacks = try (0..<n).map {
            try MLSTMStack(config: c.stack, parameters: parameters, prefix: "streams.\($0).stack.")
        }
        gateWeight = try packed("gate.weight", [n - 1, c.embeddingDim])
        gateBias = try parameters.parameter("gate.bias", shape: [n - 1])
        outputWeight = try packed("classifier.weight", [labels.count, n * c.width])
        outputBias = try parameters.parameter("classifier.bias", shape: [labels.count])
        BLAS.setThreads(1)
    }

    /// Classifies a batch of turns; each item is 12 stream vectors of `embedding_dim` values.
    /// `prepared[b]` (if given and not nil) holds item b's context streams already run
    /// (`prepareContext`): only its current turn's 4 stacks run now, and the result is the same.
    public func classify(_ batch: [[[Float]]], prepared: [PreparedContext?] = []) throws -> [Classification] {
        let c = configuration, n = StreamLayout.count, e = c.embeddingDim
        guard prepared.isEmpty || prepared.count == batch.count else {
            throw ClassifierError(code: "invalid_streams", message: "\(prepared.count) prepared contexts for \(batch.count) items")
        }
        for case let context? in prepared where context.outputs.count != (n - StreamLayout.perTurn) * c.width {
            throw ClassifierError(code: "invalid_streams", message: "a prepared context of another classifier size")
        }
        for (b, streams) in batch.enumerated() {
            guard streams.count == n else {
                throw ClassifierError(code: "invalid_streams",
                                      message: "item \(b): expected \(n) streams, got \(streams.count)")
            }
            for (s, v) in streams.enumerated() {
                guard v.count == e else {
                    throw ClassifierError(code: "invalid_streams", message:
                        "item \(b) stream \(StreamLayout.names[s]): expected \(e) values, got \(v.count)")
                }
                guard v.allSatisfy(\.isFinite) else {
                    throw ClassifierError(code: "invalid_streams",
                                          message: "item \(b) stream \(StreamLayout.names[s]): non-finite value")
                }
            }
        }
        let count = batch.count
        guard count > 0 else { return [] }

        // Stream-major input: stream s, item b at [(s * count + b) * e].
        var input = [Float](repeating: 0, count: n * count * e)
        for (b, streams) in batch.enumerated() {
            for s in 0..<n {
                input.withUnsafeMutableBufferPointer { buf in
                    streams[s].withUnsafeBufferPointer { src in
                        (buf.baseAddress! + (s * count + b) * e).update(from: src.baseAddress!, count: e)
                    }
                }
            }
        }
        var fused = [Float](repeating: 0, count: count * n * c.width)
        let context = prepared.isEmpty ? Array(repeating: nil, count: count) : prepared
        input.withUnsafeBufferPointer { inBuf in
            fused.withUnsafeMutableBufferPointer { fusedBuf in
                runStreams(input: inBuf.baseAddress!, count: count, fused: fusedBuf.baseAddress!,
                           skip: context.map { $0 != nil })
            }
        }
        // Prepared items: their context streams' outputs as they were computed ahead.
        let contextStart = StreamLayout.perTurn * c.width
        for (b, item) in context.enumerated() {
            guard let item else { continue }
            fused.replaceSubrange((b * n * c.width + contextStart)..<((b + 1) * n * c.width), with: item.outputs)
        }

        // Gate from the current speaker's audio (stream 0), per item.
        var gates = [Float](repeating: 0, count: count * (n - 1))
        input.withUnsafeBufferPointer { inBuf in
            gates.withUnsafeMutableBufferPointer { g in
                gateWeight.apply(inBuf.baseAddress!, rows: count, bias: gateBias.pointer, into: g.baseAddress!)
                Activation.sigmoid(g.baseAddress!, count: g.count)
            }
        }
        // Scale streams 1...11 and apply the output layer.
        let labelCount = labels.count
        var logits = [Float](repeating: 0, count: count * labelCount)
        fused.withUnsafeMutableBufferPointer { f in
            for b in 0..<count {
                for s in 1..<n {
                    let w = gates[b * (n - 1) + s - 1]
                    let seg = f.baseAddress! + b * n * c.width + s * c.width
                    for j in 0..<c.width { seg[j] *= w }
                }
            }
            logits.withUnsafeMutableBufferPointer { l in
                outputWeight.apply(f.baseAddress!, rows: count, bias: outputBias.pointer, into: l.baseAddress!)
            }
        }
        return (0..<count).map { b in
            let l = Array(logits[(b * labelCount)..<((b + 1) * labelCount)])
            return Classification(logits: l, probabilities: Activation.softmax(l),
                                  gates: [1] + gates[(b * (n - 1))..<((b + 1) * (n - 1))])
        }
    }

    /// The context streams (slots t-1 and t-2: streams 4...11) of a dialogue's next turn, run
    /// ahead of it: a turn's 4-tuple is fixed when it arrives, so once turn t is answered the
    /// stacks of turn t+1's context can run while the client is away, and turn t+1 waits only
    /// for its own 4 stacks. `previous` and `beforePrevious` are the 4-tuples of turns t and t-1
    /// (nil: absent, zeros).
    public func prepareContext(previous: [[Float]]?, beforePrevious: [[Float]]?) throws -> PreparedContext {
        let c = configuration, n = StreamLayout.count, e = c.embeddingDim, per = StreamLayout.perTurn
        let zeros = Array(repeating: [Float](repeating: 0, count: e), count: per)
        let vectors = (previous ?? zeros) + (beforePrevious ?? zeros)
        guard vectors.count == n - per, vectors.allSatisfy({ $0.count == e && $0.allSatisfy(\.isFinite) }) else {
            throw ClassifierError(code: "invalid_streams", message: "a context needs two 4-tuples of \(e) finite values")
        }
        // Laid out as a batch of one whose current-turn streams are not run.
        var input = [Float](repeating: 0, count: n * e)
        for (i, v) in vectors.enumerated() { input.replaceSubrange(((per + i) * e)..<((per + i + 1) * e), with: v) }
        var fused = [Float](repeating: 0, count: n * c.width)
        input.withUnsafeBufferPointer { inBuf in
            fused.withUnsafeMutableBufferPointer { f in
                runStreams(input: inBuf.baseAddress!, count: 1, fused: f.baseAddress!, skip: [false], only: per..<n)
            }
        }
        return PreparedContext(outputs: Array(fused[(per * c.width)...]))
    }

    /// Runs the stacks concurrently; writes each item's last-step outputs into `fused`
    /// (`count x (12 * width)`, stream s at column `s * width`). Streams outside `only` are not
    /// run; nor are the context streams (4...11) of an item whose `skip` is true (prepared).
    private func runStreams(input: UnsafePointer<Float>, count: Int, fused: UnsafeMutablePointer<Float>,
                           skip: [Bool], only: Range<Int> = 0..<StreamLayout.count) {
        let c = configuration, e = c.embeddingDim, d = c.width, n = StreamLayout.count
        let needed = (0..<count).filter { !skip[$0] }
        Parallel.forEach(only.count) { i in
            let s = only.lowerBound + i
            let items = s < StreamLayout.perTurn ? Array(0..<count) : needed
            guard !items.isEmpty else { return }
            let rows = items.count * c.steps
            workspaces.with { ws in
                let x = ws.activations.reserve(rows * d + (items.count == count ? 0 : items.count * e))
                var source = input + s * count * e
                if items.count != count {
                    // The items to run, gathered after the activations.
                    let gathered = x + rows * d
                    for (j, b) in items.enumerated() { (gathered + j * e).update(from: source + b * e, count: e) }
                    source = UnsafePointer(gathered)
                }
                // Each vector read as steps x step_dim rows, projected to the width.
                inputProjection[s].weight.apply(source, rows: rows, bias: inputProjection[s].bias.pointer, into: x)
                stacks[s].forward(x, batch: items.count, steps: c.steps, workspace: ws.stack)
                for (j, b) in items.enumerated() {
                    (fused + b * n * d + s * d).update(from: x + (j * c.steps + c.steps - 1) * d, count: d)
                }
            }
        }
    }
}

/// The last-step outputs of a turn's context stacks (streams 4...11, `8 x width` values), run
/// ahead by `GatedXLSTMClassifier.prepareContext`.
public struct PreparedContext: Sendable, Equatable {
    public let outputs: [Float]
    /// Bytes held.
    public var byteCount: Int { outputs.count * MemoryLayout<Float>.size }
}

/// One task's buffers for the classifier (taken from a `ScratchPool`, so concurrent turns never
/// share them): the stack's workspace and the activations.
final class Workspace {
    let stack = MLSTMWorkspace()
    let activations = Scratch()
}
