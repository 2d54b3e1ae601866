import Foundation
import Numerics

/// Named float32 parameters served from a safetensors file, for model layers
/// (`ParameterSource`).
///
/// - F32 tensors are served zero-copy: the `Parameter`'s pointer points into the file mapping
///   (when the data are 4-byte aligned, which files written by `safetensors` always are;
///   misaligned data are copied once).
/// - F16 and BF16 tensors are widened to float32 once, at their first request, and the widened
///   copy is cached and shared by later requests. Tensors nobody asks for cost no memory.
/// - Every successful request marks the tensor as claimed. After building its layers a loader
///   calls `requireAllClaimed()`, which refuses a package carrying tensors that no layer used.
///
/// Thread-safe: claims and the widening cache are guarded by a lock.
public final class WeightStore: ParameterSource, @unchecked Sendable {
    /// The underlying validated file.
    public let file: SafetensorsFile

    private let lock = NSLock()
    private var claimed: Set<String> = []
    private var converted: [String: FloatStorage] = [:]
    private let hashLock = NSLock()
    private var cachedSHA256: String?

    /// How layers built from this store hold their packed weights (`ParameterSource`).
    public let weightPrecision: Linear.Precision

    /// Opens, maps and validates a safetensors file (throws `ModelPackageError`).
    public convenience init(url: URL, weightPrecision: Linear.Precision = .f32) throws {
        try self.init(file: SafetensorsFile(url: url), weightPrecision: weightPrecision)
    }

    public init(file: SafetensorsFile, weightPrecision: Linear.Precision = .f32) {
        self.file = file
        self.weightPrecision = weightPrecision
    }

    /// Tensor names, sorted.
    public var names: [String] { file.tensors.keys.sorted() }

    public func shape(of name: String) -> [Int]? { file.tensors[name]?.shape }

    public func dtype(of name: String) -> SafetensorsDType? { file.tensors[name]?.dtype }

    public func contains(_ name: String) -> Bool { file.tensors[name] != nil }

    /// The file's `__metadata__`.
    public var metadata: [String: String] { file.metadata }

    /// Size of the weights file in bytes.
    public var fileSize: Int { file.fileSize }

    /// Lower-case hex SHA-256 of the whole weights file (computed once, on first use).
    public var sha256: String {
        hashLock.lock()
        defer { hashLock.unlock() }
        if let cachedSHA256 { return cachedSHA256 }
        let digest = SHA256Digest.hex(SHA256Digest.digest(of: file.bytes) { [file] in file.discardPages($0) })
        cachedSHA256 = digest
        return digest
    }

    /// The tensor `name` as float32, which must have exactly `shape`. Throws
    /// `ParameterError.missing` (`missing_tensor`) or `.shapeMismatch` (`tensor_shape_mismatch`),
    /// naming the tensor. Marks the tensor as claimed on success.
    public func parameter(_ name: String, shape: [Int]) throws -> Parameter {
        guard let info = file.tensors[name] else {
            throw ParameterError(code: "missing_tensor",
                                 message: "tensor '\(name)' (expected shape \(shape)) is missing from \(file.displayName)")
        }
        guard info.shape == shape else {
            throw ParameterError(code: "tensor_shape_mismatch",
                                 message: "tensor '\(name)' in \(file.displayName) has shape \(info.shape), expected \(shape)")
        }
        return load(info, claim: true)
    }

    /// The tensor `name` as float32 in whatever shape the file has, without claiming it (for
    /// inspection tools). Throws `missing_tensor`.
    public func tensor(_ name: String) throws -> Parameter {
        guard let info = file.tensors[name] else {
            throw ParameterError(code: "missing_tensor", message: "tensor '\(name)' is missing from \(file.displayName)")
        }
        return load(info, claim: false)
    }

    /// Names of the tensors requested so far through `parameter(_:shape:)`, sorted.
    public var claimedNames: [String] {
        lock.lock()
        defer { lock.unlock() }
        return claimed.sorted()
    }

    /// Names of the tensors nobody has requested yet, sorted.
    public var unclaimedNames: [String] {
        lock.lock()
        defer { lock.unlock() }
        return file.tensors.keys.filter { !claimed.contains($0) }.sorted()
    }

    /// Throws `unexpected_tensor`, naming the extra tensors, if any tensor was never requested.
    public func requireAllClaimed() throws {
        let extra = unclaimedNames
        guard !extra.isEmpty else { return }
        let shown = extra.prefix(10).map { "'\($0)'" }.joined(separator: ", ")
        let more = extra.count > 10 ? " and \(extra.count - 10) more" : ""
        throw ModelPackageError(code: "unexpected_tensor",
                                message: "\(file.displayName) carries \(extra.count) tensor\(extra.count == 1 ? "" : "s") that no layer uses: \(shown)\(more)")
    }

    /// Forgets all claims (e.g. before building a second model from the same store).
    public func resetClaims() {
        lock.lock()
        claimed.removeAll()
        lock.unlock()
    }

    /// A layer has copied `parameter` (packed it) and will not read it again: drop the widened
    /// copy, or the mapped pages of a zero-copy tensor, so they stop counting as resident memory.
    public func release(_ parameter: Parameter) {
        lock.lock()
        converted[parameter.name] = nil
        lock.unlock()
        if isZeroCopy(parameter.name), let raw = file.rawBytes(of: parameter.name) {
            file.discardPages(raw)
        }
    }

    /// True when F32 tensor data are served straight from the mapping (aligned, little-endian).
    public func isZeroCopy(_ name: String) -> Bool {
        guard let info = file.tensors[name], info.dtype == .f32, let raw = file.rawBytes(of: name) else { return false }
        return Self.canAlias(raw)
    }

    // MARK: - Private

    private static func canAlias(_ raw: UnsafeRawBufferPointer) -> Bool {
        #if _endian(little)
        guard let address = raw.baseAddress else { return false }
        return Int(bitPattern: address) % MemoryLayout<Float>.alignment == 0
        #else
        return false
        #endif
    }

    private func load(_ info: SafetensorsTensorInfo, claim: Bool) -> Parameter {
        let raw = file.rawBytes(of: info.name)!  // the name comes from file.tensors
        if info.dtype == .f32, Self.canAlias(raw), let address = raw.baseAddress {
            if claim { lock.lock(); claimed.insert(info.name); lock.unlock() }
            return Parameter(name: info.name, shape: info.shape,
                             pointer: UnsafePointer(address.bindMemory(to: Float.self, capacity: info.elementCount)),
                             owner: file)
        }
        lock.lock()
        defer { lock.unlock() }
        if claim { claimed.insert(info.name) }
        let storage: FloatStorage
        if let cached = converted[info.name] {
            storage = cached
        } else {
            storage = FloatStorage(count: info.elementCount)
            if let source = raw.baseAddress, info.elementCount > 0 {
                switch info.dtype {
                case .f32:
                    for i in 0..<info.elementCount {
                        storage.pointer[i] = Float(bitPattern: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                    }
                case .f16:
                    HalfPrecision.widenHalf(source, count: info.elementCount, into: storage.pointer)
                case .bf16:
                    HalfPrecision.widenBFloat16(source, count: info.elementCount, into: storage.pointer)
                }
            }
            converted[info.name] = storage
        }
        return Parameter(name: info.name, shape: info.shape, pointer: UnsafePointer(storage.pointer), owner: storage)
    }
}
