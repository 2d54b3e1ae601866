/// Sessions by key, with the ids each namespace (tenant) holds, so that a per-tenant quota is
/// checked, and a tenant's sessions are found, without scanning the whole table. Not
/// thread-safe: the engine touches it under its lock.
struct SessionTable<Value> {
    private(set) var all: [SessionKey: Value] = [:]
    private var ids: [String: Set<String>] = [:]

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
                if all.updateValue(newValue, forKey: key) == nil { ids[key.namespace, default: []].insert(key.id) }
            } else {
                removeValue(forKey: key)
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: SessionKey) -> Value? {
        guard let old = all.removeValue(forKey: key) else { return nil }
        ids[key.namespace]?.remove(key.id)
        if ids[key.namespace]?.isEmpty == true { ids[key.namespace] = nil }
        return old
    }
}
