import Foundation

/// Structured logs: one JSON object per line on standard error. Requests are logged with
/// method, route template, status, sizes, duration and request id; never transcripts, audio or
/// session ids unless `includeSessionIds` is set.
public final class JSONLogger: @unchecked Sendable {
    private let lock = NSLock()
    private let output: FileHandle
    private let formatter: ISO8601DateFormatter

    public init(output: FileHandle = .standardError) {
        self.output = output
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    }

    /// Writes `{"ts": ..., "level": ..., "msg": ..., fields...}`.
    public func log(_ level: String, _ message: String, _ fields: [String: Any] = [:]) {
        var object = fields
        object["ts"] = formatter.string(from: Date())
        object["level"] = level
        object["msg"] = message
        guard JSONSerialization.isValidJSONObject(object),
              var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        lock.lock()
        output.write(line)
        lock.unlock()
    }

    public func info(_ message: String, _ fields: [String: Any] = [:]) { log("info", message, fields) }
    public func warning(_ message: String, _ fields: [String: Any] = [:]) { log("warning", message, fields) }
    public func error(_ message: String, _ fields: [String: Any] = [:]) { log("error", message, fields) }
}
