import Foundation

/// Reader of the AWS shared credentials file (`~/.aws/credentials`, or a file named by
/// `credentials=`): INI sections per profile with `aws_access_key_id`, `aws_secret_access_key`
/// and optionally `aws_session_token`.
///
/// Written by hand because Foundation has no INI parser and the format is tiny. Follows the AWS
/// CLI's reading: `#`/`;` comment lines, `key = value` with whitespace trimmed, section names
/// `[name]` (and the config-file spelling `[profile name]`), keys case-insensitive.
enum AWSSharedCredentialsFile {
    /// Profile name → (key → value).
    static func parse(_ text: String) -> [String: [String: String]] {
        var profiles: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else { current = nil; continue }
                var name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = name.dropFirst("profile ".count).trimmingCharacters(in: .whitespaces) }
                current = name
                profiles[name, default: [:]] = profiles[name] ?? [:]
                continue
            }
            guard let section = current, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            profiles[section, default: [:]][key] = value
        }
        return profiles
    }

    /// Loads `profile` from the file at `path`. `origin` says how the file was chosen, for
    /// messages ("credentials file", "shared credentials file").
    static func load(path: String, profile: String, origin: String) throws(ObjectStoreError) -> S3Credentials {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .invalidConfiguration("\(origin) \(path): cannot read it (\(Self.reason(error)))")
        }
        let source = "\(origin) \(path) profile \(profile)"
        guard let section = parse(text)[profile] else {
            throw .invalidConfiguration("\(origin) \(path) has no profile [\(profile)]")
        }
        guard let keyID = section["aws_access_key_id"], !keyID.isEmpty else {
            throw .invalidConfiguration("\(source): aws_access_key_id is missing")
        }
        guard let secret = section["aws_secret_access_key"], !secret.isEmpty else {
            throw .invalidConfiguration("\(source): aws_secret_access_key is missing")
        }
        let token = section["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return S3Credentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: token, source: source)
    }

    private static func reason(_ error: any Error) -> String {
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        if let underlying, underlying.domain == NSPOSIXErrorDomain, let text = strerror(Int32(underlying.code)) {
            return String(cString: text)
        }
        return (error as NSError).code == NSFileReadNoSuchFileError ? "no such file" : "unreadable or not UTF-8"
    }
}
