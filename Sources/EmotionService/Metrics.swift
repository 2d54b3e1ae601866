import Foundation

/// A request method as a metrics or log label: one of a fixed set, so that a client cannot mint
/// label values (`curl -X MX1` ... `-X MXn` all count as `other`).
public enum MethodLabel: String, Sendable, CaseIterable {
    case get = "GET", head = "HEAD", post = "POST", delete = "DELETE", put = "PUT", patch = "PATCH"
    case options = "OPTIONS", other

    public init(_ method: String) {
        self = MethodLabel(rawValue: method) ?? .other
    }
}

/// Prometheus metrics in the text exposition format (version 0.0.4). Labels are bounded sets
/// (route templates, `MethodLabel`s, statuses, stages), never session ids or raw client tokens.
public final class Metrics: @unchecked Sendable {
    static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private struct Histogram {
        var buckets: [Int]
        var sum = 0.0
        var count = 0
        init() { buckets = Array(repeating: 0, count: Metrics.latencyBuckets.count) }
        mutating func observe(_ v: Double) {
            for (i, b) in Metrics.latencyBuckets.enumerated() where v <= b { buckets[i] += 1 }
            sum += v
            count += 1
        }
    }

    private let lock = NSLock()
    private var requests: [String: Int] = [:]          // "route|method|status"
    private var requestLatency: [String: Histogram] = [:]  // route
    private var stageLatency: [String: Histogram] = [:]    // stage
    private var gauges: [String: @Sendable () -> Double] = [:]
    private var gaugeHelp: [String: String] = [:]
    private let started = Date()

    public init() {}

    public func recordRequest(route: String, method: MethodLabel, status: Int, seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        requests["\(route)|\(method.rawValue)|\(status)", default: 0] += 1
        requestLatency[route, default: Histogram()].observe(seconds)
    }

    public func recordStage(_ stage: String, seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        stageLatency[stage, default: Histogram()].observe(seconds)
    }

    /// A value read at scrape time (sessions, queue depth, ...).
    public func gauge(_ name: String, help: String, _ read: @escaping @Sendable () -> Double) {
        lock.lock(); defer { lock.unlock() }
        gauges[name] = read
        gaugeHelp[name] = help
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    private func render(_ name: String, _ help: String, _ histograms: [String: Histogram], label: String, into out: inout String) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for key in histograms.keys.sorted() {
            guard let h = histograms[key] else { continue }
            let l = "\(label)=\"\(Self.escape(key))\""
            for (i, b) in Self.latencyBuckets.enumerated() {
                out += "\(name)_bucket{\(l),le=\"\(Self.number(b))\"} \(h.buckets[i])\n"
            }
            out += "\(name)_bucket{\(l),le=\"+Inf\"} \(h.count)\n"
            out += "\(name)_sum{\(l)} \(Self.number(h.sum))\n\(name)_count{\(l)} \(h.count)\n"
        }
    }

    /// The exposition text.
    public func exposition() -> String {
        lock.lock()
        let requests = self.requests, requestLatency = self.requestLatency, stageLatency = self.stageLatency
        let gauges = self.gauges, gaugeHelp = self.gaugeHelp
        lock.unlock()
        var out = "# HELP emotion_http_requests_total HTTP requests by route template, method and status.\n"
        out += "# TYPE emotion_http_requests_total counter\n"
        for key in requests.keys.sorted() {
            let parts = key.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let n = requests[key] else { continue }
            out += "emotion_http_requests_total{route=\"\(Self.escape(parts[0]))\",method=\"\(Self.escape(parts[1]))\",status=\"\(parts[2])\"} \(n)\n"
        }
        render("emotion_http_request_duration_seconds", "Time from request received to answer, by route template.",
               requestLatency, label: "route", into: &out)
        render("emotion_stage_duration_seconds", "Time per pipeline stage of a turn (queue, audio, text, classify, ded, total).",
               stageLatency, label: "stage", into: &out)
        for name in gauges.keys.sorted() {
            guard let read = gauges[name] else { continue }
            let kind = name.hasSuffix("_total") ? "counter" : "gauge"
            out += "# HELP \(name) \(gaugeHelp[name] ?? name)\n# TYPE \(name) \(kind)\n\(name) \(Self.number(read()))\n"
        }
        out += "# HELP emotion_uptime_seconds Seconds since the process started.\n# TYPE emotion_uptime_seconds gauge\n"
        out += "emotion_uptime_seconds \(Self.number(Date().timeIntervalSince(started).rounded()))\n"
        return out
    }
}
