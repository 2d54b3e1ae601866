#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// Turns signals (SIGTERM, SIGINT...) into a callback on a Dispatch queue. The signals' default
/// action is replaced by SIG_IGN while the observer exists (Dispatch sources need that), and
/// restored by `cancel()`.
///
/// ```swift
/// let signals = SignalObserver(signals: [SIGTERM, SIGINT]) { signal in
///     Task { await server.shutdown(gracePeriod: .seconds(20)); exit(0) }
/// }
/// ```
public final class SignalObserver: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    private let signals: [Int32]

    public init(signals: [Int32] = [SIGTERM, SIGINT], queue: DispatchQueue = .global(),
                handler: @escaping @Sendable (Int32) -> Void)
    {
        self.signals = signals
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    /// Stops observing and restores the default actions.
    public func cancel() {
        for source in sources { source.cancel() }
        for number in signals { signal(number, SIG_DFL) }
    }
}
