// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "qie",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "QieImaging", targets: ["QieImaging"]),
        .library(name: "QiePipeline", targets: ["QiePipeline"]),
        .library(name: "QieProviders", targets: ["QieProviders"]),
        .library(name: "QieClient", targets: ["QieClient"]),
        .library(name: "QieEmulator", targets: ["QieEmulator"]),
        .executable(name: "qie", targets: ["qie"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-extras/swift-extras-base64", from: "1.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
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

        // The only Swift module that imports C.
        .target(name: "QieImaging", dependencies: ["CVips", "CVipsShims", "CCodecShims"]),
        .target(
            name: "QiePipeline",
            dependencies: [
                "QieImaging", "QieProviders", "QieClient", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "SwiftCSV", package: "SwiftCSV"),
            ]),
        // Endpoint profiles, size planning, cost and request bodies: no I/O but
        // reading the image files a body streams.
        .target(
            name: "QieProviders",
            dependencies: ["QieImaging", .product(name: "ExtrasBase64", package: "swift-extras-base64")]),
        .executableTarget(
            name: "qie",
            dependencies: [
                "QieImaging", "QiePipeline", "QieProviders", "QieEmulator", "QieClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // HTTP: one shared client, retries, downloads.
        .target(
            name: "QieClient",
            dependencies: [
                "QieImaging", "QieProviders", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
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
        // Micro-benchmarks (`swift run -c release qie-bench`); not a test.
        .executableTarget(name: "qie-bench", dependencies: ["QieProviders", "QieImaging", "QiePipeline"]),

        .testTarget(name: "QieImagingTests", dependencies: ["QieImaging"], resources: [.copy("Fixtures")]),
        .testTarget(name: "QiePipelineTests", dependencies: ["QiePipeline", "QieImaging", "QieProviders"]),
        .testTarget(name: "QieProvidersTests", dependencies: ["QieProviders", "QieImaging"]),
        .testTarget(
            name: "QieClientTests",
            dependencies: [
                "QieClient", "QieEmulator", "QieProviders", "QieImaging", "QiePipeline",
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .testTarget(name: "QieCLITests", dependencies: ["QieImaging"]),
    ]
)
