import Foundation

// File-system faults the durability tests provoke: an unwritable state directory, a full disk.

/// A state directory the current user cannot write: a read-only directory, or (as root, whom
/// permissions do not stop) a path under a regular file. `how` says which was used.
public func unwritableDirectory(in base: URL) throws -> (url: URL, how: String) {
    let readOnly = base.appendingPathComponent("read-only")
    try FileManager.default.createDirectory(at: readOnly, withIntermediateDirectories: true)
    chmod(readOnly.path, 0o500)
    let probe = readOnly.appendingPathComponent("probe")
    if FileManager.default.createFile(atPath: probe.path, contents: Data()) {
        try? FileManager.default.removeItem(at: probe)
        let file = base.appendingPathComponent("not-a-directory")
        try Data("x".utf8).write(to: file)
        return (file.appendingPathComponent("state"), "a path under a regular file")
    }
    return (readOnly.appendingPathComponent("state"), "a read-only directory")
}

/// A tmpfs of `kilobytes` mounted on a new temporary directory (nil: this process may not mount,
/// e.g. not root); `unmount` it when done.
public func mountTinyFilesystem(kilobytes: Int) -> URL? {
    let point = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-fs-\(UUID())")
    guard (try? FileManager.default.createDirectory(at: point, withIntermediateDirectories: true)) != nil else { return nil }
    guard mount("tmpfs", point.path, "tmpfs", 0, "size=\(kilobytes)k,mode=0700") == 0 else {
        try? FileManager.default.removeItem(at: point)
        return nil
    }
    return point
}

public func unmount(_ point: URL) {
    umount2(point.path, Int32(MNT_DETACH))
    try? FileManager.default.removeItem(at: point)
}

/// Whether this process may mount a tmpfs (tested once).
public let canMountTinyFilesystem: Bool = {
    guard let point = mountTinyFilesystem(kilobytes: 64) else { return false }
    unmount(point)
    return true
}()

/// Fills the file system holding `directory` with a file `filler` (write(2) until ENOSPC).
public func fill(_ filler: URL) {
    let fd = open(filler.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return }
    let chunk = [UInt8](repeating: 0x78, count: 4096)
    while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    var byte: UInt8 = 0x78
    while write(fd, &byte, 1) > 0 {}
    close(fd)
}
