import Foundation

/// Runs the built `emotion` executable as a child process (shared by the CLI and default-model tests).
public struct CLIRunner: Sendable {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
        public var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
        public var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    }

    public let executable: URL

    /// Finds `emotion` next to the test bundle (SwiftPM puts products and the test bundle in one
    /// directory), else in .build/{debug,release} of this package; `EMOTION_CLI` overrides.
    public static func locate() throws -> CLIRunner {
        var candidates: [URL] = []
        if let path = ProcessInfo.processInfo.environment["EMOTION_CLI"], !path.isEmpty {
            candidates.append(URL(fileURLWithPath: path))
        }
        // Linux: the test bundle is an executable (/proc/self/exe); macOS: a .xctest bundle.
        if let exe = Bundle.main.executableURL {
            candidates.append(exe.resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("emotion"))
        }
        for bundle in Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("emotion"))
        }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for configuration in ["debug", "release"] {
            candidates.append(packageRoot.appendingPathComponent(".build/\(configuration)/emotion"))
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw CLITestError("emotion executable not found; tried \(candidates.map(\.path)). Run `swift build` or set EMOTION_CLI.")
        }
        return CLIRunner(executable: found)
    }

    /// Runs `emotion` with `arguments`, feeding `stdin` if given; output goes through temporary
    /// files so large outputs cannot dead-lock on a full pipe.
    public func run(_ arguments: [String], stdin: String? = nil) throws -> Result {
        let directory = try TemporaryDirectory()
        let outURL = directory.url.appendingPathComponent("stdout")
        let errURL = directory.url.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        defer { try? out.close(); try? err.close() }

        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }
}

public struct CLITestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A fresh directory under the system temporary directory, removed when released.
public final class TemporaryDirectory {
    public let url: URL

    public init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("emotion-cli-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Writes `contents` to a file in the directory and returns its path.
    public func write(_ name: String, _ contents: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try Data(contents.utf8).write(to: file)
        return file.path
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}
