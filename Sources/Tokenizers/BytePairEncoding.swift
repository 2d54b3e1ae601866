/// GPT-2's reversible map from bytes to printable characters: the printable Latin-1 bytes map to
/// themselves, the other 68 (controls, space, 0x7F-0xA0, 0xAD) to U+0100 onwards, in byte order.
/// Vocabulary entries are strings over these characters.
enum ByteLevelAlphabet {
    static let characters: [Character] = {
        var printable = Set<Int>()
        for b in 0x21...0x7E { printable.insert(b) }
        for b in 0xA1...0xAC { printable.insert(b) }
        for b in 0xAE...0xFF { printable.insert(b) }
        var map = [Character](repeating: " ", count: 256)
        var n = 0
        for b in 0..<256 {
            if printable.contains(b) {
                map[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                map[b] = Character(Unicode.Scalar(UInt32(256 + n))!)
                n += 1
            }
        }
        return map
    }()
}

/// Merge rules keyed by the pair of token ids: (rank, id of the merged token). Open addressing
/// with a multiplicative hash: a lookup is a few nanoseconds.
struct MergeTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private let mask: Int
    private let shift: UInt64
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// Inserts or replaces (a later merge line for the same pair wins, as in the reference).
    mutating func set(_ a: Int32, _ b: Int32, rank: Int32, merged: Int32) {
        let key = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
        var i = slot(key)
        while keys[i] != Self.empty && keys[i] != key { i = (i + 1) & mask }
        if keys[i] == Self.empty { count += 1 }
        keys[i] = key
        values[i] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
    }

    /// (rank, merged id) packed as rank << 32 | id, or nil.
    @inline(__always)
    func get(_ a: Int32, _ b: Int32) -> UInt64? {
        let key = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == Self.empty { return nil }
            i = (i + 1) & mask
        }
    }
}

/// Applies merges to one pre-token, exactly as the reference (`tokenizers`' `Word::merge_all`): a
/// priority queue of candidate merges ordered by (rank, position); a popped candidate is skipped
/// when its left symbol is gone or the pair there no longer merges into the same token. O(n log n).
/// The buffers are reused across the pieces of one `encode` call.
struct BPEMerger {
    private var symbols: [Int32] = []
    private var prev: [Int32] = []
    private var next: [Int32] = []
    private var alive: [Bool] = []
    private var heap: [(key: UInt64, merged: Int32)] = []

    /// Merges `ids` (the byte-level symbols of one piece) and appends the result to `out`.
    mutating func merge(_ ids: [Int32], merges: MergeTable, into out: inout [Int]) {
        let n = ids.count
        if n == 0 { return }
        if n == 1 { out.append(Int(ids[0])); return }
        symbols = ids
        prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        alive.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
        for i in 0..<n {
            prev.append(Int32(i - 1))
            next.append(i + 1 < n ? Int32(i + 1) : -1)
            alive.append(true)
        }
        for i in 0..<(n - 1) {
            if let m = merges.get(ids[i], ids[i + 1]) { push(rank: m >> 32, pos: i, merged: Int32(truncatingIfNeeded: m)) }
        }
        while let top = pop() {
            let p = Int(top.key & 0xFFFF_FFFF)
            guard alive[p], next[p] >= 0 else { continue }
            let right = Int(next[p])
            guard let m = merges.get(symbols[p], symbols[right]), Int32(truncatingIfNeeded: m) == top.merged else {
                continue  // expired candidate
            }
            symbols[p] = top.merged
            alive[right] = false
            let after = next[right]
            next[p] = after
            if after >= 0 { prev[Int(after)] = Int32(p) }
            if prev[p] >= 0 {
                let q = Int(prev[p])
                if let m = merges.get(symbols[q], symbols[p]) { push(rank: m >> 32, pos: q, merged: Int32(truncatingIfNeeded: m)) }
            }
            if after >= 0 {
                if let m = merges.get(symbols[p], symbols[Int(after)]) { push(rank: m >> 32, pos: p, merged: Int32(truncatingIfNeeded: m)) }
            }
        }
        var i = 0
        while i >= 0 && i < n {
            out.append(Int(symbols[i]))
            i = Int(next[i])
        }
    }

    // Binary min-heap on key = rank << 32 | position.
    @inline(__always)
    private mutating func push(rank: UInt64, pos: Int, merged: Int32) {
        heap.append((rank << 32 | UInt64(pos), merged))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if heap[parent].key <= heap[i].key { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    @inline(__always)
    private mutating func pop() -> (key: UInt64, merged: Int32)? {
        guard let last = heap.popLast() else { return nil }
        if heap.isEmpty { return last }
        let top = heap[0]
        heap[0] = last
        var i = 0
        let n = heap.count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && heap[l + 1].key < heap[l].key { c = l + 1 }
            if heap[i].key <= heap[c].key { break }
            heap.swapAt(i, c)
            i = c
        }
        return top
    }
}
