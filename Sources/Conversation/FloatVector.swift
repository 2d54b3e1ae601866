import Foundation

/// A float32 vector that encodes as base64 of its little-endian bytes: embeddings in session
/// snapshots stay compact (about 5.5 KB for 1024 floats instead of ~20 KB of decimal text) and
/// round-trip exactly.
public struct FloatVector: Codable, Sendable, Equatable {
    public var values: [Float]

    public init(_ values: [Float]) { self.values = values }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let data = Data(base64Encoded: text), data.count % 4 == 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "not base64 of float32 values"))
        }
        values = data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var data = Data(capacity: values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        var c = encoder.singleValueContainer()
        try c.encode(data.base64EncodedString())
    }
}
