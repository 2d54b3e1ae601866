import Foundation
import ModelPackage
import Numerics
import Testing
@testable import XLSTM

/// One stream's mLSTM stack at the paper's size (width 512, 8 blocks, 4 heads; 12.9 M parameters)
/// against PyTorch + xlstm. The weights are not committed: both sides generate them from
/// splitmix64 seeds (Training/fixtures/make_paper_stack_fixture.py), bit-identically.
@Suite struct PaperSizeStackTests {
    struct Spec: Decodable {
        struct Config: Decodable {
            let width, blocks, heads, steps, batch, conv1d_kernel_size, qkv_proj_blocksize: Int
            let proj_factor: Double
        }
        struct Tensor: Decodable {
            let name: String
            let shape: [Int]
            let seed: String
            let scale: Float
            let offset: Float
        }
        let config: Config
        let input_seed: String
        let tensors: [Tensor]
    }

    /// float32 values k / 2^23 - 1 in [-1, 1), as the fixture script computes them.
    static func uniform(seed: UInt64, count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var z = seed &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z = z ^ (z >> 31)
            out[i] = Float(Double(z >> 40) / 8_388_608 - 1)
        }
        return out
    }

    @Test func paperSizeStackMatchesReferenceWithin1e3Relative() throws {
        let dir = try #require(Bundle.module.url(forResource: "mlstm_paper", withExtension: nil, subdirectory: "Fixtures"))
        let spec = try JSONDecoder().decode(Spec.self, from: Data(contentsOf: dir.appendingPathComponent("spec.json")))
        let params = InMemoryParameters()
        for t in spec.tensors {
            let seed = try #require(UInt64(t.seed))
            let values = Self.uniform(seed: seed, count: t.shape.reduce(1, *)).map { $0 * t.scale + t.offset }
            params.set(t.name, shape: t.shape, values: values)
        }
        let c = spec.config
        let config = MLSTMConfiguration(width: c.width, blocks: c.blocks, heads: c.heads,
                                        convKernelSize: c.conv1d_kernel_size, qkvBlockSize: c.qkv_proj_blocksize,
                                        projectionFactor: c.proj_factor)
        #expect(config.parameterCount == spec.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) })
        let stack = try MLSTMStack(config: config, parameters: params)
        let input = Self.uniform(seed: try #require(UInt64(spec.input_seed)), count: c.batch * c.steps * c.width)
        let output = stack.forward(input, batch: c.batch, steps: c.steps)
        let expected = try WeightStore(url: dir.appendingPathComponent("io.safetensors")).tensor("output").values
        let scale = expected.map(abs).max() ?? 1
        let err = zip(output, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(err / scale <= 1e-3, "max abs error \(err), relative to max |y| \(err / scale)")
        #expect(err <= 1e-3)
    }
}
