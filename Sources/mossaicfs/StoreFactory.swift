#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import MossaicObjectStore

/// Turns a SOURCE argument into an object store.
enum StoreFactory {
    /// A local directory SOURCE as an absolute path (relative paths are taken from the current
    /// directory, as mount(8) users expect).
    static func absolutePath(_ source: String) -> String {
        var path = source
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buffer, buffer.count) != nil {
                path = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
            }
        }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// Opens the store SOURCE names. `create` makes a missing local directory (format).
    static func open(_ source: String, options: [String: String], create: Bool) throws(ObjectStoreError) -> any ObjectStore {
        if source.hasPrefix("s3://") {
            return try S3StoreFactory.open(source, options: options)
        }
        if source.contains("://") {
            throw .invalidConfiguration("unsupported source \(source): use a local directory or s3://bucket/prefix")
        }
        if !options.isEmpty {
            throw .invalidConfiguration("option '\(options.keys.sorted()[0])' applies to s3:// sources only")
        }
        let path = absolutePath(source)
        if !create && !PosixFiles.exists(path) {
            throw .invalidConfiguration("\(path): no such directory; create a filesystem there with: mossaicfs format \(path)")
        }
        return try DirectoryObjectStore(root: path, create: create)
    }
}
