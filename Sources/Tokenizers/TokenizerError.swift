import ErrorVocabulary

/// Every failure of loading a tokenizer, with a stable machine-readable `code` and a `message`
/// that names the file and, where it helps, the line or entry at fault.
///
/// Codes (documented in Docs/TOKENIZERS.md; never renamed once shipped):
///
/// | code                              | meaning                                                      |
/// |-----------------------------------|--------------------------------------------------------------|
/// | `tokenizer_file_missing`          | a vocabulary or merges file does not exist or is not readable |
/// | `tokenizer_file_malformed`        | the file is not what its format requires (see the message)   |
/// | `tokenizer_invalid_configuration` | a parameter is out of range (e.g. `maxLength` below 2)       |
///
/// Encoding never fails: every Swift `String` (always valid Unicode) tokenizes.
public struct TokenizerError: CodedError, Equatable {
    public let code: String
    public let message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// Internal: a broken model package or a bug, never the service client's input.
    public var kind: ErrorKind { .internal }

    public static let fileMissingCode = "tokenizer_file_missing"
    public static let fileMalformedCode = "tokenizer_file_malformed"
    public static let invalidConfigurationCode = "tokenizer_invalid_configuration"

    static func missing(_ path: String, what: String, detail: String? = nil) -> TokenizerError {
        TokenizerError(code: fileMissingCode,
                       message: "\(what) '\(path)' " + (detail ?? "does not exist"))
    }

    static func malformed(_ path: String, _ detail: String) -> TokenizerError {
        TokenizerError(code: fileMalformedCode, message: "\(path): \(detail)")
    }

    static func invalid(_ detail: String) -> TokenizerError {
        TokenizerError(code: invalidConfigurationCode, message: detail)
    }
}
