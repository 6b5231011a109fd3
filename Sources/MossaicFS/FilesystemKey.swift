import MossaicCore
import MossaicObjectStore

/// Where the key of an encrypted filesystem is to come from (`MasterKey`).
public enum KeySource: Sendable, Equatable {
    case keyFile(String)
    case passphraseFile(String)
    /// From the environment or the terminal, read by the command.
    case passphrase([UInt8])
}

/// The master key of an encrypted filesystem, made or checked against its superblock, and the
/// store as the filesystem must see it (`SealedObjectStore`). Every command that reads or
/// writes a filesystem's objects unlocks it right after reading the superblock, before
/// anything else is read or written: a missing or wrong key fails in one line, and no
/// plaintext ever reaches an encrypted store.
public enum FilesystemKey {
    /// The superblock's encryption section for a new filesystem whose key comes from `source`.
    public static func make(_ source: KeySource) throws(FormatError) -> Superblock.Encryption {
        let kdf: KDFParameters? = if case .keyFile = source { nil } else { KDFParameters.fresh() }
        let master = try masterKey(source, kdf: kdf)
        return Superblock.Encryption(scheme: ConvergentCipher.scheme, keyCheck: hex(ConvergentCipher(masterKey: master).keyCheck), kdf: kdf)
    }

    /// `store` for the filesystem of `superblock`: as it is if it is stored in the clear (a
    /// key given anyway is refused, so a typo cannot make one believe a filesystem is
    /// encrypted), wrapped in a `SealedObjectStore` under the checked key otherwise.
    public static func unlock(_ store: any ObjectStore, superblock: Superblock, source: KeySource?) throws(FormatError) -> any ObjectStore {
        if store is SealedObjectStore { return store }
        guard let encryption = superblock.encryption else {
            guard source == nil else { throw .key("\(store.displayName) is not encrypted; give no key_file= or passphrase") }
            return store
        }
        guard let source else {
            let how = encryption.kdf == nil ? "-o key_file=PATH" : "its passphrase (-o passphrase_file=PATH, MOSSAICFS_PASSPHRASE, or the terminal)"
            throw .key("\(store.displayName) is encrypted: give \(how)")
        }
        let kind = encryption.kdf == nil ? "key file" : "passphrase"
        switch (source, encryption.kdf) {
        case (.keyFile, .some): throw .key("\(store.displayName) is encrypted with a passphrase, not a key file")
        case (.passphraseFile, nil), (.passphrase, nil): throw .key("\(store.displayName) is encrypted with a key file (-o key_file=PATH), not a passphrase")
        default: break
        }
        let cipher = ConvergentCipher(masterKey: try masterKey(source, kdf: encryption.kdf))
        guard hex(cipher.keyCheck) == encryption.keyCheck else {
            throw .key("wrong \(kind) for \(store.displayName) (filesystem \(superblock.uuid))")
        }
        return SealedObjectStore(store, cipher: cipher)
    }

    /// Refuses `store` for an encrypted `superblock` unless it is unlocked: the loader and
    /// gc check it themselves, so that no path can write plaintext into an encrypted store.
    public static func requireUnlocked(_ store: any ObjectStore, superblock: Superblock) throws(FormatError) {
        guard superblock.encryption != nil, !(store is SealedObjectStore) else { return }
        throw .key("\(store.displayName) is encrypted and was opened without its key")
    }

    private static func masterKey(_ source: KeySource, kdf: KDFParameters?) throws(FormatError) -> [UInt8] {
        do throws(KeyError) {
            switch source {
            case .keyFile(let path): return try MasterKey.read(keyFile: path)
            case .passphraseFile(let path): return try MasterKey.derive(passphrase: try MasterKey.read(passphraseFile: path), parameters: kdf!)
            case .passphrase(let passphrase):
                guard !passphrase.isEmpty else { throw KeyError.invalid("the passphrase is empty") }
                return try MasterKey.derive(passphrase: passphrase, parameters: kdf!)
            }
        } catch { throw .key(error.description) }
    }

    private static func hex(_ bytes: [UInt8]) -> String { ChunkHash(bytes: bytes).hex }
}
