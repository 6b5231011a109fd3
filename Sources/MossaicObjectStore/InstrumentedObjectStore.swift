#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import Synchronization

/// Counts what the filesystem asks of its store: requests, errors, bytes and latency by
/// operation, and uploads in flight. Wraps any store, so the figures mean the same for a
/// directory and for S3.
public final class InstrumentedObjectStore: ObjectStore {
    public let base: any ObjectStore
    let metrics: Metrics
    private let inFlightPuts = Atomic<Int>(0)

    public init(_ base: any ObjectStore, metrics: Metrics) {
        self.base = base
        self.metrics = metrics
    }

    public var displayName: String { base.displayName }
    public var isLocal: Bool { base.isLocal }
    public var chunkCipher: ConvergentCipher? { base.chunkCipher }
    public var uploadsInFlight: Int { inFlightPuts.load(ordering: .relaxed) }

    private func record<T>(_ op: String, bytesOut: Int = 0, _ body: () throws(ObjectStoreError) -> T, bytesIn: (T) -> Int = { _ in 0 }) throws(ObjectStoreError) -> T {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        defer {
            var end = timespec()
            clock_gettime(CLOCK_MONOTONIC, &end)
            let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
            metrics.observe("mossaicfs_store_request_duration_seconds", "Object store request latency.", labels: [("op", op)], seconds: seconds)
        }
        metrics.increment("mossaicfs_store_requests_total", "Object store requests by operation.", labels: [("op", op)])
        do {
            let result = try body()
            if bytesOut > 0 { metrics.increment("mossaicfs_store_bytes_total", "Bytes sent to and received from the store.", labels: [("direction", "out")], by: Double(bytesOut)) }
            let received = bytesIn(result)
            if received > 0 { metrics.increment("mossaicfs_store_bytes_total", "Bytes sent to and received from the store.", labels: [("direction", "in")], by: Double(received)) }
            return result
        } catch {
            if case .notFound = error {} else if case .preconditionFailed = error {} else {
                metrics.increment("mossaicfs_store_errors_total", "Object store requests that failed after retries.", labels: [("op", op)])
            }
            throw error
        }
    }

    @discardableResult
    public func put(_ key: String, _ data: [UInt8], condition: PutCondition) throws(ObjectStoreError) -> String {
        try recordPut(data.count) { () throws(ObjectStoreError) in try base.put(key, data, condition: condition) }
    }

    public func putAddressed(_ key: String, _ pieces: [HashedBytes]) throws(ObjectStoreError) {
        try recordPut(pieces.reduce(0) { $0 + $1.bytes.count }) { () throws(ObjectStoreError) in try base.putAddressed(key, pieces) }
    }

    /// Both kinds of PUT count as "put" and as in flight while they run.
    private func recordPut<T>(_ count: Int, _ body: () throws(ObjectStoreError) -> T) throws(ObjectStoreError) -> T {
        inFlightPuts.add(1, ordering: .relaxed)
        defer { inFlightPuts.subtract(1, ordering: .relaxed) }
        return try record("put", bytesOut: count, body)
    }

    public func get(_ key: String) throws(ObjectStoreError) -> [UInt8] {
        try record("get", { () throws(ObjectStoreError) in try base.get(key) }, bytesIn: { $0.count })
    }

    public func get(_ key: String, range: Range<UInt64>) throws(ObjectStoreError) -> [UInt8] {
        try record("get_range", { () throws(ObjectStoreError) in try base.get(key, range: range) }, bytesIn: { $0.count })
    }

    public func get(_ key: String, range: Range<UInt64>, parts lengths: [Int]) throws(ObjectStoreError) -> [[UInt8]] {
        try record("get_range", { () throws(ObjectStoreError) in try base.get(key, range: range, parts: lengths) },
                   bytesIn: { $0.reduce(0) { $0 + $1.count } })
    }

    public func head(_ key: String) throws(ObjectStoreError) -> ObjectInfo? {
        try record("head") { () throws(ObjectStoreError) in try base.head(key) }
    }

    public func delete(_ key: String) throws(ObjectStoreError) {
        try record("delete") { () throws(ObjectStoreError) in try base.delete(key) }
    }

    public func list(prefix: String) throws(ObjectStoreError) -> [ObjectInfo] {
        try record("list") { () throws(ObjectStoreError) in try base.list(prefix: prefix) }
    }
}
