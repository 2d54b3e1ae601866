/// A session held in a `SessionTable`: the memory its turns hold (stored and accepted).
protocol MemoryCharged: AnyObject {
    var memory: Int { get set }
}

/// Sessions by key, with the ids each namespace (tenant) holds, so that a per-tenant quota is
/// checked, and a tenant's sessions are found, without scanning the whole table; and the sum of
/// their memory, so that the memory budget is checked without summing it per turn. Not
/// thread-safe: the engine touches it under its lock.
struct SessionTable<Value: MemoryCharged> {
    private(set) var all: [SessionKey: Value] = [:]
    private var ids: [String: Set<String>] = [:]
    /// The memory of the sessions held (`MemoryCharged.memory` summed).
    private(set) var memory = 0

    var count: Int { all.count }
    var keys: Dictionary<SessionKey, Value>.Keys { all.keys }
    var values: Dictionary<SessionKey, Value>.Values { all.values }

    /// Sessions held in `namespace`.
    func count(in namespace: String) -> Int { ids[namespace]?.count ?? 0 }

    /// The keys of `namespace`'s sessions.
    func keys(in namespace: String) -> [SessionKey] {
        (ids[namespace] ?? []).map { SessionKey(namespace: namespace, id: $0) }
    }

    subscript(key: SessionKey) -> Value? {
        get { all[key] }
        set {
            if let newValue {
                if let old = all.updateValue(newValue, forKey: key) {
                    if old !== newValue { memory += newValue.memory - old.memory }
                } else {
                    ids[key.namespace, default: []].insert(key.id)
                    memory += newValue.memory
                }
            } else {
                removeValue(forKey: key)
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: SessionKey) -> Value? {
        guard let old = all.removeValue(forKey: key) else { return nil }
        memory -= old.memory
        ids[key.namespace]?.remove(key.id)
        if ids[key.namespace]?.isEmpty == true { ids[key.namespace] = nil }
        return old
    }

    /// Changes `value`'s memory by `delta`, and the table's sum with it when `value` is the
    /// session held at `key` (a deleted session's turn may still finish). Every change of a
    /// held session's memory goes through here.
    mutating func charge(_ value: Value, at key: SessionKey, _ delta: Int) {
        value.memory += delta
        if let held = all[key], held === value { memory += delta }
    }
}
