/// The 12 classifier streams: for the current turn t and the two turns before it, the 4-tuple
/// (speaker audio, speaker text, interlocutor audio, interlocutor text). Stream 0, the current
/// speaker's audio, drives the gate and passes ungated.
public enum StreamLayout {
    public static let turnOffsets = ["t", "t-1", "t-2"]
    public static let roles = ["speaker", "interlocutor"]
    public static let modalities = ["audio", "text"]

    /// `t.speaker.audio`, `t.speaker.text`, `t.interlocutor.audio`, ... `t-2.interlocutor.text`.
    public static let names: [String] = turnOffsets.flatMap { turn in
        roles.flatMap { role in modalities.map { "\(turn).\(role).\($0)" } }
    }

    public static let count = 12
    /// Vectors per turn: speaker audio, speaker text, interlocutor audio, interlocutor text.
    public static let perTurn = 4
}
