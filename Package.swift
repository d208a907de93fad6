// swift-tools-version:6.0
import PackageDescription

// Modules by job; arrows point down only (see README "Modules"):
//   qie (command line) -> QiePipeline -> QieReport, QieStore, QieWebhooks, QieClient,
//   QieProviders, QieImaging, QieFiles -> QieCore (C-free values).
// Only QieImaging imports libvips; QieProviders (planning, cost, request
// bodies) and QieClient (HTTP) never link it.
let package = Package(
    name: "qie",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "QieCore", targets: ["QieCore"]),
        .library(name: "QieFiles", targets: ["QieFiles"]),
        .library(name: "QieImaging", targets: ["QieImaging"]),
        .library(name: "QieProviders", targets: ["QieProviders"]),
        .library(name: "QieClient", targets: ["QieClient"]),
        .library(name: "QieWebhooks", targets: ["QieWebhooks"]),
        .library(name: "QieStore", targets: ["QieStore"]),
        .library(name: "QieReport", targets: ["QieReport"]),
        .library(name: "QiePipeline", targets: ["QiePipeline"]),
        .library(name: "QieEmulator", targets: ["QieEmulator"]),
        .library(name: "QieGateway", targets: ["QieGateway"]),
        .executable(name: "qie", targets: ["qie"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-extras/swift-extras-base64", from: "1.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(
            name: "CVips", path: "CModules/CVips", pkgConfig: "vips",
            providers: [.apt(["libvips-dev"]), .brew(["vips"])]),
        .systemLibrary(
            name: "CPNG", path: "CModules/CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(
            name: "CJPEG", path: "CModules/CJPEG", pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg-dev"]), .brew(["jpeg-turbo"])]),
        .systemLibrary(
            name: "CWebP", path: "CModules/CWebP", pkgConfig: "libwebpmux",
            providers: [.apt(["libwebp-dev"]), .brew(["webp"])]),

        // C glue Swift cannot express: fixed-argument libvips calls, and
        // header probes whose libpng/libjpeg errors longjmp inside C only.
        .target(name: "CVipsShims", dependencies: ["CVips"], path: "CModules/CVipsShims"),
        .target(
            name: "CCodecShims", dependencies: ["CPNG", "CJPEG", "CWebP"], path: "CModules/CCodecShims"),

        // Sizes, fit, positions, formats, geometry, settings: plain values, no C, no I/O.
        .target(name: "QieCore"),
        // Folders in, folders out: input walking, atomic writes that never
        // follow links, the run lock; the one file of system calls.
        .target(name: "QieFiles"),
        // The only Swift module that imports C: probe, decode, resize, encode, restore.
        .target(name: "QieImaging", dependencies: ["QieCore", "QieFiles", "CVips", "CVipsShims", "CCodecShims"]),
        // Hosts (one file each: endpoints as data, their requests, answers,
        // cancels, callbacks and emulation), size planning, cost and request
        // bodies: no I/O but reading the images a body streams; no libvips.
        .target(
            name: "QieProviders",
            dependencies: [
                "QieCore", .product(name: "ExtrasBase64", package: "swift-extras-base64"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // HTTP to the endpoints: one pooled client, retries, polling, the event
        // stream, downloads.
        .target(
            name: "QieClient",
            dependencies: [
                "QieProviders", "QieFiles", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        // The local listener for endpoint callbacks (webhooks), a server of its own.
        .target(
            name: "QieWebhooks",
            dependencies: [
                "QieClient", "QieProviders", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]),
        // The run store: the SQLite ledger in the output folder (opened
        // through no link), or PostgreSQL shared by workers on several machines.
        .target(
            name: "QieStore",
            dependencies: [
                "QieCore", "QieFiles", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Logging", package: "swift-log"),
            ]),
        // report.html / report.json and their thumbnails.
        .target(name: "QieReport", dependencies: ["QieStore", "QieFiles", "QieImaging"]),
        // The edit path: one edit in memory, and edit runs over folders.
        .target(
            name: "QiePipeline",
            dependencies: [
                "QieCore", "QieFiles", "QieImaging", "QieProviders", "QieClient", "QieWebhooks", "QieStore",
                "QieReport", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftCSV", package: "SwiftCSV"),
            ]),
        // A local server speaking the documented wire formats, strictly.
        .target(
            name: "QieEmulator",
            dependencies: [
                "QieImaging", "QieProviders", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]),
        // The OpenAI-compatible images gateway (`qie serve`) over the edit path.
        .target(
            name: "QieGateway",
            dependencies: [
                "QiePipeline", "QieStore", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]),
        // The command line: parse, build a configuration, call the library, render.
        .executableTarget(
            name: "qie",
            dependencies: [
                "QiePipeline", "QieEmulator", "QieFiles", "QieGateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Micro-benchmarks (`swift run -c release qie-bench`); not a test.
        .executableTarget(
            name: "qie-bench",
            dependencies: [
                "QieProviders", "QieImaging", "QiePipeline", "QieClient", "QieStore",
                .product(name: "ExtrasBase64", package: "swift-extras-base64"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Edits whose results point at private addresses, played inside a
        // network namespace of their own by QieClientTests (not a product).
        .executableTarget(
            name: "qie-network-probe",
            dependencies: [
                "QieClient", "QieEmulator", "QieImaging", "QiePipeline", "QieProviders",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/NetworkProbe"),

        // A throwaway PostgreSQL server for the tests (scripts/pg-server.sh), and multipart forms.
        .target(name: "QieTestSupport", path: "Tests/QieTestSupport"),
        .testTarget(
            name: "QieStoreTests",
            dependencies: ["QieStore", "QieCore", "QieTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "QieCoreTests", dependencies: ["QieCore"]),
        .testTarget(name: "QieImagingTests", dependencies: ["QieImaging", "QieTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "QiePipelineTests", dependencies: ["QiePipeline", "QieImaging", "QieProviders", "QieFiles", "QieTestSupport"]),
        .testTarget(name: "QieProvidersTests", dependencies: ["QieProviders", "QieImaging"]),
        .testTarget(
            name: "QieClientTests",
            dependencies: [
                "QieClient", "QieWebhooks", "QieEmulator", "QieProviders", "QieImaging", "QiePipeline", "QieStore",
                "QieFiles", "QieReport", "QieTestSupport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ], resources: [.copy("Fixtures")]),
        .testTarget(name: "QieCLITests", dependencies: ["QieImaging", "QieProviders", "QieTestSupport"]),
        .testTarget(
            name: "QieGatewayTests",
            dependencies: [
                "QieGateway", "QieEmulator", "QiePipeline", "QieTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                // A state file as an earlier gateway wrote it, for the migration tests.
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
    ]
)
