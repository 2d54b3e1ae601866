/// The GPT-2 / RoBERTa pre-tokenisation regex, by hand over Unicode scalars:
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// At each position the first alternative that matches wins (leftmost, not longest), each `+` is
/// greedy, and `\s+(?!\S)` backtracks by one so that a whitespace run before a word leaves its last
/// scalar to the word (`" ?\p{L}+"` only takes a plain space, U+0020). Every scalar belongs to one
/// of the four classes, so the pieces tile the text. Linear time.
enum GPT2PreTokenizer {
    /// Calls `body` with each piece of `text[range]`, in order; stops early when `body` returns false.
    static func forEachPiece(_ text: [Unicode.Scalar], classes: [GPT2Class], in range: Range<Int>,
                             _ body: (Range<Int>) -> Bool) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            let pieceEnd = matchEnd(text, classes, at: i, end: end)
            if !body(i..<pieceEnd) { return }
            i = pieceEnd
        }
    }

    @inline(__always)
    static func matchEnd(_ s: [Unicode.Scalar], _ cls: [GPT2Class], at i: Int, end: Int) -> Int {
        let c = s[i].value
        // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, ASCII apostrophe only)
        if c == 0x27, i + 1 < end {
            let c1 = s[i + 1].value
            if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return i + 2 }  // s t m d
            if i + 2 < end {
                let c2 = s[i + 2].value
                if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                    return i + 3  // re ve ll
                }
            }
        }
        let k = cls[i]
        // ' ?X+' for X in letters, numbers, other: an optional plain space, then a maximal run.
        var runClass = k
        var j = i
        if c == 0x20, i + 1 < end, cls[i + 1] != .whitespace {
            runClass = cls[i + 1]
            j = i + 1
        }
        if runClass != .whitespace {
            j += 1
            while j < end && cls[j] == runClass { j += 1 }
            return j
        }
        // \s+(?!\S) then \s+
        j = i + 1
        while j < end && cls[j] == .whitespace { j += 1 }
        if j == end { return j }            // the run reaches the end: all of it
        if j - i >= 2 { return j - 1 }      // leave the last whitespace to the next piece
        return j                            // single whitespace before a non-space: \s+
    }
}
