import MossaicCore
import MossaicObjectStore

/// Forwards every call to `base`, except PUTs, which go to `put` with `base` to forward to:
/// for tests that need one kind of misbehaving PUT (failing on demand, counted, or applied
/// but reported failed) without writing out the rest of the protocol again.
public final class PutInterceptingObjectStore: ObjectStore {
    public typealias Put = @Sendable (_ key: String, _ data: [UInt8], _ condition: PutCondition, _ base: any ObjectStore)
        throws(ObjectStoreError) -> String

    public let base: any ObjectStore
    private let onPut: Put

    public init(_ base: any ObjectStore, put: @escaping Put) {
        self.base = base
        self.onPut = put
    }

    public func put(_ key: String, _ data: [UInt8], condition: PutCondition) throws(ObjectStoreError) -> String {
        try onPut(key, data, condition, base)
    }
    public func get(_ key: String) throws(ObjectStoreError) -> [UInt8] { try base.get(key) }
    public func get(_ key: String, range: Range<UInt64>) throws(ObjectStoreError) -> [UInt8] { try base.get(key, range: range) }
    public func head(_ key: String) throws(ObjectStoreError) -> ObjectInfo? { try base.head(key) }
    public func delete(_ key: String) throws(ObjectStoreError) { try base.delete(key) }
    public func list(prefix: String) throws(ObjectStoreError) -> [ObjectInfo] { try base.list(prefix: prefix) }
    public var displayName: String { base.displayName }
    public var isLocal: Bool { base.isLocal }
    public var chunkCipher: ConvergentCipher? { base.chunkCipher }
}
