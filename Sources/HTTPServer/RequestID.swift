/// Request ids: taken from an incoming `X-Request-Id` when sane, generated otherwise.
public enum RequestID {
    /// The header carrying the id, in requests and responses.
    public static let headerName = "X-Request-Id"

    /// 32 lowercase hex digits from the system's cryptographic generator.
    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(32)
        for _ in 0..<2 {
            var word = rng.next() as UInt64
            for _ in 0..<16 {
                out.append(digits[Int(word & 0xF)])
                word >>= 4
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The client's id when it is 1...`maxLength` bytes of `A-Z a-z 0-9 - _ . : / + = @`
    /// (UUIDs, ULIDs, hex, base64, W3C trace ids all pass; spaces, quotes, control bytes and
    /// anything non-ASCII do not, so the id is safe to log and echo).
    public static func sanitize(_ value: String?, maxLength: Int = 128) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= maxLength else { return nil }
        for b in value.utf8 {
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: continue
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
                 UInt8(ascii: "/"), UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: "@"): continue
            default: return nil
            }
        }
        return value
    }
}
