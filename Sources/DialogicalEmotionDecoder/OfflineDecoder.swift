/// Offline decoding of a whole dialogue with the same beam search as ``OnlineDecoder``.
public enum OfflineDecoder {
    /// Decodes `turns` and returns one label index per turn.
    ///
    /// With `repeatTwice` the turn list is decoded concatenated with itself (same speakers, same
    /// logits) and the labels of the second copy are returned: the original DED's trick, which
    /// lets every turn's label be informed by the whole dialogue (the second copy starts with
    /// speaker states and entry counts learned from the first). Without it, the result equals
    /// the online decoder's final best path. All turns are validated before decoding; an empty
    /// dialogue decodes to `[]`.
    public static func decode(_ turns: [DialogueTurn], parameters: DEDParameters, labelCount: Int,
                              repeatTwice: Bool) throws -> [Int] {
        var decoder = try OnlineDecoder(labelCount: labelCount, parameters: parameters)
        for (index, turn) in turns.enumerated() {
            try decoder.validate(turn, turnIndex: index)
        }
        for turn in turns { decoder.extend(with: turn) }
        if repeatTwice {
            for turn in turns { decoder.extend(with: turn) }
        }
        return Array(decoder.bestPath.suffix(turns.count))
    }
}
