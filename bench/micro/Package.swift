// swift-tools-version: 6.1
//
// Micro-benchmarks of the pure protocol core (ordo-one/benchmark): CPU,
// instructions and heap allocations per message, without sockets. A package
// of its own so the daemon's build and CI never compile the benchmark
// framework. Run: swift package --package-path bench/micro benchmark
import PackageDescription

let package = Package(
    name: "wshostd-micro",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"])
    ],
    targets: [
        // The daemon's own protocol core, compiled here from the same sources
        // (Sources/WebSocketProtocol is a symbolic link to ../../Sources/WebSocketProtocol).
        .target(
            name: "WebSocketProtocol",
            // As in the daemon's release build (../../Package.swift).
            swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        .executableTarget(
            name: "ProtocolCore",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                "WebSocketProtocol",
            ],
            path: "Benchmarks/ProtocolCore",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
