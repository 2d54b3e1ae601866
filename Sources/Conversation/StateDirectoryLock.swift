#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// An exclusive lock on a state directory (`flock` of `.lock` in it), held for the life of the
/// process: a second server started on the same directory by mistake would otherwise restore
/// the first one's sessions and remove its journal files.
public final class StateDirectoryLock: @unchecked Sendable {
    /// Another process holds the directory (stable code `state_dir_in_use`).
    public struct InUse: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "state_dir_in_use: another process holds \(path)" }
    }

    private let lock = NSLock()
    private var fd: Int32

    /// Takes the lock; throws `InUse` when another process has it. nil when the lock file
    /// cannot be made at all (an unusable directory, reported elsewhere): nothing to protect.
    public static func acquire(_ directory: URL) throws(InUse) -> StateDirectoryLock? {
        try? DurableFile.makeDirectory(directory)
        let path = directory.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            close(fd)
            if busy { throw InUse(path: directory.path) }
            return nil
        }
        return StateDirectoryLock(fd: fd)
    }

    private init(fd: Int32) { self.fd = fd }

    /// Lets another process (or host) take the directory; idempotent.
    public func release() {
        lock.lock(); defer { lock.unlock() }
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { release() }
}
