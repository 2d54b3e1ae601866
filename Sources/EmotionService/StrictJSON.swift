import Foundation

/// Strict decoding of a request body into a `Decodable` request type, every failure an
/// `APIError` that names the field by its path (`turns[2].speaker`) and carries no client bytes
/// beyond field names:
/// - empty body, syntax errors, a body that is not UTF-8 (JSONDecoder would also read UTF-16 and
///   UTF-32; RFC 8259 section 8.1 says UTF-8) or whose top level is not an object: 400 `malformed_json`;
/// - a name that occurs twice in one object: 422 `duplicate_field` (JSON leaves the meaning open,
///   JSONDecoder keeps the first and JSONSerialization the last, so a proxy and this server could
///   read different requests out of the same bytes);
/// - unknown fields, wrong types and `null`: 422 (`StrictObject`).
enum StrictJSON {
    static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws(APIError) -> T {
        guard !body.isEmpty else { throw .malformedJSON("the request body is empty; a JSON object is expected") }
        let names = NameScan(body)
        if names.notUTF8 { throw notJSON }
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: body)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            throw notJSON
        } catch {
            if let duplicate = names.duplicate { throw duplicateField(duplicate) }
            throw map(error)
        }
        if let duplicate = names.duplicate { throw duplicateField(duplicate) }
        return value
    }

    static let notJSON = APIError.malformedJSON("the body is not valid JSON (or not UTF-8)")

    static func duplicateField(_ path: String) -> APIError {
        APIError(422, "duplicate_field", "field '\(path)' occurs more than once; each name may occur once per object")
    }

    /// An error out of `JSONDecoder` (or a request type's `init(from:)`) as an API error.
    static func map(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        guard let error = error as? DecodingError else { return notJSON }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
             .dataCorrupted(let context):
            if context.codingPath.isEmpty { return .malformedJSON("the body must be a JSON object") }
            return .invalidField(path(context.codingPath), "has the wrong type")
        @unknown default:
            return notJSON
        }
    }

    /// `turns[2].speaker`: names joined by dots, array indices in brackets.
    static func path(_ keys: [any CodingKey], then name: String? = nil) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        if let name { text += text.isEmpty ? name : "." + name }
        return text
    }
}

/// A JSON object key of any name: a strict request type reads its object with this key type so
/// that it sees every key the client sent and can refuse (and name) an unknown one, which a
/// fixed `CodingKeys` enum would silently skip.
struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }

    init(_ name: String) { stringValue = name }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// One JSON object of a request read strictly, for a request type's `init(from:)`: refuses
/// unknown fields up front (422 `unknown_field`, the first in sorted order, listing the allowed
/// ones), then reads fields one by one, each wrong type or `null` a 422 `invalid_field` and a
/// missing required field a 422 `missing_field`, named by their path. An optional field is
/// omitted, never `null` (openapi.yaml).
struct StrictObject {
    private let container: KeyedDecodingContainer<AnyKey>

    init(_ decoder: any Decoder, allowed: Set<String>) throws(APIError) {
        do {
            container = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            if decoder.codingPath.isEmpty { throw .malformedJSON("the body must be a JSON object") }
            throw .invalidField(StrictJSON.path(decoder.codingPath), "must be an object")
        }
        if let unknown = container.allKeys.map(\.stringValue).filter({ !allowed.contains($0) }).min() {
            throw APIError(422, "unknown_field", "unknown field '\(path(unknown))'; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func path(_ name: String) -> String { StrictJSON.path(container.codingPath, then: name) }

    func string(_ name: String, required: Bool = false) throws(APIError) -> String? {
        try field(name, required: required, wrongType: "must be a string",
                  null: "must be a string, not null (omit an optional field)")
    }

    /// A JSON `true` or `false`; numbers (0, 1) and strings are refused.
    func boolean(_ name: String) throws(APIError) -> Bool? {
        try field(name, required: false, wrongType: "must be true or false", null: "must be true or false")
    }

    /// An array whose elements decode themselves (and name their own errors).
    func array<Element: Decodable>(_ name: String, of _: Element.Type, required: Bool = false) throws(APIError) -> [Element]? {
        try field(name, required: required, wrongType: "must be an array",
                  null: "must be an array, not null (omit an optional field)")
    }

    /// The field's value, nil when it is absent and optional.
    private func field<T: Decodable>(_ name: String, required: Bool, wrongType: String, null: String) throws(APIError) -> T? {
        let key = AnyKey(name)
        guard container.contains(key) else {
            if required { throw APIError(422, "missing_field", "'\(path(name))' is required") }
            return nil
        }
        let isNull: Bool
        do {
            isNull = try container.decodeNil(forKey: key)
        } catch {
            throw StrictJSON.map(error)
        }
        if isNull { throw .invalidField(path(name), null) }
        do {
            return try container.decode(T.self, forKey: key)
        } catch let error as DecodingError {
            // An error about the field itself (not one inside an element, which names itself).
            guard let context = error.context, context.codingPath.count > container.codingPath.count + 1 else {
                throw .invalidField(path(name), wrongType)
            }
            throw StrictJSON.map(error)
        } catch {
            throw StrictJSON.map(error)
        }
    }
}

extension DecodingError {
    var context: Context? {
        switch self {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
             .dataCorrupted(let context):
            return context
        @unknown default:
            return nil
        }
    }
}

/// One pass over the raw bytes of a body for what `JSONDecoder` does not tell: whether they are
/// UTF-8 (JSONDecoder also reads UTF-16 and UTF-32, recognised by a byte-order mark or by the
/// zero bytes every one of them has among the first four) and the path of the first name that
/// occurs twice in one object (JSONDecoder keeps its first value without a word). It only tracks
/// nesting, strings and the names of objects; syntax is left to the decoder, which runs next and
/// whose 400 comes first, so a body that is not JSON can give any answer here but a crash.
/// Names are compared as Swift strings, as the decoder compares them, after unescaping.
struct NameScan {
    private(set) var notUTF8 = false
    private(set) var duplicate: String?

    /// An open object (its names so far, mutated in place: no copy per name) or array.
    private struct Frame {
        let isObject: Bool
        var names: Set<String> = []
        var current: String?
        var index = 0
    }

    static let maxDepth = 1024

    init(_ body: Data) {
        body.withUnsafeBytes { scan($0) }
    }

    private mutating func scan(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        if n >= 2, (bytes[0] == 0xFE && bytes[1] == 0xFF) || (bytes[0] == 0xFF && bytes[1] == 0xFE) {
            notUTF8 = true
            return
        }
        var stack: [Frame] = []
        var expectName = false
        var i = 0
        while i < n {
            switch bytes[i] {
            case 0:
                notUTF8 = true
                return
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                // Deeper than the decoder's limit (512) is its 400; a frame per byte of a body
                // of brackets would be a lot of memory.
                guard stack.count < Self.maxDepth else { return }
                stack.append(Frame(isObject: bytes[i] == UInt8(ascii: "{")))
                expectName = bytes[i] == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard !stack.isEmpty else { return }
                stack.removeLast()
                expectName = false
            case UInt8(ascii: ","):
                guard let top = stack.indices.last else { break }
                if stack[top].isObject {
                    expectName = true
                } else {
                    stack[top].index += 1
                    expectName = false
                }
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                break
            case UInt8(ascii: "\""):
                var j = i + 1
                var escaped = false
                while j < n {
                    let byte = bytes[j]
                    if byte == UInt8(ascii: "\"") { break }
                    if byte == 0 {
                        notUTF8 = true
                        return
                    }
                    if byte == UInt8(ascii: "\\") {
                        escaped = true
                        j += 1
                    }
                    j += 1
                }
                guard j < n else { return }
                if expectName, let top = stack.indices.last, stack[top].isObject {
                    let name = Self.name(UnsafeRawBufferPointer(rebasing: bytes[i...j]), escaped: escaped)
                    guard stack[top].names.insert(name).inserted else {
                        duplicate = Self.path(stack.dropLast(), name)
                        return
                    }
                    stack[top].current = name
                }
                expectName = false
                i = j
            default:
                expectName = false
            }
            i += 1
        }
    }

    /// A quoted name as the decoder reads it.
    private static func name(_ quoted: UnsafeRawBufferPointer, escaped: Bool) -> String {
        if escaped, let text = try? JSONDecoder().decode(String.self, from: Data(quoted)) { return text }
        return String(decoding: quoted.dropFirst().dropLast(), as: UTF8.self)
    }

    private static func path(_ frames: ArraySlice<Frame>, _ name: String) -> String {
        var text = ""
        for frame in frames {
            if !frame.isObject {
                text += "[\(frame.index)]"
            } else if let current = frame.current {
                text += text.isEmpty ? current : "." + current
            }
        }
        return text.isEmpty ? name : text + "." + name
    }
}
