import Foundation
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import MossaicReplication

/// `mossaicfs.json` at the root of the store: what makes a directory or bucket prefix a
/// mossaicfs filesystem, and the options fixed when it was formatted.
public struct Superblock: Codable, Sendable, Equatable {
    public static let key = "mossaicfs.json"

    public var formatVersion: Int
    public var uuid: String
    public var chunkSize: Int
    public var hash: String
    public var inlineMax: Int
    public var created: String
    /// `Compression`'s spelling (`zstd:3`); absent for none, as in every superblock written
    /// before compression existed. Checked by `load`.
    var compressionSetting: String?
    /// Absent for a filesystem stored in the clear (`FilesystemKey`).
    public var encryption: Encryption?
    /// Where the metadata lives when it is not in each mount's local SQLite `meta.db`: a
    /// `postgres://` URL (`PostgresURL`: never a password), for filesystems that several hosts
    /// mount read-write. Absent for SQLite, as in every superblock written before PostgreSQL.
    /// Such a superblock has format version 3 (`externalMetadataFormatVersion`): builds before
    /// it ignore fields they do not know, and would open an empty local meta.db — an empty
    /// filesystem whose first writes and `gc` would wreck the real one — so they must refuse it,
    /// as the version rule makes them.
    public var meta: String?

    /// An encrypted filesystem's scheme and how to check a key; never the key.
    public struct Encryption: Codable, Sendable, Equatable {
        /// `ConvergentCipher.scheme`.
        public var scheme: String
        /// `ConvergentCipher.keyCheck`, hex: tells a wrong key before anything is read.
        public var keyCheck: String
        /// Present when the master key comes from a passphrase.
        public var kdf: KDFParameters?

        enum CodingKeys: String, CodingKey { case scheme, keyCheck = "key_check", kdf }

        public init(scheme: String, keyCheck: String, kdf: KDFParameters?) {
            self.scheme = scheme; self.keyCheck = keyCheck; self.kdf = kdf
        }
    }

    /// The format version of a filesystem whose chunks are transformed (compressed or
    /// encrypted): a mossaicfs that knows neither must refuse it rather than hand out stored
    /// bytes as file contents, or write plaintext into an encrypted filesystem. Filesystems
    /// without either keep version 1, readable by every build.
    public static let transformedFormatVersion = 2
    /// The format version of a filesystem whose metadata is in PostgreSQL (`meta`).
    public static let externalMetadataFormatVersion = 3

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", uuid, chunkSize = "chunk_size", hash, inlineMax = "inline_max", created, encryption, meta
        case compressionSetting = "compression"
    }

    public init(inlineMax: Int = FormatConstants.defaultInlineMax, compression: Compression = .none, encryption: Encryption? = nil,
                meta: PostgresURL? = nil) {
        formatVersion = meta != nil ? Self.externalMetadataFormatVersion
            : compression == .none && encryption == nil ? 1 : Self.transformedFormatVersion
        self.encryption = encryption
        self.meta = meta?.string
        uuid = UUID().uuidString.lowercased()
        chunkSize = FormatConstants.chunkSize
        hash = "sha256"
        self.inlineMax = inlineMax
        created = ISO8601DateFormatter().string(from: Date())
        compressionSetting = compression == .none ? nil : compression.description
    }

    /// How chunks are compressed (validated when the superblock was loaded).
    public var compression: Compression {
        compressionSetting.flatMap { try? Compression(parsing: $0) } ?? .none
    }

    /// The PostgreSQL database holding the metadata; nil for the local SQLite meta.db
    /// (validated when the superblock was loaded).
    public var postgres: PostgresURL? {
        meta.flatMap { try? PostgresURL(parsing: $0) }
    }

    /// What is done to each chunk between the filesystem and `store` (the store this
    /// superblock was loaded from, unlocked: an encrypted filesystem's `SealedObjectStore`
    /// carries the cipher that seals chunks).
    public func transform(for store: any ObjectStore) -> ChunkTransform {
        ChunkTransform(compression: compression, cipher: store.chunkCipher)
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data()) + [0x0a]
    }

    /// Reads and validates the superblock of `store`.
    public static func load(from store: any ObjectStore) throws(FormatError) -> Superblock {
        let bytes: [UInt8]
        do {
            bytes = try store.get(key)
        } catch .notFound {
            throw .notFormatted(store.displayName)
        } catch {
            throw .store(error)
        }
        guard let sb = try? JSONDecoder().decode(Superblock.self, from: Data(bytes)) else {
            throw .damaged("\(store.displayName)/\(key) is not a valid mossaicfs superblock")
        }
        guard sb.formatVersion <= FormatConstants.formatVersion else {
            throw .damaged("\(store.displayName) has format version \(sb.formatVersion); this mossaicfs reads up to \(FormatConstants.formatVersion) (upgrade mossaicfs)")
        }
        if let encryption = sb.encryption, encryption.scheme != ConvergentCipher.scheme || sb.formatVersion < transformedFormatVersion {
            throw .damaged("\(store.displayName)/\(key) has unsupported encryption \(encryption.scheme) (format version \(sb.formatVersion))")
        }
        guard sb.chunkSize == FormatConstants.chunkSize, sb.hash == "sha256", sb.inlineMax >= 0, sb.inlineMax <= sb.chunkSize else {
            throw .damaged("\(store.displayName)/\(key) has unsupported parameters (chunk size \(sb.chunkSize), hash \(sb.hash))")
        }
        if let meta = sb.meta {
            guard sb.formatVersion >= externalMetadataFormatVersion else {
                throw .damaged("\(store.displayName)/\(key) names metadata in \(meta) but has format version \(sb.formatVersion)")
            }
            do { _ = try PostgresURL(parsing: meta) } catch {
                throw .damaged("\(store.displayName)/\(key): \(error)")
            }
        }
        if let setting = sb.compressionSetting {
            do { _ = try Compression(parsing: setting) } catch {
                throw .damaged("\(store.displayName)/\(key): \(error)")
            }
        }
        return sb
    }

    /// Writes a new superblock. Refuses to overwrite an existing filesystem unless `force`.
    public static func format(_ store: any ObjectStore, inlineMax: Int, compression: Compression = .none,
                              encryption: Encryption? = nil, meta: PostgresURL? = nil, force: Bool) throws(FormatError) -> Superblock {
        let sb = Superblock(inlineMax: inlineMax, compression: compression, encryption: encryption, meta: meta)
        do {
            try store.put(key, sb.encoded(), condition: force ? .none : .ifNoneMatch)
        } catch .preconditionFailed {
            throw .alreadyFormatted(store.displayName)
        } catch {
            throw .store(error)
        }
        return sb
    }
}

/// Errors of opening or formatting a filesystem; each message is one line for the CLI.
public enum FormatError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFormatted(String)
    case alreadyFormatted(String)
    /// A local directory to format holds other entries (see `StoreDirectory`).
    case notEmpty(String)
    case damaged(String)
    case store(ObjectStoreError)
    case cacheDirectory(String)
    case metadata(String)
    /// Metadata snapshots and the writer lease: lease held elsewhere, local metadata older than
    /// the store's, a damaged snapshot.
    case replication(ReplicationError)
    /// An encrypted filesystem without its key, with a wrong one, or a key that cannot be read.
    case key(String)

    public var description: String {
        switch self {
        case .notFormatted(let s): "\(s) is not a mossaicfs filesystem (no \(Superblock.key)); create one with: mossaicfs format \(s)"
        case .alreadyFormatted(let s): "\(s) already holds a mossaicfs filesystem; use --force to format it anew (its files become unreachable)"
        case .notEmpty(let s): "\(s) is not empty and holds no mossaicfs filesystem; use --force to format it anyway (what it holds stays, among the filesystem's objects)"
        case .damaged(let why): why
        case .store(let e): e.description
        case .cacheDirectory(let why): why
        case .metadata(let why): why
        case .replication(let e): e.description
        case .key(let why): why
        }
    }
}
