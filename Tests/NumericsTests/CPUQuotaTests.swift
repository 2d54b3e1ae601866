import Foundation
import Testing
@testable import Numerics
import Dispatch

/// `CPUQuota` against cgroup files laid out in a temporary directory as the kernel does.
@Suite struct CPUQuotaTests {
    /// A fake cgroup mount: `files` (relative path -> contents) and a `/proc/self/cgroup`.
    func layout(_ files: [String: String], cgroup: String) throws -> (root: URL, cgroupFile: URL, base: URL) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID())")
        let root = base.appendingPathComponent("sys/fs/cgroup")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        let cgroupFile = base.appendingPathComponent("proc-self-cgroup")
        try Data(cgroup.utf8).write(to: cgroupFile)
        return (root, cgroupFile, base)
    }

    func quota(_ files: [String: String], cgroup: String = "0::/\n") throws -> CPUQuota {
        let (root, cgroupFile, base) = try layout(files, cgroup: cgroup)
        defer { try? FileManager.default.removeItem(at: base) }
        return CPUQuota.read(root: root, cgroupFile: cgroupFile)
    }

    @Test func parsesTheKernelsFormats() {
        #expect(CPUQuota.parse(cpuMax: "200000 100000\n") == 2)
        #expect(CPUQuota.parse(cpuMax: "150000 100000") == 1.5)
        #expect(CPUQuota.parse(cpuMax: "max 100000\n") == nil)
        #expect(CPUQuota.parse(cpuMax: "") == nil)
        #expect(CPUQuota.parse(cpuMax: "-5 100000") == nil)
        #expect(CPUQuota.parse(cfsQuota: "50000\n", cfsPeriod: "100000\n") == 0.5)
        #expect(CPUQuota.parse(cfsQuota: "-1\n", cfsPeriod: "100000\n") == nil)
        #expect(CPUQuota.parse(cfsQuota: "junk", cfsPeriod: "100000") == nil)
    }

    @Test func threadsAreTheQuotaRoundedUpAndNeverAboveTheCores() {
        #expect(CPUQuota(cpus: 1.5).threads(cores: 64) == 2)
        #expect(CPUQuota(cpus: 0.25).threads(cores: 64) == 1)
        #expect(CPUQuota(cpus: 8).threads(cores: 2) == 2)
        #expect(CPUQuota(cpus: nil).threads(cores: 6) == 6)
        #expect(CPUQuota(cpus: 3).threads(cores: 0) == 1)
    }

    @Test func cgroupV2ContainerRoot() throws {
        let q = try quota(["cgroup.controllers": "cpu memory\n", "cpu.max": "250000 100000\n"])
        #expect(q.cpus == 2.5 && q.threads(cores: 16) == 3)
        #expect(try quota(["cgroup.controllers": "cpu\n", "cpu.max": "max 100000\n"]).cpus == nil)
    }

    @Test func cgroupV2NestedPathTakesTheSmallestLimitOnTheWayUp() throws {
        let q = try quota(["cgroup.controllers": "cpu\n",
                           "kubepods/cpu.max": "100000 100000\n",
                           "kubepods/pod1/cpu.max": "300000 100000\n",
                           "kubepods/pod1/c1/cpu.max": "max 100000\n"],
                          cgroup: "0::/kubepods/pod1/c1\n")
        #expect(q.cpus == 1)
    }

    @Test func cgroupV1() throws {
        #expect(try quota(["cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"],
                          cgroup: "2:cpuacct:/\n1:cpu:/\n0::/\n").cpus == 1.5)
        #expect(try quota(["cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"],
                          cgroup: "3:cpu,cpuacct:/\n").cpus == nil)
        // The process's own cgroup below the mount's top.
        #expect(try quota(["cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
                           "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
                           "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"],
                          cgroup: "4:cpu,cpuacct:/docker/abc\n").cpus == 2)
    }

    @Test func noCgroupFilesMeansNoQuota() throws {
        #expect(try quota([:], cgroup: "").cpus == nil)
    }
}

/// A test capping the kernel level (PackedKernelPathTests) must not change the kernels of other
/// tests running at the same time: before, the cap was process-wide, and a session test comparing
/// logits bit for bit failed when it ran during the cap.
@Suite struct InstructionLevelCapTests {
    final class Handshake: @unchecked Sendable {
        let release = DispatchSemaphore(value: 0)
    }

    @Test(.enabled(if: KernelPath.level > 0, "the CPU has only the scalar path"))
    func aLevelCapStaysOnItsThread() async {
        let best = KernelPath.level
        let handshake = Handshake()
        // A thread of its own caps its level, reports, and holds the cap until released.
        let capped = await withCheckedContinuation { continuation in
            Thread {
                KernelPath.limitLevel(0)
                continuation.resume(returning: KernelPath.level)
                handshake.release.wait()
                KernelPath.limitLevel(nil)
            }.start()
        }
        let here = KernelPath.level
        handshake.release.signal()
        #expect(capped == 0)
        #expect(here == best)
    }
}
