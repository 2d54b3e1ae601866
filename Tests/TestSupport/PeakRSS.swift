import Foundation

/// The process's peak resident set size in MB, one decimal (`VmHWM` of /proc/self/status; 0
/// where that does not exist), for the benchmark hooks' JSON lines.
public func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return (kb / 1024 * 10).rounded() / 10
    }
    return 0
}
