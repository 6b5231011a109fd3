/// An AWS access key pair and where it came from.
///
/// The secret never appears in `description`, `debugDescription` or a mirror (so `print`, string
/// interpolation, `dump` and loggers cannot leak it); error messages name `source` instead.
public struct S3Credentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyID: String
    var secretAccessKey: String
    /// For temporary credentials (STS); sent as `x-amz-security-token`.
    public var sessionToken: String?
    /// Where the keys were found, for messages, e.g. `environment AWS_ACCESS_KEY_ID` or
    /// `credentials file /etc/mossaicfs/creds profile default`.
    public var source: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, source: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.source = source
    }

    public var description: String { "access key \(accessKeyID) from \(source)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyID": accessKeyID, "source": source], displayStyle: .struct)
    }
}
