import MossaicCore
import MossaicMeta
import MossaicObjectStore

/// Errors of metadata snapshots, restores and the writer lease. Each is one line for the CLI.
public enum ReplicationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Another mount holds the writer lease; `claimant` asked for it (the advice depends on it).
    case leaseHeld(store: String, holder: String, claimant: Claimant)
    /// This mount's lease was taken over by another mount (forced, or after it expired).
    case leaseLost(String)
    /// HEAD moved under this writer: another writer published snapshot `current`.
    case headMoved(current: String)
    /// The local metadata is older than the store's newest snapshot.
    case localOlder(String)
    /// No such snapshot (for `snapshot=ID`).
    case noSuchSnapshot(String)
    /// A manifest, HEAD or lease object that cannot be read, or a piece whose bytes do not
    /// match its name.
    case damaged(String)
    /// The snapshot belongs to another filesystem.
    case wrongFilesystem(String)
    case store(ObjectStoreError)
    case metadata(MetaError)
    case local(String)

    public var description: String {
        switch self {
        case .leaseHeld(let store, let holder, let claimant):
            "\(store) is already mounted read-write by \(holder); \(claimant.adviceForHeldLease)"
        case .leaseLost(let why): "writer lease lost: \(why)"
        case .headMoved(let current):
            "another writer published metadata snapshot \(current); this mount's later changes are not in the store"
        case .localOlder(let why): why
        case .noSuchSnapshot(let id): "no metadata snapshot \(id) (list them with: mossaicfs snapshots SOURCE)"
        case .damaged(let why): why
        case .wrongFilesystem(let why): why
        case .store(let e): e.description
        case .metadata(let e): "metadata: \(e)"
        case .local(let why): why
        }
    }
}

extension ReplicationError {
    /// This mount is no longer the filesystem's writer.
    public var endsWriting: Bool {
        switch self {
        case .leaseLost, .headMoved: true
        default: false
        }
    }

    /// Runs an object-store call, wrapping its error.
    static func wrap<T>(_ body: () throws(ObjectStoreError) -> T) throws(ReplicationError) -> T {
        do { return try body() } catch { throw .store(error) }
    }

    /// Runs a metadata call, wrapping its error.
    static func wrapMeta<T>(_ body: () throws(MetaError) -> T) throws(ReplicationError) -> T {
        do { return try body() } catch { throw .metadata(error) }
    }
}
