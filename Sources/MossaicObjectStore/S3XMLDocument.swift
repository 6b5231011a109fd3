import Foundation
import MossaicCore
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A parsed S3 XML response body: a small element tree, enough for ListObjectsV2 results and
/// `<Error>` bodies. Built with Foundation's XMLParser, which handles entities (`&amp;`…),
/// CDATA and namespaces, so keys are never mis-split by a hand-rolled scanner.
struct S3XMLElement {
    var name: String
    var text: String = ""
    var children: [S3XMLElement] = []

    /// The text of the first child named `name`.
    func child(_ name: String) -> String? { children.first { $0.name == name }?.text }

    func all(_ name: String) -> [S3XMLElement] { children.filter { $0.name == name } }

    /// Parses `bytes` and returns the root element, or nil if they are not well-formed XML.
    static func parse(_ bytes: [UInt8]) -> S3XMLElement? {
        guard !bytes.isEmpty else { return nil }
        let parser = XMLParser(data: Data(bytes))
        // S3 responses never need external entities; resolving them would be an XXE risk.
        parser.shouldResolveExternalEntities = false
        let builder = TreeBuilder()
        parser.delegate = builder
        guard parser.parse(), let root = builder.root else { return nil }
        return root
    }

    private final class TreeBuilder: NSObject, XMLParserDelegate {
        var stack: [S3XMLElement] = []
        var root: S3XMLElement?

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            stack.append(S3XMLElement(name: elementName))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].text += string
        }

        func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].text += String(decoding: CDATABlock, as: UTF8.self)
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?) {
            guard let done = stack.popLast() else { return }
            if stack.isEmpty { root = done } else { stack[stack.count - 1].children.append(done) }
        }
    }
}

/// An S3 `<Error>` body.
struct S3ErrorBody {
    var code: String
    var message: String
    /// Extra fields some errors carry: the bucket of NoSuchBucket, the bucket's real region.
    var bucketName: String?
    var region: String?

    init?(_ bytes: [UInt8]) {
        guard let root = S3XMLElement.parse(bytes), root.name == "Error", let code = root.child("Code") else { return nil }
        self.code = code
        message = root.child("Message") ?? ""
        bucketName = root.child("BucketName")
        region = root.child("Region")
    }
}

/// One page of a ListObjectsV2 response requested with `encoding-type=url`.
struct ListObjectsPage {
    /// Full keys (decoded), as stored in the bucket.
    var objects: [(key: String, size: UInt64, etag: String, lastModified: Timestamp?)]
    var nextContinuationToken: String?
    var isTruncated: Bool

    init?(_ bytes: [UInt8]) {
        guard let root = S3XMLElement.parse(bytes), root.name == "ListBucketResult" else { return nil }
        let urlEncoded = root.child("EncodingType") == "url"
        var objects: [(key: String, size: UInt64, etag: String, lastModified: Timestamp?)] = []
        for entry in root.all("Contents") {
            guard let rawKey = entry.child("Key"),
                  let key = urlEncoded ? S3Encoding.urlDecode(rawKey) : rawKey,
                  let size = entry.child("Size").flatMap({ UInt64($0) }) else { return nil }
            objects.append((key, size, S3Encoding.unquoteETag(entry.child("ETag") ?? ""),
                            entry.child("LastModified").flatMap { S3Encoding.timestamp(iso8601: $0) }))
        }
        self.objects = objects
        isTruncated = root.child("IsTruncated") == "true"
        nextContinuationToken = root.child("NextContinuationToken")
    }
}
