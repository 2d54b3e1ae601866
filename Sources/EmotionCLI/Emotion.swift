import ArgumentParser
import Foundation

/// `emotion`: the command-line tools of the service, one subcommand per file.
///
/// Exit codes, for every subcommand: 0 success; 2 usage or input error (bad option, unreadable
/// file, malformed input, invalid parameter), with a message on stderr; 1 any other failure.
@main
struct Emotion: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emotion",
        abstract: "Conversational emotion recognition tools (gated xLSTM classifier, Dialogical Emotion Decoder).",
        subcommands: [DEDCommand.self, EmbedCommand.self, EvaluateCommand.self])

    /// Like ArgumentParser's default `main`, but maps usage errors to exit code 2 and prints
    /// ``CLIError`` messages as a single line.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            standardError("emotion: error: \(error.message)")
            Foundation.exit(error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))  // --help, --version
                Foundation.exit(0)
            }
            standardError(fullMessage(for: error))
            // ArgumentParser reports usage errors as EX_USAGE (64); this tool uses 2.
            Foundation.exit(code == .validationFailure ? CLIError.usageExitCode : code.rawValue)
        }
    }
}

/// Writes one line to standard error.
func standardError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
