import ErrorVocabulary

/// A read-only float32 parameter tensor: shape plus a pointer that stays valid as long as the
/// value lives (its owner is a memory-mapped weights file or a widened copy).
///
/// Model layers hold these instead of copying weights, so float32 weights are used straight from
/// the page cache.
public struct Parameter: @unchecked Sendable {
    public let name: String
    public let shape: [Int]
    public let pointer: UnsafePointer<Float>
    private let owner: AnyObject

    public init(name: String, shape: [Int], pointer: UnsafePointer<Float>, owner: AnyObject) {
        self.name = name
        self.shape = shape
        self.pointer = pointer
        self.owner = owner
    }

    /// A parameter that owns its values (tests, generated weights).
    public init(name: String, shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "values do not fill shape \(shape)")
        let storage = FloatStorage(values)
        self.init(name: name, shape: shape, pointer: UnsafePointer(storage.pointer), owner: storage)
    }

    public var count: Int { shape.reduce(1, *) }
    public var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// Heap-allocated float storage with a stable address.
public final class FloatStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { pointer.update(from: b, count: $0.count) } }
    }

    deinit { pointer.deallocate() }
}

/// Where model layers get their parameters by name and expected shape. A model package's weight
/// store conforms; so does a plain dictionary in tests. Implementations throw an error naming the
/// tensor when it is missing or has another shape.
public protocol ParameterSource {
    func parameter(_ name: String, shape: [Int]) throws -> Parameter

    /// Tells the source that a layer has made its own copy of `parameter` (e.g. packed it) and
    /// will not read the original again, so the source may drop its memory (mapped pages,
    /// widened copies). The pointer stays valid; reading it again may just cost a page fault.
    func release(_ parameter: Parameter)

    /// How the layers built from this source hold their packed weights (`Linear.Precision`):
    /// the model package's choice or the operator's at load. float32 by default.
    var weightPrecision: Linear.Precision { get }
}

extension ParameterSource {
    public func release(_ parameter: Parameter) {}
    public var weightPrecision: Linear.Precision { .f32 }
}

/// Errors about parameters, with stable codes.
public struct ParameterError: CodedError, Equatable {
    public let code: String
    public let message: String
    public init(code: String, message: String) { self.code = code; self.message = message }
    /// Internal: a broken model package or a bug, never the service client's input.
    public var kind: ErrorKind { .internal }

    public static func missing(_ name: String) -> ParameterError {
        ParameterError(code: "missing_tensor", message: "tensor '\(name)' is missing")
    }

    public static func shapeMismatch(_ name: String, expected: [Int], found: [Int]) -> ParameterError {
        ParameterError(code: "tensor_shape_mismatch",
                       message: "tensor '\(name)' has shape \(found), expected \(expected)")
    }
}

/// Parameters held in memory, keyed by name (tests, generated models).
public final class InMemoryParameters: ParameterSource, @unchecked Sendable {
    public private(set) var tensors: [String: Parameter] = [:]
    public let weightPrecision: Linear.Precision
    public init(weightPrecision: Linear.Precision = .f32) { self.weightPrecision = weightPrecision }
    public func set(_ name: String, shape: [Int], values: [Float]) {
        tensors[name] = Parameter(name: name, shape: shape, values: values)
    }
    public func parameter(_ name: String, shape: [Int]) throws -> Parameter {
        guard let p = tensors[name] else { throw ParameterError.missing(name) }
        guard p.shape == shape else { throw ParameterError.shapeMismatch(name, expected: shape, found: p.shape) }
        return p
    }
}
