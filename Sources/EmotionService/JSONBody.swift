import Foundation

/// Strict reading of a JSON object body with messages that name the field: unknown fields and
/// wrong types are refused (422), `null` included (an optional field is omitted, not null, as
/// openapi.yaml says), syntax errors and bad UTF-8 are 400.
struct JSONBody {
    let object: [String: Any]
    private let path: String

    init(_ data: Data, allowed: Set<String>, path: String = "") throws(APIError) {
        guard !data.isEmpty else { throw .malformedJSON("the request body is empty; a JSON object is expected") }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw .malformedJSON("the body is not valid JSON (or not UTF-8)")
        }
        guard let object = parsed as? [String: Any] else { throw .malformedJSON("the body must be a JSON object") }
        try self.init(object: object, allowed: allowed, path: path)
    }

    init(object: [String: Any], allowed: Set<String>, path: String) throws(APIError) {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError(422, "unknown_field", "unknown field '\(path)\(unknown)'; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
        self.object = object
        self.path = path
    }

    private func name(_ key: String) -> String { path + key }

    /// JSON `true`/`false` (JSONSerialization gives NSNumbers; booleans have objCType "c").
    static func isBoolean(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }

    func string(_ key: String, required: Bool = false) throws(APIError) -> String? {
        guard let value = try present(key, required: required, type: "a string") else { return nil }
        // NSNumber bridges from JSON numbers and booleans; only real strings are accepted.
        guard let text = value as? String, !(value is NSNumber) else {
            throw .invalidField(name(key), "must be a string")
        }
        return text
    }

    func array(_ key: String, required: Bool = false) throws(APIError) -> [Any]? {
        guard let value = try present(key, required: required, type: "an array") else { return nil }
        guard let items = value as? [Any] else { throw .invalidField(name(key), "must be an array") }
        return items
    }

    /// The field's value, nil when it is absent and optional; `null` is a wrong type.
    private func present(_ key: String, required: Bool, type: String) throws(APIError) -> Any? {
        guard let value = object[key] else {
            if required { throw APIError(422, "missing_field", "'\(name(key))' is required") }
            return nil
        }
        if value is NSNull { throw .invalidField(name(key), "must be \(type), not null (omit an optional field)") }
        return value
    }
}
