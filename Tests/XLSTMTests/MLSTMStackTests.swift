import Foundation
import ModelPackage
import Numerics
import Testing
@testable import XLSTM

/// The Swift mLSTM stack against PyTorch + NX-AI `xlstm` (Training/fixtures/make_xlstm_fixtures.py):
/// random weights (every parameter perturbed), width 48 (inner width rounded 96 -> 128), 2 blocks,
/// 4 heads, batch 3 x 16 steps.
@Suite struct MLSTMStackTests {
    struct FixtureConfig: Decodable {
        let width, blocks, heads, steps, batch: Int
        let conv1d_kernel_size, qkv_proj_blocksize: Int
        let proj_factor: Double
    }

    let directory: URL
    let config: FixtureConfig

    init() throws {
        directory = try #require(Bundle.module.url(forResource: "mlstm_small", withExtension: nil,
                                                   subdirectory: "Fixtures"))
        config = try JSONDecoder().decode(FixtureConfig.self,
                                          from: Data(contentsOf: directory.appendingPathComponent("config.json")))
    }

    var stackConfig: MLSTMConfiguration {
        MLSTMConfiguration(width: config.width, blocks: config.blocks, heads: config.heads,
                           convKernelSize: config.conv1d_kernel_size, qkvBlockSize: config.qkv_proj_blocksize,
                           projectionFactor: config.proj_factor)
    }

    @Test func innerWidthRoundsUpToMultipleOf64() {
        #expect(stackConfig.innerWidth == 128)
        #expect(MLSTMConfiguration(width: 512, blocks: 8, heads: 4).innerWidth == 1024)
        #expect(MLSTMConfiguration(width: 33, blocks: 1, heads: 1).innerWidth == 128)
    }

    @Test func matchesReferenceOnEveryStep() throws {
        let weights = try WeightStore(url: directory.appendingPathComponent("weights.safetensors"))
        let io = try WeightStore(url: directory.appendingPathComponent("io.safetensors"))
        let stack = try MLSTMStack(config: stackConfig, parameters: weights)
        try weights.requireAllClaimed()  // every reference parameter is used
        let input = try io.tensor("input").values
        let expected = try io.tensor("output").values
        let output = stack.forward(input, batch: config.batch, steps: config.steps)
        let err = zip(output, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(err <= 1e-4, "max abs error \(err)")
    }

    @Test func batchItemsAreIndependent() throws {
        let weights = try WeightStore(url: directory.appendingPathComponent("weights.safetensors"))
        let io = try WeightStore(url: directory.appendingPathComponent("io.safetensors"))
        let stack = try MLSTMStack(config: stackConfig, parameters: weights)
        let input = try io.tensor("input").values
        let n = config.steps * config.width
        let all = stack.forward(input, batch: config.batch, steps: config.steps)
        for b in 0..<config.batch {
            let one = stack.forward(Array(input[(b * n)..<((b + 1) * n)]), batch: 1, steps: config.steps)
            let err = zip(one, all[(b * n)..<((b + 1) * n)]).map { abs($0 - $1) }.max() ?? .infinity
            #expect(err <= 1e-5, "item \(b): \(err)")
        }
    }

    @Test func missingOrMisshapenTensorIsNamed() throws {
        let weights = try WeightStore(url: directory.appendingPathComponent("weights.safetensors"))
        var bigger = stackConfig
        bigger.blocks = 3
        #expect {
            _ = try MLSTMStack(config: bigger, parameters: weights)
        } throws: { error in
            (error as? ParameterError)?.code == "missing_tensor" && "\(error)".contains("blocks.2.")
        }
        var wider = stackConfig
        wider.heads = 8
        #expect {
            _ = try MLSTMStack(config: wider, parameters: weights)
        } throws: { error in
            (error as? ParameterError)?.code == "tensor_shape_mismatch" && "\(error)".contains("igate.weight")
        }
    }

    @Test func invalidConfigurationIsRefused() {
        let params = InMemoryParameters()
        #expect(throws: ParameterError.self) {
            _ = try MLSTMStack(config: MLSTMConfiguration(width: 48, blocks: 1, heads: 3), parameters: params)
        }
        #expect(MLSTMConfiguration(width: 0, blocks: 1, heads: 1).validationError() != nil)
    }
}
