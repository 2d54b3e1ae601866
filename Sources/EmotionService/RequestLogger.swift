#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Structured logs: one JSON object per line on standard error. Requests are logged with
/// method, route template, status, sizes, duration and request id; never transcripts, audio or
/// session ids unless `includeSessionIds` is set.
///
/// Logging can never kill or stall the server: `log` only queues the line; one serial queue
/// writes lines with write(2) (never `FileHandle.write`, which traps in corelibs Foundation on
/// EPIPE). When `capacity` lines are waiting (the reader of stderr is stuck), new lines are
/// dropped and counted (`droppedLines`); a failed write (EPIPE, EBADF, ENOSPC) is counted
/// (`writeFailures`) and the line given up. The process must ignore SIGPIPE (`emotion-server`
/// does at start), or a write to a closed pipe kills it.
public final class JSONLogger: @unchecked Sendable {
    private let fd: Int32
    /// Keeps a `FileHandle` given to `init(output:)` (and so its descriptor) open.
    private let handle: FileHandle?
    private let capacity: Int
    private let queue = DispatchQueue(label: "emotion.log")
    private let lock = NSLock()
    private var waiting = 0
    private var dropped = 0
    private var failures = 0
    private let formatter: ISO8601DateFormatter

    /// A logger writing to `fileDescriptor` (not closed by the logger), with at most `capacity`
    /// lines waiting.
    public init(fileDescriptor: Int32 = STDERR_FILENO, capacity: Int = 4096) {
        self.fd = fileDescriptor
        self.handle = nil
        self.capacity = max(1, capacity)
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    }

    /// A logger writing to `output`'s descriptor (the handle is kept open).
    public init(output: FileHandle, capacity: Int = 4096) {
        self.fd = output.fileDescriptor
        self.handle = output
        self.capacity = max(1, capacity)
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    }

    /// Lines dropped because `capacity` lines were already waiting.
    public var droppedLines: Int { lock.withLock { dropped } }

    /// Lines whose write(2) failed.
    public var writeFailures: Int { lock.withLock { failures } }

    /// Queues `{"ts": ..., "level": ..., "msg": ..., fields...}`; never blocks.
    public func log(_ level: String, _ message: String, _ fields: [String: Any] = [:]) {
        var object = fields
        object["ts"] = formatter.string(from: Date())
        object["level"] = level
        object["msg"] = message
        guard JSONSerialization.isValidJSONObject(object),
              var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        let bytes = line
        lock.lock()
        guard waiting < capacity else {
            dropped += 1
            lock.unlock()
            return
        }
        waiting += 1
        lock.unlock()
        queue.async { [self] in
            let ok = Self.writeAll(fd, bytes)
            lock.lock()
            waiting -= 1
            if !ok { failures += 1 }
            lock.unlock()
        }
    }

    /// Waits until the lines queued so far are written or given up, or `seconds` passed (a
    /// stuck reader must not hold up the exit). True when everything was written out.
    @discardableResult
    public func flush(timeout seconds: Double = 2) async -> Bool {
        final class Once: @unchecked Sendable {
            let lock = NSLock()
            var continuation: CheckedContinuation<Bool, Never>?
            func resume(_ value: Bool) {
                lock.lock()
                let c = continuation
                continuation = nil
                lock.unlock()
                c?.resume(returning: value)
            }
        }
        let once = Once()
        return await withCheckedContinuation { continuation in
            once.lock.lock()
            once.continuation = continuation
            once.lock.unlock()
            queue.async { once.resume(true) }
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { once.resume(false) }
        }
    }

    /// write(2) until the line is out; false on an error other than EINTR.
    private static func writeAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw -> Bool in
            guard var p = raw.baseAddress else { return true }
            var left = raw.count
            while left > 0 {
                #if canImport(Glibc)
                let n = Glibc.write(fd, p, left)
                #else
                let n = Darwin.write(fd, p, left)
                #endif
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                if n == 0 { return false }
                p += n
                left -= n
            }
            return true
        }
    }

    public func info(_ message: String, _ fields: [String: Any] = [:]) { log("info", message, fields) }
    public func warning(_ message: String, _ fields: [String: Any] = [:]) { log("warning", message, fields) }
    public func error(_ message: String, _ fields: [String: Any] = [:]) { log("error", message, fields) }
}
