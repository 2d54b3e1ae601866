import ErrorVocabulary

/// Every failure of loading a model package, with a stable machine-readable `code` and a
/// `message` that names the file, tensor or manifest key at fault.
///
/// Codes (documented in Docs/MODEL_PACKAGE.md; never renamed once shipped):
///
/// | code                         | meaning                                                        |
/// |------------------------------|----------------------------------------------------------------|
/// | `missing_file`               | model.json, the weights file or another named file is absent   |
/// | `io_error`                   | the file exists but cannot be opened, stat'ed or mapped        |
/// | `truncated_file`             | the weights file ends before its header or some tensor's data  |
/// | `bad_header`                 | the safetensors header is not the expected JSON                |
/// | `unsupported_dtype`          | a tensor is stored in a dtype other than F32, F16, BF16        |
/// | `tensor_size_mismatch`       | a tensor's byte range does not match its shape and dtype       |
/// | `bad_offsets`                | tensor byte ranges overlap, leave gaps, or trail extra bytes   |
/// | `unexpected_tensor`          | the weights file carries tensors that no layer asked for       |
/// | `bad_manifest`               | model.json is not valid JSON or a field has the wrong type     |
/// | `unsupported_format`         | model.json's `format` is not "gatedxlstm-model"               |
/// | `unsupported_format_version` | model.json is from a newer format version                      |
/// | `unsafe_path`                | a file name in model.json escapes the package directory        |
/// | `missing_section`            | a module asked for a top-level section that is absent          |
/// | `checksum_mismatch`          | the weights file's SHA-256 differs from model.json's           |
///
/// A weight store's `parameter(_:shape:)` throws Numerics' `ParameterError` (codes
/// `missing_tensor`, `tensor_shape_mismatch`) unchanged, as the `ParameterSource` contract says.
public struct ModelPackageError: CodedError, Equatable {
    public let code: String
    public let message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// Internal: a broken model package or a bug, never the service client's input.
    public var kind: ErrorKind { .internal }

    static func missingFile(_ path: String, what: String) -> ModelPackageError {
        ModelPackageError(code: "missing_file", message: "\(what) '\(path)' does not exist")
    }

    static func io(_ path: String, _ what: String, errno code: Int32) -> ModelPackageError {
        ModelPackageError(code: "io_error", message: "\(path): \(what) failed: \(errnoDescription(code))")
    }

    static func truncated(_ file: String, _ detail: String) -> ModelPackageError {
        ModelPackageError(code: "truncated_file", message: "\(file): \(detail)")
    }

    static func badHeader(_ file: String, _ detail: String) -> ModelPackageError {
        ModelPackageError(code: "bad_header", message: "\(file): \(detail)")
    }

    static func badManifest(_ file: String, _ detail: String) -> ModelPackageError {
        ModelPackageError(code: "bad_manifest", message: "\(file): \(detail)")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

func errnoDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return "\(String(cString: text)) (errno \(code))"
}
