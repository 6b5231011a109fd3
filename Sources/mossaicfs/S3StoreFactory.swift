import MossaicObjectStore

/// s3:// sources. Wired to S3ObjectStore once that lands (issue "S3 object store").
enum S3StoreFactory {
    static func open(_ source: String, options: [String: String]) throws(ObjectStoreError) -> any ObjectStore {
        throw .invalidConfiguration("s3:// sources are not supported by this build yet: \(source)")
    }
}
