import Foundation
import Logging
import MossaicObjectStore

/// s3:// sources: configuration from options and the AWS environment, then an access check
/// up front, so that wrong credentials, a missing bucket or an unreachable endpoint fail
/// `format` and `mount` within seconds with one line naming the cause.
enum S3StoreFactory {
    static func open(_ source: String, options: [String: String], logger: Logger) throws(ObjectStoreError) -> any ObjectStore {
        let configuration = try S3Configuration(source: source, options: options, environment: ProcessInfo.processInfo.environment)
        let store = S3ObjectStore(configuration: configuration, logger: logger)
        try store.checkAccess()
        return store
    }
}
