import Conversation
import Foundation
import ModelPackage
import ErrorVocabulary

/// Who a request acts for: a tenant, whose name is the namespace of its sessions, and whether it
/// is an admin (which may act for any tenant with `X-Tenant`).
public struct Tenant: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let isAdmin: Bool

    /// Everyone when no keys are configured (one namespace, as before tenants existed).
    public static let open = Tenant(name: SessionKey.defaultNamespace, isAdmin: false)

    /// The tenant of a plain key: `key-` and the first 12 hex digits of the key's SHA-256, so
    /// that the name can be logged and configured without revealing the key.
    static func named(byKey key: String) -> Tenant {
        Tenant(name: "key-" + SHA256Digest.hex(of: Data(key.utf8)).prefix(12), isAdmin: false)
    }

    /// Tenant names: 1-64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
    static func isValidName(_ name: String) -> Bool {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".utf8)
        guard let first = name.utf8.first, name.utf8.count <= 64, first != UInt8(ascii: "."),
              first != UInt8(ascii: "_"), first != UInt8(ascii: "-") else { return false }
        return name.utf8.allSatisfy(allowed.contains)
    }

    public var description: String { isAdmin ? "\(name) (admin)" : name }
}

/// Why the configured API keys cannot be used. Fatal at start: auth fails closed.
public struct APIKeysError: CodedError, Equatable {
    public let message: String
    public var code: String { "invalid_api_keys" }
    public var kind: ErrorKind { .internal }
    public var description: String { message }
}

/// Optional bearer-token API keys, each belonging to a tenant. With no keys configured every
/// request is allowed and all share one namespace; otherwise `/v1/*` requires
/// `Authorization: Bearer <key>` (compared in constant time) and a key sees only its tenant's
/// sessions.
///
/// One entry per line of a key file (blank lines and `#` comments ignored), or comma-separated in
/// `EMOTION_API_KEYS`:
/// - `KEY`: a tenant of its own, named `key-<12 hex digits of SHA-256(KEY)>`;
/// - `NAME:KEY`: tenant `NAME` (several keys may share one, e.g. during a rotation);
/// - `admin:KEY`: an admin key (its own sessions are tenant `admin`; `X-Tenant` acts for another).
/// A key may not contain `:` or whitespace; `NAME` is 1-64 of `A-Z a-z 0-9 . _ -` and may not
/// start with `key-`.
public struct APIKeys: Sendable {
    struct Entry: Sendable {
        let key: [UInt8]
        let tenant: Tenant
    }

    let entries: [Entry]

    /// No keys: auth off.
    public static let none = APIKeys(entries: [])

    init(entries: [Entry]) { self.entries = entries }

    /// Keys from entries (`KEY`, `NAME:KEY` or `admin:KEY`); a malformed entry is an error.
    public init(_ lines: [String]) throws(APIKeysError) {
        let entries = try lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { line throws(APIKeysError) in try Self.entry(line) }
        try self.init(validating: entries)
    }

    /// Refuses a key listed for two tenants.
    private init(validating entries: [Entry]) throws(APIKeysError) {
        var owners: [[UInt8]: Tenant] = [:]
        for entry in entries {
            if let owner = owners[entry.key], owner != entry.tenant {
                throw APIKeysError(message: "one key is listed for two tenants (\(owner) and \(entry.tenant))")
            }
            owners[entry.key] = entry.tenant
        }
        self.entries = entries
    }

    private static func entry(_ line: String) throws(APIKeysError) -> Entry {
        let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let key = parts.count == 2 ? parts[1] : line
        guard !key.isEmpty, !key.contains(":"), !key.contains(where: \.isWhitespace) else {
            throw APIKeysError(message: "an API key entry is not KEY, NAME:KEY or admin:KEY (keys hold no ':' or spaces)")
        }
        guard parts.count == 2 else { return Entry(key: Array(key.utf8), tenant: .named(byKey: key)) }
        let name = parts[0]
        guard Tenant.isValidName(name), !name.hasPrefix("key-") else {
            throw APIKeysError(message: "tenant name '\(name.prefix(64))' is not 1-64 of A-Z a-z 0-9 . _ - (not starting with 'key-')")
        }
        return Entry(key: Array(key.utf8), tenant: Tenant(name: name, isAdmin: name == "admin"))
    }

    public var isEnabled: Bool { !entries.isEmpty }

    /// The distinct tenants, for the configuration log.
    public var tenants: Set<Tenant> { Set(entries.map(\.tenant)) }

    /// Keys from a file; a file that is missing, unreadable or holds no keys is an error.
    public static func load(file: String) throws(APIKeysError) -> APIKeys {
        guard !file.isEmpty else { throw APIKeysError(message: "the API key file name is empty") }
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw APIKeysError(message: "cannot read the API key file \(file): \(error.localizedDescription)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let keys = try APIKeys(lines)
        guard keys.isEnabled else { throw APIKeysError(message: "the API key file \(file) holds no keys") }
        return keys
    }

    /// The keys the server is configured with: a key file and/or comma-separated entries (the
    /// `EMOTION_API_KEYS` variable). Either one given but holding no usable key is an error, so a
    /// missing or empty secret never turns auth off; neither given means no keys.
    public static func configured(file: String?, inline: String?) throws(APIKeysError) -> APIKeys {
        var entries = try file.map { path throws(APIKeysError) in try load(file: path).entries } ?? []
        if let inline {
            let listed = try APIKeys(inline.split(separator: ",").map(String.init))
            guard listed.isEnabled else { throw APIKeysError(message: "EMOTION_API_KEYS is set but holds no keys") }
            entries += listed.entries
        }
        return try APIKeys(validating: entries)
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

    /// The tenant of the presented key (`Tenant.open` when auth is off); 401 otherwise.
    func tenant(for authorization: String?) throws(APIError) -> Tenant {
        guard isEnabled else { return .open }
        guard let authorization, authorization.count > 7,
              authorization.prefix(7).lowercased() == "bearer " else {
            throw APIError(.unauthorized, "unauthorized", "missing 'Authorization: Bearer <key>'")
        }
        let presented = Array(authorization.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        var match: Tenant?
        for entry in entries where Self.constantTimeEqual(presented, entry.key) { match = entry.tenant }
        guard let match else { throw APIError(.unauthorized, "unauthorized", "the API key is not valid") }
        return match
    }
}
