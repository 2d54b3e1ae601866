#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import ErrorVocabulary

/// A failed file-system call of the state directory, with its errno (stable code
/// `state_write_failed`; unavailable: the state directory may recover, e.g. once space is freed).
public struct StorageError: CodedError, Equatable {
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(_ operation: String, _ path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var code: String { "state_write_failed" }
    public var message: String { description }
    public var kind: ErrorKind { .unavailable }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Crash-safe file writes in the state directory: a temporary file written in full, fsynced,
/// renamed over the target, then the directory fsynced, so after a crash the target holds either
/// its old or its new bytes and the rename itself is on disk. Files are mode 0600, directories 0700.
public enum DurableFile {
    /// Creates `directory` (and its parents) with mode 0700 when missing.
    public static func makeDirectory(_ directory: URL) throws(StorageError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw StorageError("mkdir", directory.path, errno: ENOTDIR) }
            return
        }
        let parent = directory.deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: parent.path) {
            try makeDirectory(parent)
        }
        guard mkdir(directory.path, 0o700) == 0 || errno == EEXIST else {
            throw StorageError("mkdir", directory.path, errno: errno)
        }
    }

    /// Replaces `target` with `data` (temporary `.<name>.tmp` beside it, fsync, rename, and an
    /// fsync of the directory unless the caller syncs it once for several files).
    public static func write(_ data: Data, to target: URL, syncDirectory sync: Bool = true) throws(StorageError) {
        let directory = target.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(target.lastPathComponent).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError("open", temporary.path, errno: errno) }
        do throws(StorageError) {
            try writeAll(fd, data, path: temporary.path)
            guard fsync(fd) == 0 else { throw StorageError("fsync", temporary.path, errno: errno) }
        } catch {
            close(fd)
            unlink(temporary.path)
            throw error
        }
        guard close(fd) == 0 else {
            let e = errno
            unlink(temporary.path)
            throw StorageError("close", temporary.path, errno: e)
        }
        guard rename(temporary.path, target.path) == 0 else {
            let e = errno
            unlink(temporary.path)
            throw StorageError("rename", target.path, errno: e)
        }
        if sync { try syncDirectory(directory) }
    }

    /// Removes `file` (a missing file is not an error) and fsyncs its directory (unless told not to).
    public static func remove(_ file: URL, syncDirectory sync: Bool = true) throws(StorageError) {
        if unlink(file.path) != 0 {
            guard errno == ENOENT else { throw StorageError("unlink", file.path, errno: errno) }
            return
        }
        if sync { try syncDirectory(file.deletingLastPathComponent()) }
    }

    /// fsync of a directory, so that renames and unlinks in it are durable.
    public static func syncDirectory(_ directory: URL) throws(StorageError) {
        let fd = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError("open", directory.path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StorageError("fsync", directory.path, errno: errno) }
    }

    /// write(2) until every byte is out (EINTR retried).
    static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(StorageError) {
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            guard var p = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let n = posixWrite(fd, p, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if n == 0 { failure = ENOSPC; return }
                p += n
                left -= n
            }
        }
        if failure != 0 { throw StorageError("write", path, errno: failure) }
    }
}

/// write(2) (the name `write` is taken inside `DurableFile`).
func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, buffer, count)
    #else
    Darwin.write(fd, buffer, count)
    #endif
}
