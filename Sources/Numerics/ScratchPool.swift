import Foundation

/// Reusable per-task scratch objects, so the hot path does not allocate and concurrent tasks
/// never share memory: a task takes an item (made on first need), uses it, and gives it back.
/// The one pool of the towers and the classifier (`Scratch` buffers, the classifier's
/// workspaces).
public final class ScratchPool<Item: AnyObject>: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [Item] = []
    private let make: () -> Item

    public init(_ make: @escaping () -> Item) { self.make = make }

    /// Runs `body` with an item no other task holds meanwhile.
    public func with<R>(_ body: (Item) throws -> R) rethrows -> R {
        lock.lock()
        let item = free.popLast() ?? make()
        lock.unlock()
        defer {
            lock.lock()
            free.append(item)
            lock.unlock()
        }
        return try body(item)
    }
}

/// A grow-only buffer of floats (never shrunk; contents undefined after `reserve`).
public final class Scratch {
    public private(set) var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    public private(set) var capacity = 0

    public init() {}

    /// At least `floats` floats.
    public func reserve(_ floats: Int) -> UnsafeMutablePointer<Float> {
        if floats > capacity {
            pointer.deallocate()
            pointer = .allocate(capacity: floats)
            pointer.initialize(repeating: 0, count: floats)
            capacity = floats
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}

extension ScratchPool where Item == Scratch {
    /// A pool of float buffers.
    public convenience init() { self.init { Scratch() } }

    /// Runs `body` with at least `floats` floats no other task holds meanwhile.
    public func with<R>(_ floats: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try with { try body($0.reserve(floats)) }
    }
}
