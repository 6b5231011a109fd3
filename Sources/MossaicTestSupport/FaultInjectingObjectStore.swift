#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import MossaicObjectStore
import Synchronization

/// Wraps any ObjectStore and makes a seeded share of its calls fail or slow down, to test how
/// the layers above cope with an unreliable store.
///
/// A fault is injected either *before* the call (nothing happened) or *after* it (the call took
/// effect but its result is lost), the second being the case that catches non-idempotent retry
/// logic. Draws come from one seeded generator under a lock, so a single-threaded run is exactly
/// reproducible; with concurrent callers the interleaving decides which call gets which draw.
public final class FaultInjectingObjectStore: ObjectStore {
    public enum Timing: Sendable, Equatable {
        case before, after, either
    }

    public enum Operation: Sendable, Hashable, CaseIterable {
        case put, get, head, delete, list
    }

    public struct Configuration: Sendable {
        /// Share of calls that fail, 0...1.
        public var failureRate: Double
        /// The error an injected fault throws; `.failed` by default, `.unreachable` to look like a
        /// network outage.
        public var error: ObjectStoreError
        public var timing: Timing
        /// Added latency per call, uniformly drawn from this range (seconds).
        public var latency: ClosedRange<Double>
        /// Operations subject to faults and latency.
        public var operations: Set<Operation>
        public var seed: UInt64

        public init(failureRate: Double = 0.1, error: ObjectStoreError = .failed("injected fault"),
                    timing: Timing = .either, latency: ClosedRange<Double> = 0...0,
                    operations: Set<Operation> = Set(Operation.allCases), seed: UInt64 = 1) {
            self.failureRate = failureRate
            self.error = error
            self.timing = timing
            self.latency = latency
            self.operations = operations
            self.seed = seed
        }
    }

    public let base: any ObjectStore
    public let configuration: Configuration

    private struct State {
        var random: SeededRandom
        var calls = 0
        var faults = 0
    }
    private let state: Mutex<State>

    public init(_ base: any ObjectStore, configuration: Configuration = Configuration()) {
        self.base = base
        self.configuration = configuration
        state = Mutex(State(random: SeededRandom(seed: configuration.seed)))
    }

    /// Faults injected so far.
    public var injectedFaults: Int { state.withLock { $0.faults } }
    /// Calls seen so far (faulted or not).
    public var calls: Int { state.withLock { $0.calls } }

    public var displayName: String { "faulty(\(base.displayName))" }
    public var isLocal: Bool { base.isLocal }
    public var chunkCipher: ConvergentCipher? { base.chunkCipher }

    @discardableResult
    public func put(_ key: String, _ data: [UInt8], condition: PutCondition) throws(ObjectStoreError) -> String {
        try inject(.put) { () throws(ObjectStoreError) in try base.put(key, data, condition: condition) }
    }

    public func get(_ key: String) throws(ObjectStoreError) -> [UInt8] {
        try inject(.get) { () throws(ObjectStoreError) in try base.get(key) }
    }

    public func get(_ key: String, range: Range<UInt64>) throws(ObjectStoreError) -> [UInt8] {
        try inject(.get) { () throws(ObjectStoreError) in try base.get(key, range: range) }
    }

    public func head(_ key: String) throws(ObjectStoreError) -> ObjectInfo? {
        try inject(.head) { () throws(ObjectStoreError) in try base.head(key) }
    }

    public func delete(_ key: String) throws(ObjectStoreError) {
        try inject(.delete) { () throws(ObjectStoreError) in try base.delete(key) }
    }

    public func list(prefix: String) throws(ObjectStoreError) -> [ObjectInfo] {
        try inject(.list) { () throws(ObjectStoreError) in try base.list(prefix: prefix) }
    }

    private func inject<T>(_ operation: Operation, _ call: () throws(ObjectStoreError) -> T) throws(ObjectStoreError) -> T {
        guard configuration.operations.contains(operation) else { return try call() }
        // Draw everything under the lock, then act outside it: a slow base store must not
        // serialise the callers.
        let (delay, fault): (Double, Timing?) = state.withLock { s in
            s.calls += 1
            let delay = configuration.latency.upperBound > 0 ? Double.random(in: configuration.latency, using: &s.random) : 0
            guard Double.random(in: 0..<1, using: &s.random) < configuration.failureRate else { return (delay, nil) }
            s.faults += 1
            let timing: Timing = switch configuration.timing {
            case .either: Bool.random(using: &s.random) ? .before : .after
            case let fixed: fixed
            }
            return (delay, timing)
        }
        if delay > 0 { usleep(UInt32(min(delay, 60) * 1_000_000)) }
        if fault == .before { throw configuration.error }
        let result = try call()
        if fault == .after { throw configuration.error }
        return result
    }
}
