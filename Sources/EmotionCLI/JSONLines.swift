import Foundation

/// Reading JSON Lines input and writing JSON output lines, shared by the subcommands.
enum JSONLines {
    /// Reads a whole file, or standard input for "-"; throws an input error naming the path.
    static func read(_ path: String) throws -> Data {
        if path == "-" {
            return FileHandle.standardInput.readDataToEndOfFile()
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CLIError.input("cannot read \(path): no such file")
        }
        guard !isDirectory.boolValue else {
            throw CLIError.input("cannot read \(path): is a directory")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CLIError.input("cannot read \(path): \(error.localizedDescription)")
        }
    }

    /// Splits into (1-based line number, line) pairs, skipping blank lines; a trailing "\r" is
    /// dropped.
    static func lines(_ data: Data) -> [(number: Int, text: Data)] {
        var result: [(Int, Data)] = []
        for (index, var line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            result.append((index + 1, Data(line)))
        }
        return result
    }

    /// Decodes one line, turning decoding errors into a one-line input error that names the
    /// line and the offending field.
    static func decode<T: Decodable>(_ type: T.Type, line: Data, number: Int) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: line)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            throw CLIError.input("line \(number): invalid JSON" + syntaxDetail(line))
        } catch let error as DecodingError {
            throw CLIError.input("line \(number): \(describe(error))")
        } catch {
            throw CLIError.input("line \(number): invalid JSON")
        }
    }

    /// JSONDecoder does not say what is wrong with malformed JSON; JSONSerialization does.
    private static func syntaxDetail(_ line: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: line, options: [.fragmentsAllowed])
        } catch let error as NSError {
            if let detail = error.userInfo[NSDebugDescriptionErrorKey] as? String, !detail.isEmpty {
                return " (\(detail.split(separator: "\n").first ?? ""))"
            }
        }
        return ""
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var text = ""
            for key in keys {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text.isEmpty ? "top level" : text
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "" : " in \(path(context.codingPath))"
            return "missing field \"\(key.stringValue)\"\(parent)"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "invalid JSON" }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "invalid input"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Double.Type, is Float.Type, is Int.Type: return "a number"
        case is Array<Double>.Type: return "an array of numbers"
        default:
            let name = "\(type)"
            return name.hasPrefix("Array") ? "an array" : (name.hasPrefix("Dictionary") ? "an object" : name)
        }
    }

    /// A JSON string literal; non-ASCII characters are written as UTF-8, control characters
    /// escaped (the same output as Python's `json.dumps(..., ensure_ascii=False)`).
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// One line of a dialogue JSON Lines input, `{"dialogue": ..., "turns": [...]}`: `emotion ded`
/// reads turns with logits, `emotion evaluate` turns with a transcript and audio.
struct DialogueLine<Turn: Decodable>: Decodable {
    var dialogue: String
    var turns: [Turn]

    /// `line 3: dialogue "d1", turn 2 (id "u2")` (`turn` 0-based): where a turn is, for messages.
    func location(line: Int, turn index: Int, id: String?) -> String {
        "line \(line): dialogue \(JSONLines.quote(dialogue)), turn \(index + 1)"
            + (id.map { " (id \(JSONLines.quote($0)))" } ?? "")
    }
}

extension KeyedDecodingContainer {
    /// A turn's id, given as a string or a number (only used in messages); anything else is a
    /// decoding error naming the key.
    func decodeTurnID(forKey key: Key) throws -> String? {
        if let number = try? decodeIfPresent(Int.self, forKey: key) { return String(number) }
        return try decodeIfPresent(String.self, forKey: key)
    }
}
