/// Special tokens found verbatim in the input text (`<s>`, `<mask>`, `[CLS]`, ...), as the reference
/// extracts them before any other processing: leftmost-longest matches on the raw text; a token
/// with `lstrip` also swallows the whitespace before it (RoBERTa's `<mask>`), one with `rstrip` the
/// whitespace after it. The text between matches is tokenized normally, piece by piece.
struct AddedToken: Sendable {
    let content: [Unicode.Scalar]
    let id: Int
    var lstrip = false
    var rstrip = false
}

enum TextSegment: Equatable {
    case text(Range<Int>)
    case special(Int)
}

struct AddedTokenMatcher: Sendable {
    let tokens: [AddedToken]
    /// Prefilter: `mayStart[v & 0xFF]` is false when no token starts with a scalar of those low bits.
    private let mayStart: [Bool]

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens.filter { !$0.content.isEmpty }
        var mayStart = [Bool](repeating: false, count: 256)
        for t in self.tokens { mayStart[Int(t.content[0].value & 0xFF)] = true }
        self.mayStart = mayStart
    }

    /// Splits `text` into plain-text ranges and special-token ids, in order. Empty ranges are omitted.
    func split(_ text: [Unicode.Scalar]) -> [TextSegment] {
        let n = text.count
        guard !tokens.isEmpty else { return n > 0 ? [.text(0..<n)] : [] }
        var segments: [TextSegment] = []
        var consumed = 0  // end of the previous match (Rust's start_offset)
        var i = 0
        while i < n {
            guard mayStart[Int(text[i].value & 0xFF)], let token = longestMatch(text, at: i) else {
                i += 1
                continue
            }
            var start = i
            var stop = i + token.content.count
            if token.lstrip {
                while start > consumed && isWhitespace(text[start - 1]) { start -= 1 }
            }
            if token.rstrip {
                while stop < n && isWhitespace(text[stop]) { stop += 1 }
            }
            if consumed < start { segments.append(.text(consumed..<start)) }
            segments.append(.special(token.id))
            consumed = stop
            i = stop
        }
        if consumed < n { segments.append(.text(consumed..<n)) }
        return segments
    }

    private func longestMatch(_ text: [Unicode.Scalar], at i: Int) -> AddedToken? {
        var best: AddedToken?
        for t in tokens where t.content.count > (best?.content.count ?? 0) && i + t.content.count <= text.count {
            var k = 0
            while k < t.content.count && text[i + k] == t.content[k] { k += 1 }
            if k == t.content.count { best = t }
        }
        return best
    }

    private func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return s.properties.isWhitespace
    }
}
