// swift-tools-version: 6.2
//
// libFuzzer targets for the code that reads hostile input (docs/security.md):
// the WebSocket client core (frames and handshake from any server), the
// control request decoder (any local user who reaches the socket) and the
// config reader (any file). A package of its own, compiled from the daemon's
// sources (Sources/* are symbolic links to ../Sources/*), so the daemon's
// build never sees the fuzzer runtime. Build and run: scripts/fuzz.sh.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
// The harnesses have no main: libFuzzer's runtime provides it.
let harness: [SwiftSetting] = strict + [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "wshostd-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0")
    ],
    targets: [
        .target(name: "WebSocketProtocol", swiftSettings: strict),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib"),
        .target(name: "Zlib", dependencies: ["CZlib", "WebSocketProtocol"], swiftSettings: strict),
        .target(name: "MonotonicTime", swiftSettings: strict),
        .target(name: "World", dependencies: ["MonotonicTime", "WebSocketProtocol"], swiftSettings: strict),
        .target(name: "JSONValue", swiftSettings: strict),
        .target(
            name: "Control",
            dependencies: [
                "JSONValue", "MonotonicTime", "WebSocketProtocol", "World",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict),
        .target(name: "FleetCore", dependencies: ["MonotonicTime", "World"], swiftSettings: strict),
        .target(
            name: "Config",
            dependencies: ["FleetCore", "WebSocketProtocol", "World"],
            swiftSettings: strict),
        .executableTarget(
            name: "FuzzFrames", dependencies: ["WebSocketProtocol", "Zlib"], path: "Fuzzers/FuzzFrames",
            swiftSettings: harness),
        .executableTarget(
            name: "FuzzControl", dependencies: ["Control"], path: "Fuzzers/FuzzControl", swiftSettings: harness),
        .executableTarget(
            name: "FuzzConfig", dependencies: ["Config"], path: "Fuzzers/FuzzConfig", swiftSettings: harness),
    ]
)
