/// A failure reported to the user as one line on stderr, with a chosen exit code.
///
/// Usage and input errors (bad options, unreadable files, malformed input) use exit code 2.
struct CLIError: Error, CustomStringConvertible {
    static let usageExitCode: Int32 = 2

    let message: String
    let exitCode: Int32

    /// A usage or input error: exit code 2.
    static func input(_ message: String) -> CLIError {
        CLIError(message: message, exitCode: usageExitCode)
    }

    var description: String { message }
}
