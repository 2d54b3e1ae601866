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
/// The first of these a body has is its answer, in this order; field errors in the order the
/// request type reads its fields.
enum StrictJSON {
    static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws(APIError) -> T {
        guard !body.isEmpty else { throw .malformedJSON("the request body is empty; a JSON object is expected") }
        let scan = BodyScan(body)
        if scan.malformed { throw notJSON }
        let value: T
        do {
            let decoder = JSONDecoder()
            decoder.userInfo[RawStrings.key] = RawStrings(body: body, ranges: scan.audioRanges)
            value = try decoder.decode(T.self, from: body)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            throw notJSON
        } catch {
            if let duplicate = scan.duplicate { throw duplicateField(duplicate) }
            throw map(error)
        }
        if let duplicate = scan.duplicate { throw duplicateField(duplicate) }
        return value
    }

    static let notJSON = APIError.malformedJSON("the body is not valid JSON (or not UTF-8)")

    static func duplicateField(_ path: String) -> APIError {
        APIError(.invalidInput, "duplicate_field", "field '\(path)' occurs more than once; each name may occur once per object")
    }

    /// An error out of `JSONDecoder` (or a request type's `init(from:)`) as an API error.
    static func map(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        guard let error = error as? DecodingError else { return notJSON }
        switch error {
        case .dataCorrupted:
            return notJSON
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context):
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
    private let raw: RawStrings?

    init(_ decoder: any Decoder, allowed: Set<String>) throws(APIError) {
        raw = decoder.userInfo[RawStrings.key] as? RawStrings
        do {
            container = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            if decoder.codingPath.isEmpty { throw .malformedJSON("the body must be a JSON object") }
            throw .invalidField(StrictJSON.path(decoder.codingPath), "must be an object")
        }
        if let unknown = container.allKeys.map(\.stringValue).filter({ !allowed.contains($0) }).min() {
            throw APIError(.invalidInput, "unknown_field", "unknown field '\(path(unknown))'; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func path(_ name: String) -> String { StrictJSON.path(container.codingPath, then: name) }

    func string(_ name: String, required: Bool = false) throws(APIError) -> String? {
        try field(name, required: required, wrongType: "must be a string",
                  null: "must be a string, not null (omit an optional field)")
    }

    /// A string field of base64 (`audio`) decoded to its bytes: straight from the body's bytes
    /// when the scan found the value there without escapes (no copy of the text is made), else
    /// through `string(_:)`; refused as `decode` refuses (422 `invalid_base64`, `empty_audio`).
    func base64(_ name: String, decode: (UnsafeBufferPointer<UInt8>) throws(APIError) -> Data) throws(APIError) -> Data? {
        let result: Result<Data, APIError>
        if container.contains(AnyKey(name)), let raw, let range = raw.ranges[path(name)] {
            result = raw.body.withUnsafeBytes { bytes in
                Result { () throws(APIError) in try decode(UnsafeBufferPointer(rebasing: bytes.bindMemory(to: UInt8.self)[range])) }
            }
        } else {
            guard var text = try string(name) else { return nil }
            result = text.withUTF8 { utf8 in Result { () throws(APIError) in try decode(utf8) } }
        }
        return try result.get()
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
            if required { throw APIError(.invalidInput, "missing_field", "'\(path(name))' is required") }
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
        } catch DecodingError.dataCorrupted {
            throw StrictJSON.notJSON  // e.g. a string that cannot be unescaped: bad JSON, not a bad field
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

/// Where in the body the decoder's string values of `audio` fields are (their bytes between the
/// quotes, by field path such as `turns[2].audio`), for `StrictObject.base64`.
final class RawStrings: Sendable {
    static let key = CodingUserInfoKey(rawValue: "emotion.rawStrings")!  // a literal: never nil
    let body: Data
    let ranges: [String: Range<Int>]
    init(body: Data, ranges: [String: Range<Int>]) {
        self.body = body
        self.ranges = ranges
    }
}

/// One pass over the raw bytes of a body for what `JSONDecoder` does not check or tell:
/// - whether it is UTF-8: JSONDecoder also reads UTF-16 and UTF-32 (recognised by a byte-order
///   mark or by the zero bytes every one of them has among the first four bytes);
/// - the tokens JSONDecoder only checks when it decodes their value, which it never does for an
///   unknown field's value or after an earlier error: every string (escapes, surrogate pairs, no
///   raw control characters, well-formed UTF-8) and every number (RFC 8259 grammar, finite as a
///   Double), so that such a body is 400 whatever else is wrong with it, as with JSONSerialization;
/// - the path of the first name that occurs twice in one object (JSONDecoder keeps its first
///   value without a word), names compared as Swift strings after unescaping, as the decoder does.
/// It also notes where each `audio` field's string value is, when it holds no escape
/// (`audioRanges`), so that the base64 is decoded from the body without a copy as a string.
/// The structure (brackets, colons, commas, literals) is left to the decoder, which runs next.
struct BodyScan {
    /// The name of the fields whose string values are located (`audioRanges`).
    static let rawField = "audio"

    private(set) var malformed = false
    private(set) var duplicate: String?
    private(set) var audioRanges: [String: Range<Int>] = [:]

    /// An open object (its names so far, mutated in place: no copy per name) or array.
    private struct Frame {
        let isObject: Bool
        var names: Set<String> = []
        var current: String?
        var index = 0
    }

    /// Deeper than the decoder's own limit (512) is its 400; a frame per byte of a body of
    /// brackets would be a lot of memory.
    static let maxDepth = 1024

    init(_ body: Data) {
        body.withUnsafeBytes { scan($0) }
    }

    private mutating func scan(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        if n >= 2, (bytes[0] == 0xFE && bytes[1] == 0xFF) || (bytes[0] == 0xFF && bytes[1] == 0xFE) {
            malformed = true
            return
        }
        var stack: [Frame] = []
        var expectName = false
        var i = 0
        while i < n {
            let byte = bytes[i]
            switch byte {
            case 0:
                malformed = true
                return
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < Self.maxDepth else {
                    malformed = true
                    return
                }
                stack.append(Frame(isObject: byte == UInt8(ascii: "{")))
                expectName = byte == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard !stack.isEmpty else {
                    malformed = true
                    return
                }
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
                guard let (end, escaped) = Self.string(bytes, from: i) else {
                    malformed = true
                    return
                }
                if duplicate == nil, expectName, let top = stack.indices.last, stack[top].isObject {
                    let name = Self.name(UnsafeRawBufferPointer(rebasing: bytes[i...end]), escaped: escaped)
                    if stack[top].names.insert(name).inserted {
                        stack[top].current = name
                    } else {
                        duplicate = Self.path(stack.dropLast(), name)
                    }
                } else if !expectName, !escaped, let top = stack.indices.last, stack[top].isObject,
                          stack[top].current == Self.rawField {
                    // A value (the first of its name: a second is a duplicate, refused).
                    let path = Self.path(stack.dropLast(), Self.rawField)
                    if audioRanges[path] == nil { audioRanges[path] = (i + 1)..<end }
                }
                expectName = false
                i = end
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                guard let end = Self.number(bytes, from: i) else {
                    malformed = true
                    return
                }
                expectName = false
                i = end - 1
            default:
                expectName = false
            }
            i += 1
        }
    }

    /// The index of the closing quote of the string opening at `start`, and whether it holds
    /// escapes; nil when it is not a valid JSON string of well-formed UTF-8.
    private static func string(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (Int, Bool)? {
        let n = bytes.count
        var escaped = false
        var j = start + 1
        while j < n {
            let byte = bytes[j]
            if byte >= 0x20 && byte < 0x80 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                j += 1  // the common case: printable ASCII (all of a base64 string)
            } else if byte == UInt8(ascii: "\"") {
                return (j, escaped)
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
                guard j + 1 < n else { return nil }
                switch bytes[j + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    j += 2
                case UInt8(ascii: "u"):
                    guard let unit = hex4(bytes, at: j + 2) else { return nil }
                    if (0xDC00...0xDFFF).contains(unit) { return nil }  // a low surrogate alone
                    if (0xD800...0xDBFF).contains(unit) {
                        guard j + 7 < n, bytes[j + 6] == UInt8(ascii: "\\"), bytes[j + 7] == UInt8(ascii: "u"),
                              let low = hex4(bytes, at: j + 8), (0xDC00...0xDFFF).contains(low) else { return nil }
                        j += 12
                    } else {
                        j += 6
                    }
                default:
                    return nil
                }
            } else if byte < 0x20 {
                return nil  // raw control characters (NUL included) are not allowed in strings
            } else {
                guard let length = utf8Sequence(bytes, at: j) else { return nil }
                j += length
            }
        }
        return nil
    }

    /// Four hex digits at `i` as a UTF-16 code unit.
    private static func hex4(_ bytes: UnsafeRawBufferPointer, at i: Int) -> UInt32? {
        guard i + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for k in i..<(i + 4) {
            let byte = bytes[k]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// The length of the well-formed UTF-8 sequence of 2-4 bytes at `i` (RFC 3629: no overlong
    /// forms, no surrogates, nothing beyond U+10FFFF), nil if there is none.
    private static func utf8Sequence(_ bytes: UnsafeRawBufferPointer, at i: Int) -> Int? {
        let lead = bytes[i]
        let length: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; second = 0x80...0x9F
        case 0xF0: length = 4; second = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; second = 0x80...0x8F
        default: return nil
        }
        guard i + length <= bytes.count, second.contains(bytes[i + 1]) else { return nil }
        for k in (i + 2)..<(i + length) where !(0x80...0xBF).contains(bytes[k]) { return nil }
        return length
    }

    /// The index after the number starting at `start`, nil unless it is
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, not followed by more number characters,
    /// and finite as a Double (JSONSerialization refused `1e400`).
    private static func number(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let n = bytes.count
        var j = start
        func digits() -> Int {
            let first = j
            while j < n, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[j]) { j += 1 }
            return j - first
        }
        if bytes[j] == UInt8(ascii: "-") { j += 1 }
        guard j < n else { return nil }
        if bytes[j] == UInt8(ascii: "0") {
            j += 1
        } else if digits() == 0 {
            return nil
        }
        var plain = true
        if j < n, bytes[j] == UInt8(ascii: ".") {
            j += 1
            guard digits() > 0 else { return nil }
        }
        if j < n, bytes[j] == UInt8(ascii: "e") || bytes[j] == UInt8(ascii: "E") {
            plain = false
            j += 1
            if j < n, bytes[j] == UInt8(ascii: "+") || bytes[j] == UInt8(ascii: "-") { j += 1 }
            guard digits() > 0 else { return nil }
        }
        if j < n {
            switch bytes[j] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"),
                 UInt8(ascii: "+"), UInt8(ascii: "-"):
                return nil
            default:
                break
            }
        }
        if !plain || j - start > 300 {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<j]), as: UTF8.self)
            guard let value = Double(text), value.isFinite else { return nil }
        }
        return j
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
