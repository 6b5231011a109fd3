// swift-tools-version: 6.0
// mossaicfs — a FUSE filesystem on S3-compatible object storage (or a local directory).
// Layers (arrows point down only): mossaicfs → {MossaicFUSE, MossaicMaintenance → MossaicMount} →
// MossaicFS → {MossaicReplication, MossaicCache} → {MossaicMeta, MossaicObjectStore} → MossaicCore.
// Each C module is imported by exactly one Swift target (MossaicMeta holds both SQLite and libpq), so no libfuse/sqlite/curl type leaks past
// the layer that owns it.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "mossaicfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mossaicfs", targets: ["mossaicfs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C modules: headers only; the reason for each one is in its shim header.
        .systemLibrary(name: "CFuse", path: "CFuse", pkgConfig: "fuse3"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ", pkgConfig: "libpq"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd"),
        .target(name: "CCurl", path: "Sources/CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "CIoctl", path: "Sources/CIoctl"),
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),

        .target(name: "MossaicCore", dependencies: ["COpenSSL", "CZstd", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "MossaicObjectStore",
                dependencies: ["MossaicCore", "CCurl", "CCRC32C", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // Both metadata engines: SQLite (one host) and PostgreSQL (many hosts, not yet selectable).
        .target(name: "MossaicMeta", dependencies: ["MossaicCore", "CSQLite", "CLibPQ"], swiftSettings: strict),
        .target(name: "MossaicCache",
                dependencies: ["MossaicCore", "MossaicObjectStore", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // Metadata snapshots into the store, restore, the writer lease (ARCHITECTURE.md §5).
        .target(name: "MossaicReplication",
                dependencies: ["MossaicCore", "MossaicMeta", "MossaicObjectStore", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "MossaicFS",
                dependencies: ["MossaicCore", "MossaicMeta", "MossaicCache", "MossaicObjectStore", "MossaicReplication",
                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // Wiring: a store and a cache_dir made into a filesystem to serve — the cache_dir lock,
        // the metadata reconciled with the store's snapshots, the writer lease, the blob cache.
        .target(name: "MossaicMount",
                dependencies: ["MossaicFS", "MossaicCore", "MossaicMeta", "MossaicCache", "MossaicObjectStore", "MossaicReplication",
                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // Offline work on a filesystem nobody mounts: gc and fsck.
        .target(name: "MossaicMaintenance",
                dependencies: ["MossaicMount", "MossaicFS", "MossaicCore", "MossaicMeta", "MossaicCache", "MossaicObjectStore",
                               "MossaicReplication", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "MossaicFUSE",
                dependencies: ["MossaicFS", "MossaicCore", "CFuse", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .executableTarget(name: "mossaicfs",
                          dependencies: ["MossaicFUSE", "MossaicMaintenance", "MossaicMount", "MossaicFS", "MossaicObjectStore", "MossaicMeta", "MossaicCore",
                                         "MossaicReplication", "CIoctl",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log")],
                          swiftSettings: strict),
        .target(name: "MossaicTestSupport",
                dependencies: ["MossaicCore", "MossaicObjectStore", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),

        .testTarget(name: "MossaicObjectStoreTests",
                    dependencies: ["MossaicObjectStore", "MossaicTestSupport", "MossaicCore",
                                   .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "MossaicCoreTests", dependencies: ["MossaicCore"], swiftSettings: strict),
        .testTarget(name: "MossaicMetaTests", dependencies: ["MossaicMeta", "MossaicTestSupport", "MossaicCore"], swiftSettings: strict),
        .testTarget(name: "MossaicReplicationTests",
                    dependencies: ["MossaicReplication", "MossaicTestSupport", "MossaicMeta", "MossaicObjectStore", "MossaicCore"],
                    swiftSettings: strict),
        .testTarget(name: "MossaicFSTests",
                    dependencies: ["MossaicFS", "MossaicMount", "MossaicMaintenance", "MossaicTestSupport", "MossaicMeta", "MossaicCache",
                                   "MossaicObjectStore", "MossaicCore", "MossaicReplication"],
                    swiftSettings: strict),
        // The command's own logic (progress display, formatting): @testable of the executable.
        .testTarget(name: "MossaicCommandTests", dependencies: ["mossaicfs", "MossaicCore"], swiftSettings: strict),
    ]
)
