import Foundation

/// The CPU time a container may use, from its cgroup: v2 `cpu.max` ("QUOTA PERIOD" or
/// "max PERIOD"), v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: no limit). Inference threads
/// are sized by `threads(cores:)`, not by the node's cores, so that a pod limited to 2 CPUs on a
/// 64-core node does not run 64 threads into the CFS throttle.
public struct CPUQuota: Sendable, Equatable {
    /// CPUs allowed (quota / period, e.g. 1.5); nil when unlimited or not found.
    public let cpus: Double?

    public init(cpus: Double?) { self.cpus = cpus }

    /// Threads for `cores` online cores: the quota rounded up (at least 1), never above `cores`.
    public func threads(cores: Int) -> Int {
        let cores = max(1, cores)
        guard let cpus, cpus.isFinite, cpus > 0 else { return cores }
        return max(1, min(cores, Int(cpus.rounded(.up))))
    }

    /// The quota of this process, read once.
    public static let current = CPUQuota.read()

    /// Inference threads for this process: the quota against the active processors.
    public static var threads: Int { current.threads(cores: ProcessInfo.processInfo.activeProcessorCount) }

    /// CPUs in a v2 `cpu.max` line; nil for "max" or anything unparsable.
    public static func parse(cpuMax text: String) -> Double? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard fields.count == 2, let quota = Double(fields[0]), let period = Double(fields[1]),
              quota > 0, period > 0 else { return nil }
        return quota / period
    }

    /// CPUs from v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; nil for -1 or anything unparsable.
    public static func parse(cfsQuota: String, cfsPeriod: String) -> Double? {
        let trim: (String) -> String = { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard let quota = Double(trim(cfsQuota)), let period = Double(trim(cfsPeriod)), quota > 0, period > 0 else { return nil }
        return quota / period
    }

    /// Reads the quota under `root` (the cgroup mount) for the cgroup named in `cgroupFile`
    /// (`/proc/self/cgroup`): v2 `cpu.max` of the process's cgroup and each parent (the
    /// smallest wins), else v1 at the `cpu` controller's mount. No files: no quota.
    public static func read(root: URL = URL(fileURLWithPath: "/sys/fs/cgroup"),
                            cgroupFile: URL = URL(fileURLWithPath: "/proc/self/cgroup")) -> CPUQuota {
        func contents(_ url: URL) -> String? { try? String(contentsOf: url, encoding: .utf8) }
        let lines = (contents(cgroupFile) ?? "").split(separator: "\n")
        // v2: "0::/some/path" (a container with its own cgroup namespace sees "0::/").
        if FileManager.default.fileExists(atPath: root.appendingPathComponent("cgroup.controllers").path) {
            let own = lines.first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) } ?? "/"
            var path = own.split(separator: "/").map(String.init)
            var smallest: Double?
            while true {
                let dir = path.reduce(root) { $0.appendingPathComponent($1) }
                if let text = contents(dir.appendingPathComponent("cpu.max")), let cpus = parse(cpuMax: text) {
                    smallest = min(smallest ?? cpus, cpus)
                }
                if path.isEmpty { break }
                path.removeLast()
            }
            return CPUQuota(cpus: smallest)
        }
        // v1: the cpu controller's directory (mounted as cpu, or cpu,cpuacct), at the process's
        // cgroup path ("4:cpu,cpuacct:/docker/abc") when it is visible there, else at its top.
        let v1Path = lines.compactMap { line -> String? in
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[1].split(separator: ",").contains("cpu") else { return nil }
            return String(parts[2])
        }.first ?? "/"
        let candidates = ["cpu", "cpu,cpuacct", "cpuacct,cpu"].flatMap { name -> [URL] in
            let top = root.appendingPathComponent(name)
            let own = v1Path.split(separator: "/").reduce(top) { $0.appendingPathComponent(String($1)) }
            return own == top ? [top] : [own, top]
        }
        for dir in candidates {
            if let quota = contents(dir.appendingPathComponent("cpu.cfs_quota_us")),
               let period = contents(dir.appendingPathComponent("cpu.cfs_period_us")) {
                return CPUQuota(cpus: parse(cfsQuota: quota, cfsPeriod: period))
            }
        }
        return CPUQuota(cpus: nil)
    }
}
