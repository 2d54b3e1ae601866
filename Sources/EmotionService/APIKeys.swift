import Foundation

/// Optional bearer-token API keys. With no keys configured every request is allowed; otherwise
/// `/v1/*` requires `Authorization: Bearer <key>`, compared in constant time.
public struct APIKeys: Sendable {
    let keys: [[UInt8]]

    public init(_ keys: [String]) {
        self.keys = keys.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    public var isEnabled: Bool { !keys.isEmpty }

    /// Keys from a file, one per line (blank lines and `#` comments ignored).
    public static func load(file: String) throws -> APIKeys {
        APIKeys(try keys(inFile: file))
    }

    /// The keys listed in a file, one per line (blank lines and `#` comments ignored).
    public static func keys(inFile file: String) throws -> [String] {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    /// Compares without an early exit, so the time taken does not reveal how much matched.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= x ^ y
        }
        return diff == 0
    }

    func check(_ authorization: String?) throws(APIError) {
        guard isEnabled else { return }
        guard let authorization, authorization.count > 7,
              authorization.prefix(7).lowercased() == "bearer " else {
            throw APIError(401, "unauthorized", "missing 'Authorization: Bearer <key>'")
        }
        let presented = Array(authorization.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        var ok = false
        for key in keys { ok = Self.constantTimeEqual(presented, key) || ok }
        guard ok else { throw APIError(401, "unauthorized", "the API key is not valid") }
    }
}
