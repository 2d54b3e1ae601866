import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types a weights file may use. Half-precision tensors are widened to float32 on use
/// (OpenBLAS here has no f16/bf16 GEMM).
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"

    public var itemSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        }
    }
}

/// One tensor's entry in a safetensors header, validated.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range relative to the start of the data section (as in the header's `data_offsets`).
    public let dataOffsets: Range<Int>
    /// Number of elements (product of `shape`; 1 for a 0-d scalar).
    public let elementCount: Int
}

/// A safetensors file opened read-only and memory-mapped (or, for tests, parsed from bytes in
/// memory). The header is validated completely at open; tensor data are never copied by this type.
///
/// Format: `u64 little-endian N`, `N bytes of JSON header`, data section. The header maps tensor
/// names to `{"dtype", "shape", "data_offsets": [start, end]}` (offsets relative to the data
/// section) and may carry `"__metadata__": {string: string}`.
///
/// Validation (each failure is a `ModelPackageError` naming the file and the tensor):
/// the file holds at least 8 bytes and the whole header (`truncated_file`); the header is at most
/// `maxHeaderLength` bytes and is a JSON object whose entries have a string dtype, a shape of
/// non-negative integers and two offsets `start <= end` (`bad_header`); the dtype is F32, F16 or
/// BF16 (`unsupported_dtype`); `end - start == product(shape) * itemsize`, computed without
/// overflow (`tensor_size_mismatch`); every tensor's data lies inside the file (`truncated_file`);
/// and, as in the reference implementation, the tensors tile the data section exactly: no
/// overlaps, no gaps, no trailing bytes (`bad_offsets`).
///
/// The mapping is private and read-only. Like any mmap reader, it assumes nobody truncates the
/// file while it is open (that would raise SIGBUS on access).
public final class SafetensorsFile: @unchecked Sendable {
    /// Headers larger than this are refused (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000

    /// The path shown in error messages.
    public let displayName: String
    /// Total size in bytes.
    public let fileSize: Int
    /// Offset of the data section from the start of the file (8 + header length).
    public let dataSectionOffset: Int
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Tensor entries by name.
    public let tensors: [String: SafetensorsTensorInfo]
    /// Tensor names in file order (by data offset, then name).
    public let names: [String]

    /// The whole file's bytes (valid while this object lives).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: fileSize) }

    /// True when the bytes are a memory mapping of the file (false for in-memory parsing).
    public let isMemoryMapped: Bool

    private let base: UnsafeRawPointer
    private let release: @Sendable (UnsafeRawPointer, Int) -> Void

    /// Opens and validates the file at `url` by memory-mapping it.
    public convenience init(url: URL) throws {
        try self.init(path: url.path)
    }

    /// Opens and validates the file at `path` by memory-mapping it.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw ModelPackageError.missingFile(path, what: "weights file")
            }
            throw ModelPackageError.io(path, "open", errno: code)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ModelPackageError.io(path, "fstat", errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ModelPackageError(code: "io_error", message: "\(path): not a regular file")
        }
        let size = Int(info.st_size)
        guard size >= 8 else {
            throw ModelPackageError.truncated(path, "the file has \(size) bytes, fewer than the 8-byte header length")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw ModelPackageError.io(path, "mmap", errno: errno)
        }
        let pointer = UnsafeRawPointer(mapped)
        do {
            let header = try Self.parse(base: pointer, size: size, name: path)
            (dataSectionOffset, metadata, tensors, names) = header
        } catch {
            munmap(mapped, size)
            throw error
        }
        displayName = path
        fileSize = size
        base = pointer
        isMemoryMapped = true
        release = { p, n in munmap(UnsafeMutableRawPointer(mutating: p), n) }
    }

    /// Parses and validates safetensors bytes held in memory (tests, generated weights). The bytes
    /// are copied once into 16-byte-aligned storage owned by this object.
    public init(bytes: some Collection<UInt8>, name: String = "<memory>") throws {
        let count = bytes.count
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        let buffer = UnsafeMutableRawBufferPointer(start: storage, count: count)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
        do {
            guard count >= 8 else {
                throw ModelPackageError.truncated(name, "the file has \(count) bytes, fewer than the 8-byte header length")
            }
            let header = try Self.parse(base: UnsafeRawPointer(storage), size: count, name: name)
            (dataSectionOffset, metadata, tensors, names) = header
        } catch {
            storage.deallocate()
            throw error
        }
        displayName = name
        fileSize = count
        base = UnsafeRawPointer(storage)
        isMemoryMapped = false
        release = { p, _ in UnsafeMutableRawPointer(mutating: p).deallocate() }
    }

    deinit { release(base, fileSize) }

    /// The raw bytes of a tensor's data (valid while this object lives), or nil for an unknown name.
    /// Drops the resident pages of `range` (which must lie in this file's bytes) when the file is
    /// memory-mapped: only whole pages inside the range are dropped, and a later read simply
    /// faults them back in from the file. Keeps resident memory to what layers still use.
    public func discardPages(_ range: UnsafeRawBufferPointer) {
        guard isMemoryMapped, let start = range.baseAddress, range.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + range.count) / page * page
        guard hi > lo, let pointer = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(pointer, hi - lo, Int32(MADV_DONTNEED))
    }

    public func rawBytes(of name: String) -> UnsafeRawBufferPointer? {
        guard let info = tensors[name] else { return nil }
        return UnsafeRawBufferPointer(start: base + dataSectionOffset + info.dataOffsets.lowerBound,
                                      count: info.dataOffsets.count)
    }

    // MARK: - Header parsing

    private typealias Parsed = (Int, [String: String], [String: SafetensorsTensorInfo], [String])

    private static func parse(base: UnsafeRawPointer, size: Int, name file: String) throws -> Parsed {
        precondition(size >= 8)
        let declared = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        let available = UInt64(size - 8)
        if declared > available {
            if declared > UInt64(maxHeaderLength) {
                throw ModelPackageError.badHeader(file, "header length \(declared) is larger than the \(maxHeaderLength)-byte limit (and the file has only \(size) bytes)")
            }
            throw ModelPackageError.truncated(file, "header length \(declared) exceeds the \(available) bytes after the length field")
        }
        let headerLength = Int(declared)
        guard headerLength <= maxHeaderLength else {
            throw ModelPackageError.badHeader(file, "header length \(headerLength) is larger than the \(maxHeaderLength)-byte limit")
        }
        guard headerLength >= 2 else {
            throw ModelPackageError.badHeader(file, "header length \(headerLength) is too small for a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = size - dataStart

        let json = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base + 8), count: headerLength, deallocator: .none)
        let raw: RawHeader
        do {
            raw = try JSONDecoder().decode(RawHeader.self, from: json)
        } catch let error as ModelPackageError {
            throw ModelPackageError.badHeader(file, error.message)
        } catch {
            throw ModelPackageError.badHeader(file, "the header is not valid JSON: \(describeDecodingError(error, json: json))")
        }

        var infos: [String: SafetensorsTensorInfo] = [:]
        infos.reserveCapacity(raw.entries.count)
        for (tensorName, entry) in raw.entries.sorted(by: { $0.key < $1.key }) {
            guard let dtype = SafetensorsDType(rawValue: entry.dtype) else {
                throw ModelPackageError(code: "unsupported_dtype",
                                        message: "\(file): tensor '\(tensorName)' has dtype \(entry.dtype); supported dtypes are F32, F16 and BF16")
            }
            if let bad = entry.shape.first(where: { $0 < 0 }) {
                throw ModelPackageError.badHeader(file, "tensor '\(tensorName)' has a negative dimension \(bad) in shape \(entry.shape)")
            }
            guard entry.dataOffsets.count == 2 else {
                throw ModelPackageError.badHeader(file, "tensor '\(tensorName)' has data_offsets \(entry.dataOffsets); expected [start, end]")
            }
            let start = entry.dataOffsets[0], end = entry.dataOffsets[1]
            guard start >= 0, end >= start else {
                throw ModelPackageError.badHeader(file, "tensor '\(tensorName)' has data_offsets [\(start), \(end)]; expected 0 <= start <= end")
            }
            // Element count and byte count without overflow.
            var elements = 1
            var overflow = false
            for dimension in entry.shape {
                let (product, o) = elements.multipliedReportingOverflow(by: dimension)
                elements = product
                overflow = overflow || o
            }
            let (byteCount, o2) = elements.multipliedReportingOverflow(by: dtype.itemSize)
            if overflow || o2 {
                throw ModelPackageError(code: "tensor_size_mismatch",
                                        message: "\(file): tensor '\(tensorName)' has shape \(entry.shape), whose byte size overflows")
            }
            guard end - start == byteCount else {
                throw ModelPackageError(code: "tensor_size_mismatch",
                                        message: "\(file): tensor '\(tensorName)' (\(dtype.rawValue), shape \(entry.shape)) needs \(byteCount) bytes but data_offsets [\(start), \(end)] span \(end - start)")
            }
            guard end <= dataSize else {
                throw ModelPackageError.truncated(file, "tensor '\(tensorName)' ends at data offset \(end) but the data section has only \(dataSize) bytes")
            }
            infos[tensorName] = SafetensorsTensorInfo(name: tensorName, dtype: dtype, shape: entry.shape,
                                                      dataOffsets: start..<end, elementCount: elements)
        }

        // The tensors must tile the data section: sorted by offset, each starts where the last ended.
        let ordered = infos.values.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var cursor = 0
        var previous: SafetensorsTensorInfo?
        for info in ordered {
            let start = info.dataOffsets.lowerBound
            if start < cursor, let previous {
                throw ModelPackageError(code: "bad_offsets",
                                        message: "\(file): tensors '\(previous.name)' [\(previous.dataOffsets.lowerBound), \(previous.dataOffsets.upperBound)) and '\(info.name)' [\(start), \(info.dataOffsets.upperBound)) overlap")
            }
            if start > cursor {
                throw ModelPackageError(code: "bad_offsets",
                                        message: "\(file): data bytes [\(cursor), \(start)) before tensor '\(info.name)' belong to no tensor")
            }
            cursor = info.dataOffsets.upperBound
            previous = info
        }
        if cursor != dataSize {
            throw ModelPackageError(code: "bad_offsets",
                                    message: "\(file): \(dataSize - cursor) trailing bytes after the last tensor's data belong to no tensor")
        }
        return (dataStart, raw.metadata, infos, ordered.map(\.name))
    }
}

// MARK: - Raw header decoding

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private struct RawEntry: Decodable {
    let dtype: String
    let shape: [Int]
    let dataOffsets: [Int]

    enum CodingKeys: String, CodingKey {
        case dtype, shape
        case dataOffsets = "data_offsets"
    }
}

private struct RawHeader: Decodable {
    var entries: [String: RawEntry] = [:]
    var metadata: [String: String] = [:]

    init(from decoder: Decoder) throws {
        let container: KeyedDecodingContainer<AnyKey>
        do {
            container = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            throw ModelPackageError(code: "bad_header", message: "the header is not a JSON object")
        }
        for key in container.allKeys {
            if key.stringValue == "__metadata__" {
                do {
                    metadata = try container.decode([String: String].self, forKey: key)
                } catch {
                    throw ModelPackageError(code: "bad_header", message: "__metadata__ must map strings to strings: \(describeDecodingError(error))")
                }
                continue
            }
            do {
                entries[key.stringValue] = try container.decode(RawEntry.self, forKey: key)
            } catch {
                throw ModelPackageError(code: "bad_header",
                                        message: "tensor '\(key.stringValue)' has an invalid entry (expected {\"dtype\": string, \"shape\": [int], \"data_offsets\": [int, int]}): \(describeDecodingError(error))")
            }
        }
    }
}

/// A one-line account of a `DecodingError`: what went wrong and at which key path. For syntax
/// errors (which JSONDecoder reports without a position) pass the `json` to get line and column.
func describeDecodingError(_ error: Error, json: Data? = nil) -> String {
    func path(_ codingPath: [CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out.isEmpty ? "top level" : out
    }
    func underlying(_ context: DecodingError.Context) -> String {
        if let inner = context.underlyingError {
            let text = (inner as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? String(describing: inner)
            return " (\(text))"
        }
        return ""
    }
    guard let decodingError = error as? DecodingError else {
        if let e = error as? ModelPackageError { return e.message }
        return String(describing: error)
    }
    switch decodingError {
    case .typeMismatch(let type, let context):
        return "at \(path(context.codingPath)): expected \(type): \(context.debugDescription)\(underlying(context))"
    case .valueNotFound(let type, let context):
        return "at \(path(context.codingPath)): missing value of type \(type): \(context.debugDescription)"
    case .keyNotFound(let key, let context):
        let parent = path(context.codingPath)
        return "missing key '\(key.stringValue)' at \(parent)"
    case .dataCorrupted(let context):
        if context.codingPath.isEmpty, context.underlyingError == nil, let json, let syntax = jsonSyntaxError(json) {
            return syntax
        }
        return "at \(path(context.codingPath)): \(context.debugDescription)\(underlying(context))"
    @unknown default:
        return String(describing: decodingError)
    }
}

/// Where JSON text is malformed, as "<what> at line L, column C", or nil if it parses.
func jsonSyntaxError(_ json: Data) -> String? {
    do {
        _ = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])
        return nil
    } catch {
        let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? String(describing: error)
        // Foundation reports "... around character N." (a 0-based offset); turn it into line:column.
        guard let range = detail.range(of: "around character "),
              let offset = Int(detail[range.upperBound...].prefix { $0.isNumber }) else { return detail }
        var line = 1, column = 1
        for byte in json.prefix(offset) {
            if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
        }
        let what = detail[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
        return "\(what) at line \(line), column \(column)"
    }
}
