import Foundation
import Numerics

/// The fields of model.json that every package has. Module-specific configuration lives in
/// top-level sections ("classifier", "ded", "audio", "text", ...) that each module decodes with
/// `ModelPackage.section(_:as:)`.
public struct ModelManifest: Sendable, Equatable {
    /// The only format this loader reads.
    public static let formatName = "gatedxlstm-model"
    /// The newest format version this loader reads.
    public static let currentFormatVersion = 1
    /// Keys of model.json that are common fields, not module sections.
    public static let commonKeys: Set<String> = ["format", "format_version", "name", "labels", "weights",
                                                 "weights_sha256", "weight_precision", "provenance"]

    /// Always "gatedxlstm-model".
    public let format: String
    /// 1 for now.
    public let formatVersion: Int
    /// Human-readable model name (non-empty).
    public let name: String
    /// Class labels in logit order (non-empty, unique, non-empty strings).
    public let labels: [String]
    /// Weights file name relative to the package directory ("weights.safetensors" by default).
    public let weights: String
    /// Expected lower-case hex SHA-256 of the weights file, when model.json states it.
    public let weightsSHA256: String?
    /// How the layers hold their packed weights in memory (`weight_precision`: "f32", "f16", "bf16"),
    /// when model.json states it; the operator may override it at load. Independent of the dtype
    /// the weights file stores.
    public let weightPrecision: Linear.Precision?
    /// Free-form provenance (data, recipe, metrics, license), kept as raw JSON; `.object([:])`
    /// when absent.
    public let provenance: JSONValue
    /// Names of the other top-level keys (module sections), sorted.
    public let sectionKeys: [String]

    public init(format: String = ModelManifest.formatName, formatVersion: Int = ModelManifest.currentFormatVersion,
                name: String, labels: [String], weights: String = "weights.safetensors",
                weightsSHA256: String? = nil, weightPrecision: Linear.Precision? = nil,
                provenance: JSONValue = .object([:]), sectionKeys: [String] = []) {
        self.format = format
        self.formatVersion = formatVersion
        self.name = name
        self.labels = labels
        self.weights = weights
        self.weightsSHA256 = weightsSHA256
        self.weightPrecision = weightPrecision
        self.provenance = provenance
        self.sectionKeys = sectionKeys
    }

    /// Parses and validates model.json's common fields. `file` is used in error messages.
    public static func parse(_ data: Data, file: String = "model.json") throws -> ModelManifest {
        let top: JSONValue
        do {
            top = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw ModelPackageError.badManifest(file, "not valid JSON: \(describeDecodingError(error, json: data))")
        }
        guard case .object(let fields) = top else {
            throw ModelPackageError.badManifest(file, "the top level must be a JSON object, found \(top.typeName)")
        }

        func required(_ key: String) throws -> JSONValue {
            guard let value = fields[key] else {
                throw ModelPackageError.badManifest(file, "missing key '\(key)'")
            }
            return value
        }
        func string(_ key: String, _ value: JSONValue) throws -> String {
            guard let s = value.stringValue else {
                throw ModelPackageError.badManifest(file, "'\(key)' must be a string, found \(value.typeName)")
            }
            return s
        }

        let format = try string("format", required("format"))
        guard format == formatName else {
            throw ModelPackageError(code: "unsupported_format",
                                    message: "\(file): format '\(format)' is not '\(formatName)'")
        }
        let versionValue = try required("format_version")
        guard let version = versionValue.intValue, version >= 1 else {
            throw ModelPackageError.badManifest(file, "'format_version' must be a positive integer, found \(versionValue.typeName)\(versionValue.doubleValue.map { " \($0)" } ?? "")")
        }
        guard version <= currentFormatVersion else {
            throw ModelPackageError(code: "unsupported_format_version",
                                    message: "\(file): format_version \(version) is newer than the supported version \(currentFormatVersion); upgrade the service")
        }

        let name = try string("name", required("name"))
        guard !name.isEmpty else { throw ModelPackageError.badManifest(file, "'name' must not be empty") }

        let labelsValue = try required("labels")
        guard let labelItems = labelsValue.arrayValue else {
            throw ModelPackageError.badManifest(file, "'labels' must be an array of strings, found \(labelsValue.typeName)")
        }
        guard !labelItems.isEmpty else { throw ModelPackageError.badManifest(file, "'labels' must not be empty") }
        var labels: [String] = []
        var seen: Set<String> = []
        for (i, item) in labelItems.enumerated() {
            guard let label = item.stringValue else {
                throw ModelPackageError.badManifest(file, "labels[\(i)] must be a string, found \(item.typeName)")
            }
            guard !label.isEmpty else { throw ModelPackageError.badManifest(file, "labels[\(i)] is empty") }
            guard seen.insert(label).inserted else {
                throw ModelPackageError.badManifest(file, "duplicate label '\(label)' at labels[\(i)]")
            }
            labels.append(label)
        }

        var weights = "weights.safetensors"
        if let value = fields["weights"] {
            weights = try string("weights", value)
            try validateRelativePath(weights, key: "weights", file: file)
        }

        var checksum: String?
        if let value = fields["weights_sha256"] {
            let hex = try string("weights_sha256", value).lowercased()
            guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                throw ModelPackageError.badManifest(file, "'weights_sha256' must be 64 hex digits")
            }
            checksum = hex
        }

        var precision: Linear.Precision?
        if let value = fields["weight_precision"] {
            let text = try string("weight_precision", value)
            guard let p = Linear.Precision(rawValue: text) else {
                throw ModelPackageError.badManifest(file, "'weight_precision' must be one of \(Linear.Precision.allCases.map(\.rawValue).joined(separator: ", ")), found '\(text)'")
            }
            precision = p
        }

        var provenance = JSONValue.object([:])
        if let value = fields["provenance"] {
            guard case .object = value else {
                throw ModelPackageError.badManifest(file, "'provenance' must be an object, found \(value.typeName)")
            }
            provenance = value
        }

        return ModelManifest(format: format, formatVersion: version, name: name, labels: labels,
                             weights: weights, weightsSHA256: checksum, weightPrecision: precision, provenance: provenance,
                             sectionKeys: fields.keys.filter { !commonKeys.contains($0) }.sorted())
    }

    /// Refuses absolute paths, `..` components, backslashes and NUL, so that a file named in
    /// model.json stays inside the package directory.
    static func validateRelativePath(_ path: String, key: String, file: String) throws {
        func refuse(_ why: String) -> ModelPackageError {
            ModelPackageError(code: "unsafe_path", message: "\(file): '\(key)' is '\(path)': \(why)")
        }
        guard !path.isEmpty else { throw refuse("empty file name") }
        guard !path.hasPrefix("/"), !path.hasPrefix("~") else { throw refuse("absolute paths are not allowed") }
        guard !path.contains("\\"), !path.contains("\0") else { throw refuse("backslashes and NUL are not allowed") }
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.contains("..") else { throw refuse("'..' would leave the package directory") }
        guard !components.isEmpty, components.last != ".", !path.hasSuffix("/") else { throw refuse("not a file name") }
    }
}

/// A model package directory: model.json plus the weights file (and tokenizer files) it names.
///
///     let package = try ModelPackage.load(directory: url)
///     let config = try package.section("classifier", as: ClassifierConfig.self)
///     let model = try Classifier(config: config, parameters: package.weights)
///     try package.weights.requireAllClaimed()
public struct ModelPackage: Sendable {
    public static let manifestFileName = "model.json"
    /// model.json files larger than this are refused (`bad_manifest`).
    public static let maxManifestSize = 16 << 20

    public let directory: URL
    public let manifest: ModelManifest
    /// model.json's bytes, kept so that sections decode lazily.
    public let manifestData: Data
    public let weights: WeightStore

    public init(directory: URL, manifest: ModelManifest, manifestData: Data, weights: WeightStore) {
        self.directory = directory
        self.manifest = manifest
        self.manifestData = manifestData
        self.weights = weights
    }

    /// Reads and validates `directory/model.json`, then maps and validates the weights file it
    /// names. When model.json states `weights_sha256` and `verifyChecksum` is true, the weights
    /// file is hashed and compared (`checksum_mismatch`). `weightPrecision` overrides model.json's
    /// `weight_precision` (default f32) for the layers built from the package. Throws
    /// `ModelPackageError`.
    public static func load(directory: URL, verifyChecksum: Bool = true,
                            weightPrecision: Linear.Precision? = nil) throws -> ModelPackage {
        let manifestURL = directory.appendingPathComponent(manifestFileName)
        let data = try readManifest(manifestURL)
        let manifest = try ModelManifest.parse(data, file: manifestURL.path)
        let weightsURL = directory.appendingPathComponent(manifest.weights)
        let store: WeightStore
        do {
            store = try WeightStore(url: weightsURL, weightPrecision: weightPrecision ?? manifest.weightPrecision ?? .f32)
        } catch let error as ModelPackageError where error.code == "missing_file" {
            throw ModelPackageError(code: "missing_file",
                                    message: "weights file '\(weightsURL.path)' named by \(manifestURL.path) does not exist")
        }
        if verifyChecksum, let expected = manifest.weightsSHA256 {
            let actual = store.sha256
            guard actual == expected else {
                throw ModelPackageError(code: "checksum_mismatch",
                                        message: "\(weightsURL.path) has SHA-256 \(actual) but \(manifestURL.path) says \(expected)")
            }
        }
        return ModelPackage(directory: directory, manifest: manifest, manifestData: data, weights: store)
    }

    /// Decodes the top-level section `key` of model.json as `T` (each module owns its section's
    /// type). Throws `missing_section` when absent, `bad_manifest` (naming the key path) when it
    /// does not decode.
    public func section<T: Decodable>(_ key: String, as type: T.Type = T.self) throws -> T {
        let decoder = JSONDecoder()
        decoder.userInfo[SectionBox<T>.keyInfo] = key
        let box: SectionBox<T>
        do {
            box = try decoder.decode(SectionBox<T>.self, from: manifestData)
        } catch {
            throw ModelPackageError.badManifest(manifestPath, "section '\(key)': \(describeDecodingError(error))")
        }
        guard let value = box.value else {
            throw ModelPackageError(code: "missing_section",
                                    message: "\(manifestPath) has no section '\(key)' (sections present: \(manifest.sectionKeys.joined(separator: ", ")))")
        }
        return value
    }

    /// True when model.json has the module section `key` (a top-level key that is not a common field).
    public func hasSection(_ key: String) -> Bool { manifest.sectionKeys.contains(key) }

    /// The URL of a file named (relative to the package) in model.json, e.g. a tokenizer
    /// vocabulary. Throws `unsafe_path` for absolute or escaping paths, `missing_file` when absent.
    public func file(_ relativePath: String, key: String = "file") throws -> URL {
        try ModelManifest.validateRelativePath(relativePath, key: key, file: manifestPath)
        let url = directory.appendingPathComponent(relativePath)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ModelPackageError(code: "missing_file",
                                    message: "file '\(url.path)' named by \(manifestPath) (\(key)) does not exist")
        }
        return url
    }

    /// Lower-case hex SHA-256 of model.json's bytes.
    public var manifestSHA256: String { SHA256Digest.hex(of: manifestData) }

    private var manifestPath: String { directory.appendingPathComponent(Self.manifestFileName).path }

    private static func readManifest(_ url: URL) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            let parent = url.deletingLastPathComponent().path
            var parentIsDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: parent, isDirectory: &parentIsDirectory) || !parentIsDirectory.boolValue {
                throw ModelPackageError(code: "missing_file", message: "model package directory '\(parent)' does not exist")
            }
            throw ModelPackageError.missingFile(url.path, what: "manifest")
        }
        guard !isDirectory.boolValue else {
            throw ModelPackageError(code: "io_error", message: "\(url.path) is a directory, not a file")
        }
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        if let size = (attributes?[.size] as? NSNumber)?.intValue, size > maxManifestSize {
            throw ModelPackageError.badManifest(url.path, "\(size) bytes is larger than the \(maxManifestSize)-byte limit")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ModelPackageError(code: "io_error", message: "\(url.path): cannot read: \(error.localizedDescription)")
        }
    }
}

/// Decodes one top-level key of a JSON object (named in `userInfo`), leaving the rest untouched.
private struct SectionBox<T: Decodable>: Decodable {
    static var keyInfo: CodingUserInfoKey { CodingUserInfoKey(rawValue: "ModelPackage.sectionKey")! }

    let value: T?

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: Decoder) throws {
        guard let key = decoder.userInfo[Self.keyInfo] as? String else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "no section key given"))
        }
        let container = try decoder.container(keyedBy: Key.self)
        let codingKey = Key(stringValue: key)
        value = container.contains(codingKey) ? try container.decode(T.self, forKey: codingKey) : nil
    }
}
