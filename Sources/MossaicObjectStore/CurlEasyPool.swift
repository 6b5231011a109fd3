import Dispatch
import Synchronization

/// A bounded pool of curl easy handles.
///
/// Each handle keeps its own kept-alive connection, so handing a finished handle to the next
/// request is what gives connection reuse. `slots` bounds the number of transfers in flight (the
/// `max_connections` option); a caller beyond it blocks until a handle is checked in. The store
/// is called from plain threads (FUSE workers, background workers), never from the cooperative
/// pool, so blocking here is the intended back-pressure.
final class CurlEasyPool: Sendable {
    private let idle = Mutex<[CurlEasy]>([])
    private let slots: DispatchSemaphore

    init(maxConnections: Int) {
        slots = DispatchSemaphore(value: max(1, maxConnections))
    }

    /// Runs `body` with a handle no other thread holds; nil if curl could not create one.
    func withHandle<R>(_ body: (CurlEasy) -> R) -> R? {
        slots.wait()
        defer { slots.signal() }
        // Lock order: `idle` is a leaf lock, held only to pop or push; never during a transfer.
        guard let easy = idle.withLock({ $0.popLast() }) ?? CurlEasy() else { return nil }
        defer { idle.withLock { $0.append(easy) } }
        return body(easy)
    }
}
