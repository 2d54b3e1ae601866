#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// One entry of the turn journal: the file's model stamp, a stored turn (with what a session
/// created by it needs), or the end of a session (deleted or expired).
public enum JournalRecord: Codable, Sendable, Equatable {
    case header(model: String)
    case turn(namespace: String, id: String, createdAt: Date, turn: StoredTurn)
    case end(namespace: String, id: String)
}

/// Records on disk: a little-endian UInt32 payload length, the payload's CRC-32, the payload
/// (JSON of a `JournalRecord`). A record that is cut short or fails its checksum ends the
/// readable part of a file (a torn write at a crash).
enum JournalFrame {
    /// No record is this large; a bigger length is damage, not a record.
    static let maxPayload = 64 << 20

    static func encode(_ payload: Data) -> Data {
        var out = Data(capacity: payload.count + 8)
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32.checksum(payload).littleEndian) { out.append(contentsOf: $0) }
        out.append(payload)
        return out
    }

    /// The payloads of `data` in order, and the offset of the first damaged record (nil: none).
    static func decode(_ data: Data) -> (payloads: [Data], damagedAt: Int?) {
        let bytes = [UInt8](data)
        var payloads: [Data] = []
        var offset = 0
        func word(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        while offset < bytes.count {
            guard bytes.count - offset >= 8 else { return (payloads, offset) }
            let length = Int(word(offset)), crc = word(offset + 4)
            guard length <= maxPayload, bytes.count - offset - 8 >= length else { return (payloads, offset) }
            let payload = bytes[(offset + 8)..<(offset + 8 + length)]
            guard CRC32.checksum(payload) == crc else { return (payloads, offset) }
            payloads.append(Data(payload))
            offset += 8 + length
        }
        return (payloads, nil)
    }
}

/// An append-only journal of stored turns in the state directory, so that every turn answered
/// 200 survives a crash (`kill -9`) between snapshot passes.
///
/// Files `journal-<generation>.log` (mode 0600), each starting with a header record stamped with
/// the model. `append` queues a record; one serial queue writes what is queued with one write(2)
/// and one fdatasync (group commit: turns arriving during a sync share the next one; a
/// `commitInterval` > 0 waits that long after the first record to gather more) and then calls
/// every completion, so a turn is answered only once its record is durable. A failed write is cut
/// off again (ftruncate) and its turns fail; if that fails too the journal is broken (every append
/// fails, `problem` says why) until `rotate` opens a new file. A snapshot pass calls `rotate`
/// (everything queued so far made durable, then a new generation), writes the sessions, and on
/// success `discard`s the closed generations. At start, `read` gives the records of every file
/// in order for replay on top of the snapshots (a torn or corrupt record ends its file's readable
/// part; a file of another model is skipped).
public final class TurnJournal: @unchecked Sendable {
    public let directory: URL
    public let model: SnapshotModel
    /// Seconds to wait after the first queued record before syncing (0: at once).
    public let commitInterval: TimeInterval

    private let queue = DispatchQueue(label: "emotion.journal")
    private let lock = NSLock()
    // Under `lock`:
    private var buffer = Data()
    private var completions: [@Sendable (StorageError?) -> Void] = []
    private var scheduled = false
    private var brokenBy: StorageError?
    /// The last failed sync, until a sync succeeds.
    private var lastFailure: StorageError?
    private var failures = 0
    private var commits = 0
    // On `queue` only (and in init):
    private var fd: Int32 = -1
    private var generation: Int
    private var durableEnd: off_t = 0

    public static func fileName(generation: Int) -> String { String(format: "journal-%08d.log", generation) }

    static func generation(of name: String) -> Int? {
        guard name.hasPrefix("journal-"), name.hasSuffix(".log") else { return nil }
        return Int(name.dropFirst("journal-".count).dropLast(".log".count))
    }

    /// The journal generations in `directory`, in order.
    public static func generations(in directory: URL) -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).compactMap(generation(of:)).sorted()
    }

    /// The payload of a record (JSON; dates as reference-date seconds, exactly); nil if it
    /// cannot be encoded (a non-finite number), which must then not be journaled.
    public static func payload(_ record: JournalRecord) -> Data? {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .deferredToDate
        return try? encoder.encode(record)
    }

    /// Every record of every journal file in `directory`, oldest first, with what was skipped
    /// (torn or corrupt tails, files of another model, unreadable files).
    public static func read(directory: URL, model: SnapshotModel) -> (records: [JournalRecord], problems: [String]) {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .deferredToDate
        var records: [JournalRecord] = []
        var problems: [String] = []
        for generation in generations(in: directory) {
            let name = fileName(generation: generation)
            guard let data = try? Data(contentsOf: directory.appendingPathComponent(name)) else {
                problems.append("\(name): unreadable")
                continue
            }
            let (payloads, damagedAt) = JournalFrame.decode(data)
            if let damagedAt {
                problems.append("\(name): torn or corrupt record at byte \(damagedAt) of \(data.count); the rest of the file is skipped")
            }
            var fileRecords: [JournalRecord] = []
            for (i, payload) in payloads.enumerated() {
                guard let record = try? decoder.decode(JournalRecord.self, from: payload) else {
                    problems.append("\(name): record \(i) is not a journal record; the rest of the file is skipped")
                    break
                }
                fileRecords.append(record)
            }
            guard case .header(let stamp)? = fileRecords.first else {
                if !payloads.isEmpty || damagedAt != 0 { problems.append("\(name): no header; skipped") }
                continue
            }
            guard stamp == model.identity else {
                problems.append("\(name): written by model '\(stamp)', this server runs '\(model.identity)'; skipped")
                continue
            }
            records += fileRecords.dropFirst()
        }
        return (records, problems)
    }

    /// A journal appending to a new generation after those in `directory`. A directory that
    /// cannot take it leaves the journal broken (`problem`), not the server stopped.
    public init(directory: URL, model: SnapshotModel, commitInterval: TimeInterval = 0) {
        self.directory = directory
        self.model = model
        self.commitInterval = max(0, commitInterval)
        generation = (Self.generations(in: directory).last ?? 0)
        do {
            try openNext()
        } catch {
            brokenBy = error
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The last generation in use (files up to it are closed after a `rotate`).
    public var currentGeneration: Int { queue.sync { generation } }

    /// Why appends fail, or why the last sync failed (nil: the last sync worked).
    public var problem: String? {
        lock.lock(); defer { lock.unlock() }
        if let brokenBy { return "journal unusable: \(brokenBy)" }
        return lastFailure.map { "journal write failed (turns refused with storage_unavailable): \($0)" }
    }

    /// Syncs that failed.
    public var failedCommits: Int { lock.withLock { failures } }

    /// Syncs done (each covers one or more records).
    public var commitCount: Int { lock.withLock { commits } }

    /// Opens generation + 1 with its header, durable, as the file appended to (on `queue`, or in init).
    private func openNext() throws(StorageError) {
        try DurableFile.makeDirectory(directory)
        let next = generation + 1
        let path = directory.appendingPathComponent(Self.fileName(generation: next)).path
        let newFD = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard newFD >= 0 else { throw StorageError("open", path, errno: errno) }
        let header = JournalFrame.encode(Self.payload(.header(model: model.identity)) ?? Data())
        do throws(StorageError) {
            try DurableFile.writeAll(newFD, header, path: path)
            guard fdatasync(newFD) == 0 else { throw StorageError("fdatasync", path, errno: errno) }
            try DurableFile.syncDirectory(directory)
        } catch {
            close(newFD)
            unlink(path)
            throw error
        }
        if fd >= 0 { close(fd) }
        fd = newFD
        generation = next
        durableEnd = off_t(header.count)
    }

    /// Queues a record (its `payload`); `completion` runs on the journal's queue once the
    /// record is durable (nil) or could not be made so. Never blocks: callable under a lock.
    public func append(_ payload: Data, completion: @escaping @Sendable (StorageError?) -> Void) {
        lock.lock()
        buffer.append(JournalFrame.encode(payload))
        completions.append(completion)
        let schedule = !scheduled
        scheduled = true
        lock.unlock()
        guard schedule else { return }
        if commitInterval > 0 {
            queue.asyncAfter(deadline: .now() + commitInterval) { [self] in flush() }
        } else {
            queue.async { [self] in flush() }
        }
    }

    /// Writes and syncs what is queued, then runs its completions (on `queue`).
    private func flush() {
        lock.lock()
        let data = buffer, done = completions, broken = brokenBy
        buffer = Data()
        completions = []
        scheduled = false
        lock.unlock()
        guard !done.isEmpty else { return }
        var failure = broken
        if failure == nil {
            let path = directory.appendingPathComponent(Self.fileName(generation: generation)).path
            do throws(StorageError) {
                try DurableFile.writeAll(fd, data, path: path)
                guard fdatasync(fd) == 0 else { throw StorageError("fdatasync", path, errno: errno) }
                durableEnd += off_t(data.count)
                lock.lock(); commits += 1; lastFailure = nil; lock.unlock()
            } catch {
                failure = error
                let cut = ftruncate(fd, durableEnd) == 0 && fdatasync(fd) == 0
                lock.lock()
                failures += 1
                lastFailure = error
                if !cut { brokenBy = error }
                lock.unlock()
            }
        }
        for completion in done { completion(failure) }
    }

    /// Makes everything queued so far durable (its completions have run when this returns),
    /// then appends to a new generation; returns the last closed generation. A broken journal
    /// gets its new file here (or stays broken if the directory still cannot take one).
    @discardableResult
    public func rotate() -> Int {
        queue.sync {
            flush()
            let closed = generation
            do throws(StorageError) {
                try openNext()
                lock.lock(); brokenBy = nil; lock.unlock()
            } catch {
                lock.lock(); brokenBy = error; lock.unlock()
            }
            return closed
        }
    }

    /// Removes the files of generations up to `last` (covered by a snapshot pass), never the
    /// one being appended to.
    public func discard(through last: Int) {
        let current = currentGeneration
        var removed = false
        for g in Self.generations(in: directory) where g <= last && g != current {
            removed = unlink(directory.appendingPathComponent(Self.fileName(generation: g)).path) == 0 || removed
        }
        if removed { try? DurableFile.syncDirectory(directory) }
    }

    /// Runs queued work to its end (tests, shutdown).
    public func sync() { queue.sync { flush() } }
}
