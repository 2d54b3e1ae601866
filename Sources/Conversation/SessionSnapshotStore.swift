import Foundation

/// Writes sessions to a state directory and reads them back, so a rolling restart loses no
/// conversation.
///
/// One JSON file per session (`<name>.session.json`; dates as Foundation reference-date seconds,
/// so they round-trip exactly; written to a temporary file and renamed,
/// so a crash never leaves a half-written session); only sessions that changed since the last
/// pass are rewritten, and files of sessions that are gone (deleted, expired) are removed.
public final class SessionSnapshotStore: @unchecked Sendable {
    public let directory: URL
    private let lock = NSLock()
    private var written: [String: Int] = [:]
    private var files: [String: String] = [:]

    public init(directory: URL) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ConversationError(.internal, code: "state_dir_unusable", "cannot create \(directory.path): \(error)")
        }
    }

    /// File name for a session id: hex of its UTF-8 when short, else a 64-bit FNV-1a digest plus
    /// the length (the id itself is stored inside the file).
    static func fileName(for id: String) -> String {
        let bytes = Array(id.utf8)
        if bytes.count <= 100 {
            return bytes.map { String(format: "%02x", $0) }.joined() + ".session.json"
        }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return String(format: "h%016llx-%d", h, bytes.count) + ".session.json"
    }

    /// Writes what changed in `engine` since the last call; returns the number of files written.
    @discardableResult
    public func write(_ engine: ConversationEngine) throws -> Int {
        lock.lock(); defer { lock.unlock() }
        let (changed, current) = engine.changes(since: written)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .deferredToDate
        for (state, version) in changed {
            let name = Self.fileName(for: state.id)
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
            written[state.id] = version
            files[state.id] = name
        }
        for id in Array(written.keys) where !current.contains(id) {
            if let name = files[id] { try? FileManager.default.removeItem(at: directory.appendingPathComponent(name)) }
            written[id] = nil
            files[id] = nil
        }
        return changed.count
    }

    /// Reads every session file; unreadable files are reported and skipped, never fatal.
    public func read() -> (sessions: [SessionState], problems: [String]) {
        lock.lock(); defer { lock.unlock() }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .deferredToDate
        var sessions: [SessionState] = [], problems: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.sorted() where name.hasSuffix(".session.json") && !name.hasPrefix(".") {
            let url = directory.appendingPathComponent(name)
            do {
                let state = try decoder.decode(SessionState.self, from: Data(contentsOf: url))
                sessions.append(state)
                files[state.id] = name
                written[state.id] = 1
            } catch {
                problems.append("\(name): \(error)")
            }
        }
        return (sessions, problems)
    }
}
