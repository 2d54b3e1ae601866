/// Widening of 16-bit floats to float32 (OpenBLAS here has no bf16/f16 GEMM, so stored
/// half-precision weights are widened once at load).
public enum HalfPrecision {
    /// IEEE 754 binary16 -> binary32, exact (subnormals, infinities and NaN included).
    @inlinable public static func float(fromHalf bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa * 2^-24.
            let magnitude = Float(mantissa) * 5.9604644775390625e-8
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
    }

    /// bfloat16 -> binary32: the upper half of the float's bit pattern.
    @inlinable public static func float(fromBFloat16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    public static func widenHalf(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for i in 0..<count { dst[i] = float(fromHalf: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
    }

    public static func widenBFloat16(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for i in 0..<count { dst[i] = float(fromBFloat16: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
    }
}
