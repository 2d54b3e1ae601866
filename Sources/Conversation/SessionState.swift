import DialogicalEmotionDecoder
import Foundation

/// One processed turn of a session. Its 4-tuple of classifier streams follows from the turns
/// before it, which never change, so only the turn's own embeddings are kept.
public struct StoredTurn: Codable, Sendable, Equatable {
    public var index: Int
    public var turnId: String
    public var speaker: String
    public var transcript: String
    public var clientTimestamp: String?
    public var receivedAt: Date
    public var audioEmbedding: FloatVector?
    public var textEmbedding: FloatVector?
    public var logits: [Float]
    public var probabilities: [Float]
    /// 12 gate weights in stream order (stream 0 is 1).
    public var gates: [Float]
    /// The classifier's own decision (argmax).
    public var label: Int
    /// Fingerprint of the posted content, for idempotent retries.
    var fingerprint: UInt64

    enum CodingKeys: String, CodingKey {
        case index, turnId = "turn_id", speaker, transcript, clientTimestamp = "client_timestamp"
        case receivedAt = "received_at", audioEmbedding = "audio_embedding", textEmbedding = "text_embedding"
        case logits, probabilities, gates, label, fingerprint
    }
}

/// A session's identity: the namespace (tenant) it belongs to and the client's id within it.
/// Two tenants' `call-42` are two sessions.
public struct SessionKey: Hashable, Sendable, CustomStringConvertible {
    /// The one namespace of a server without API keys; snapshot files written before namespaces
    /// existed restore into it.
    public static let defaultNamespace = "default"

    public var namespace: String
    public var id: String

    public init(namespace: String = SessionKey.defaultNamespace, id: String) {
        self.namespace = namespace
        self.id = id
    }

    public var description: String { "\(namespace)/\(id)" }
}

/// Everything a session holds: its turns, the online DED beams and the current decoded path.
/// Codable, so sessions survive a restart (`SessionSnapshotStore`).
public struct SessionState: Codable, Sendable, Equatable {
    public var id: String
    /// The tenant namespace (absent in files written before namespaces: the default one).
    public var namespace: String = SessionKey.defaultNamespace
    public var createdAt: Date
    public var lastActivity: Date
    public var turns: [StoredTurn]
    public var decoder: OnlineDecoder
    /// Best DED path over all turns (label indices).
    public var decoded: [Int]

    enum CodingKeys: String, CodingKey {
        case id, namespace, createdAt = "created_at", lastActivity = "last_activity", turns, decoder, decoded
    }

    public var key: SessionKey { SessionKey(namespace: namespace, id: id) }

    public func turn(withId turnId: String) -> StoredTurn? {
        turns.last(where: { $0.turnId == turnId })
    }
}

extension SessionState {
    /// Reads files with or without `namespace` (in an extension, to keep the memberwise init).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id),
                  namespace: try c.decodeIfPresent(String.self, forKey: .namespace) ?? SessionKey.defaultNamespace,
                  createdAt: try c.decode(Date.self, forKey: .createdAt),
                  lastActivity: try c.decode(Date.self, forKey: .lastActivity),
                  turns: try c.decode([StoredTurn].self, forKey: .turns),
                  decoder: try c.decode(OnlineDecoder.self, forKey: .decoder),
                  decoded: try c.decode([Int].self, forKey: .decoded))
    }
}
