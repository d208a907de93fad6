// swift-tools-version:6.0
import PackageDescription

// A program that uses qie the way any other package would: as a dependency
// (here by path, so it always builds against this checkout) and through its
// public API only.
let package = Package(
    name: "EditFolder",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, so the products below find it whatever the checkout's folder is called.
        .package(name: "qie", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "EditFolder",
            dependencies: [
                // The edit path; it brings sizes, formats, imaging and endpoints along.
                .product(name: "QiePipeline", package: "qie"),
                // The local stand-in for the endpoints.
                .product(name: "QieEmulator", package: "qie"),
            ]),
    ]
)
