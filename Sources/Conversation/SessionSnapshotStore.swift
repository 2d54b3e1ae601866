import Foundation
import ModelPackage

/// Writes sessions to a state directory and reads them back, so a rolling restart loses no
/// conversation.
///
/// One JSON file per session (`<SHA-256 of namespace, NUL, id>.session.json`, so two tenants'
/// `call-42` never collide; dates as Foundation reference-date seconds,
/// so they round-trip exactly; written to a temporary file and renamed,
/// so a crash never leaves a half-written session); only sessions that changed since the last
/// pass are rewritten, and files of sessions that are gone (deleted, expired) are removed. Files
/// written before namespaces (named by the id alone, without `namespace` inside) are read into the
/// default namespace and renamed to their new name at once (migrated).
public final class SessionSnapshotStore: @unchecked Sendable {
    public let directory: URL
    private let lock = NSLock()
    private var written: [SessionKey: Int] = [:]
    private var files: [SessionKey: String] = [:]

    public init(directory: URL) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ConversationError(.internal, code: "state_dir_unusable", "cannot create \(directory.path): \(error)")
        }
    }

    /// File name for a session: the SHA-256 of its namespace, a NUL byte and its id (the key
    /// itself is stored inside the file).
    static func fileName(for key: SessionKey) -> String {
        SHA256Digest.hex(of: Data(key.namespace.utf8) + [0] + Data(key.id.utf8)) + ".session.json"
    }

    /// Writes what changed in `engine` since the last call; returns the number of files written.
    @discardableResult
    public func write(_ engine: ConversationEngine) throws -> Int {
        lock.lock(); defer { lock.unlock() }
        let (changed, current) = engine.changes(since: written)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .deferredToDate
        for (state, version) in changed {
            let name = Self.fileName(for: state.key)
            let target = directory.appendingPathComponent(name)
            let temporary = directory.appendingPathComponent(".\(name).tmp")
            do {
                try encoder.encode(state).write(to: temporary)
                if rename(temporary.path, target.path) != 0 {
                    throw ConversationError(.internal, code: "state_write_failed", "rename to \(target.path): errno \(errno)")
                }
            } catch let error as ConversationError {
                throw error
            } catch {
                throw ConversationError(.internal, code: "state_write_failed", "writing \(target.path): \(error)")
            }
            if let old = files[state.key], old != name {
                try? FileManager.default.removeItem(at: directory.appendingPathComponent(old))
            }
            written[state.key] = version
            files[state.key] = name
        }
        for id in Array(written.keys) where !current.contains(id) {
            if let name = files[id] { try? FileManager.default.removeItem(at: directory.appendingPathComponent(name)) }
            written[id] = nil
            files[id] = nil
        }
        return changed.count
    }

    /// Reads every session file; unreadable files are reported and skipped, never fatal. A file
    /// not under its key's name (pre-namespace) is renamed to it; of two files of one key, the one
    /// under the key's name wins and the other is removed.
    public func read() -> (sessions: [SessionState], problems: [String]) {
        lock.lock(); defer { lock.unlock() }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .deferredToDate
        var found: [SessionKey: (name: String, state: SessionState)] = [:]
        var problems: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.sorted() where name.hasSuffix(".session.json") && !name.hasPrefix(".") {
            let url = directory.appendingPathComponent(name)
            do {
                let state = try decoder.decode(SessionState.self, from: Data(contentsOf: url))
                var keep = (name: name, state: state)
                if let other = found[state.key] {
                    let canonical = Self.fileName(for: state.key)
                    if other.name == canonical { keep = other }
                    let stale = keep.name == name ? other.name : name
                    try? FileManager.default.removeItem(at: directory.appendingPathComponent(stale))
                    problems.append("\(stale): a second file of one session, removed")
                }
                found[state.key] = keep
            } catch {
                problems.append("\(name): \(error)")
            }
        }
        for (key, file) in found {
            var name = file.name
            let canonical = Self.fileName(for: key)
            if name != canonical {
                if rename(directory.appendingPathComponent(name).path, directory.appendingPathComponent(canonical).path) == 0 {
                    name = canonical
                } else {
                    problems.append("\(name): cannot rename to \(canonical): errno \(errno)")
                }
            }
            files[key] = name
            written[key] = 1
        }
        return (found.values.map(\.state).sorted { ($0.namespace, $0.id) < ($1.namespace, $1.id) }, problems)
    }
}
