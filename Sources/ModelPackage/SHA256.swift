import COpenSSL
import Foundation

/// SHA-256 through libcrypto's EVP interface.
public enum SHA256Digest {
    /// Lower-case hex SHA-256 of `bytes`, hashed in chunks (so very large mappings are paged in
    /// progressively).
    public static func hex(of bytes: UnsafeRawBufferPointer) -> String {
        hex(digest(of: bytes))
    }

    /// Lower-case hex SHA-256 of `data`.
    public static func hex(of data: Data) -> String {
        data.withUnsafeBytes { hex(of: $0) }
    }

    /// The 32-byte SHA-256 of `bytes`.
    /// `afterChunk` is called with each hashed chunk (16 MiB), e.g. to drop mapped pages so that
    /// hashing a large weights file does not keep it all resident.
    public static func digest(of bytes: UnsafeRawBufferPointer,
                              afterChunk: ((UnsafeRawBufferPointer) -> Void)? = nil) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else {
            fatalError("libcrypto: EVP_MD_CTX_new failed (out of memory)")
        }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("libcrypto: EVP_DigestInit_ex(sha256) failed")
        }
        let chunk = 1 << 24
        var offset = 0
        while offset < bytes.count {
            let n = min(chunk, bytes.count - offset)
            guard EVP_DigestUpdate(context, bytes.baseAddress! + offset, n) == 1 else {
                fatalError("libcrypto: EVP_DigestUpdate failed")
            }
            afterChunk?(UnsafeRawBufferPointer(start: bytes.baseAddress! + offset, count: n))
            offset += n
        }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &out, &length) == 1, length == 32 else {
            fatalError("libcrypto: EVP_DigestFinal_ex failed")
        }
        return Array(out.prefix(32))
    }

    static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(digest.count * 2)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
