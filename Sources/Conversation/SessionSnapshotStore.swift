import Foundation
import ModelPackage

/// Writes sessions to a state directory and reads them back, so a rolling restart loses no
/// conversation.
///
/// One JSON file per session (`<SHA-256 of namespace, NUL, id>.session.json`, so two tenants'
/// `call-42` never collide), holding the session and the stamp of the model that built it
/// (`SnapshotModel.identity`); dates as Foundation reference-date seconds, so they round-trip
/// exactly. Each file is written to a temporary file, fsynced and renamed, and the directory is
/// fsynced once per pass, so a crash never leaves a half-written session; files are mode 0600 in
/// a 0700 directory. Only sessions that changed since the last pass are rewritten; files of
/// sessions that are gone (expired) are removed by the pass, a deleted session's file at once
/// (`delete(_:in:)`). At restore every field is validated against the model and a bad file is
/// skipped with a reason. Files written before namespaces (named by the id alone, without
/// `namespace` inside) are read into the default namespace and renamed at once (migrated).
///
/// A failing directory (unwritable, full) never stops the server: the pass fails, is counted
/// (`failedPasses`) and reported by `problem` until a pass succeeds.
public final class SessionSnapshotStore: @unchecked Sendable {
    public let directory: URL
    public let model: SnapshotModel
    private let lock = NSLock()
    private var written: [SessionKey: Int] = [:]
    private var files: [SessionKey: String] = [:]
    private var lastProblem: String?
    private var failures = 0
    private var skipped = 0

    /// Version of the file format with a model stamp (files without `format` are the older,
    /// unstamped kind).
    static let format = 2

    /// A snapshot file: the stamp and the session.
    struct Envelope: Codable {
        var format: Int
        var model: String
        var session: SessionState
    }

    /// Only the stamp, to tell the two file kinds apart before decoding the session.
    private struct Stamp: Decodable {
        var format: Int?
        var model: String?
    }

    /// Creates the directory (mode 0700) when missing; a failure is not fatal here but reported
    /// by `problem` and retried by every pass.
    public init(directory: URL, model: SnapshotModel) {
        self.directory = directory
        self.model = model
        do {
            try DurableFile.makeDirectory(directory)
        } catch {
            lastProblem = "state directory unusable: \(error)"
        }
    }

    /// File name for a session: the SHA-256 of its namespace, a NUL byte and its id (the key
    /// itself is stored inside the file).
    public static func fileName(for key: SessionKey) -> String {
        SHA256Digest.hex(of: Data(key.namespace.utf8) + [0] + Data(key.id.utf8)) + ".session.json"
    }

    /// What went wrong with the state directory at the last pass (nil: nothing).
    public var problem: String? { lock.withLock { lastProblem } }

    /// Snapshot passes (or deletions) that failed to write or remove a file.
    public var failedPasses: Int { lock.withLock { failures } }

    /// Files skipped at restore (unreadable, another model's, failing validation).
    public var skippedFiles: Int { lock.withLock { skipped } }

    /// Writes what changed in `engine` since the last call; returns the number of files written.
    /// Every changed session is attempted; the first failure is thrown after the pass (the
    /// sessions that failed are retried by the next one).
    @discardableResult
    public func write(_ engine: ConversationEngine) throws(StorageError) -> Int {
        lock.lock(); defer { lock.unlock() }
        do {
            try DurableFile.makeDirectory(directory)
        } catch {
            record(failure: error)
            throw error
        }
        let (changed, current) = engine.changes(since: written)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .deferredToDate
        var firstError: StorageError?
        var count = 0
        var touched = false
        for (state, version) in changed {
            let name = Self.fileName(for: state.key)
            let target = directory.appendingPathComponent(name)
            do throws(StorageError) {
                let data: Data
                do {
                    data = try encoder.encode(Envelope(format: Self.format, model: model.identity, session: state))
                } catch {
                    throw StorageError("encode", target.path, errno: EINVAL)
                }
                try DurableFile.write(data, to: target, syncDirectory: false)
                touched = true
                if let old = files[state.key], old != name {
                    try DurableFile.remove(directory.appendingPathComponent(old), syncDirectory: false)
                }
                written[state.key] = version
                files[state.key] = name
                count += 1
            } catch {
                firstError = firstError ?? error
            }
        }
        // Every file on disk of a session that is gone (also one whose last rewrite failed).
        for key in Array(files.keys) where !current.contains(key) {
            if let name = files[key] {
                do throws(StorageError) {
                    try DurableFile.remove(directory.appendingPathComponent(name), syncDirectory: false)
                    touched = true
                } catch {
                    firstError = firstError ?? error
                    continue
                }
            }
            written[key] = nil
            files[key] = nil
        }
        if touched {
            do { try DurableFile.syncDirectory(directory) } catch { firstError = firstError ?? error }
        }
        if let firstError {
            // Nothing of this pass counts as written: the next pass rewrites it all.
            for (state, _) in changed { written[state.key] = nil }
            record(failure: firstError)
            throw firstError
        }
        lastProblem = nil
        return count
    }

    private func record(failure: StorageError) {
        failures += 1
        lastProblem = "snapshot failed: \(failure)"
    }

    /// Deletes a session from `engine` and its file at once (under this store's lock, so a pass
    /// running at the same time cannot write it back). False if the engine has no such session.
    /// `whenDurable` as for `ConversationEngine.deleteSession`.
    public func delete(_ key: SessionKey, in engine: ConversationEngine,
                       whenDurable: (@Sendable (StorageError?) -> Void)? = nil) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard engine.deleteSession(key.id, namespace: key.namespace, whenDurable: whenDurable) else { return false }
        let name = files[key] ?? Self.fileName(for: key)
        do {
            try DurableFile.remove(directory.appendingPathComponent(name))
        } catch {
            // The next pass retries: the file stays known, and the session is gone from the engine.
            failures += 1
            lastProblem = "removing a deleted session's file failed: \(error)"
            return true
        }
        written[key] = nil
        files[key] = nil
        return true
    }

    /// Reads every session file; a file that cannot be read or decoded, was written by another
    /// model, or fails `SnapshotModel.problem(with:)` is reported and skipped (left on disk),
    /// never fatal. A file not under its key's name (pre-namespace) is renamed to it; of two files
    /// of one key, the one under the key's name wins and the other is removed.
    public func read() -> (sessions: [SessionState], problems: [String]) {
        lock.lock(); defer { lock.unlock() }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .deferredToDate
        var found: [SessionKey: (name: String, state: SessionState)] = [:]
        var problems: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.sorted() where name.hasSuffix(".session.json") && !name.hasPrefix(".") {
            let url = directory.appendingPathComponent(name)
            let state: SessionState
            do {
                let data = try Data(contentsOf: url)
                let stamp = try decoder.decode(Stamp.self, from: data)
                if let format = stamp.format {
                    guard format == Self.format else { throw SkipReason("unknown format \(format)") }
                    guard stamp.model == model.identity else {
                        throw SkipReason("written by model '\(stamp.model ?? "?")', this server runs '\(model.identity)'")
                    }
                    state = try decoder.decode(Envelope.self, from: data).session
                } else {
                    state = try decoder.decode(SessionState.self, from: data)
                }
                if let problem = model.problem(with: state) { throw SkipReason(problem) }
            } catch {
                skipped += 1
                problems.append("\(name): \(error)")
                continue
            }
            var keep = (name: name, state: state)
            if let other = found[state.key] {
                let canonical = Self.fileName(for: state.key)
                if other.name == canonical { keep = other }
                let stale = keep.name == name ? other.name : name
                try? FileManager.default.removeItem(at: directory.appendingPathComponent(stale))
                problems.append("\(stale): a second file of one session, removed")
            }
            found[state.key] = keep
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

    /// Why a file was skipped.
    struct SkipReason: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
