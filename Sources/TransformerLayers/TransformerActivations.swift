import Foundation

/// The activation of the transformer towers not applied inside the product kernels (GELU and
/// ReLU are: `PackedMatrix.Epilogue`).
enum TransformerActivation {
    /// `tanh(x)` in place (only the pooler uses it: one row per transcript).
    static func tanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = tanhf(x[i]) }
    }
}
