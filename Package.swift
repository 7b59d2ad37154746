// swift-tools-version: 6.2
//
// The dependency direction is the architecture:
//   pure cores (Config, Control, WebSocketProtocol, World, HostingCore) import no
//   sockets, clocks or logging; the shells (EventLoop, Systemd, Daemon) wire
//   them to file descriptors, time, OpenSSL, zlib and systemd; the executables only
//   parse arguments and call into Daemon.
import Foundation
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    // Release builds skip the run-time exclusivity checks: on the message path
    // they were ~9 % of the daemon's instructions (callgrind, docs/performance.md).
    // Debug builds, which the tests run, keep every check.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

// Test-only fault injection for the watchdog proof (a loop stall on SIGUSR2):
// compiled in only when the manifest is read with WSHOSTD_FAULT_INJECTION=1
// (scripts/test-systemd.sh builds such a binary into .build-faults). Normal
// builds have no such code.
let faultInjection: [SwiftSetting] =
    ProcessInfo.processInfo.environment["WSHOSTD_FAULT_INJECTION"] == "1" ? [.define("WSHOSTD_FAULT_INJECTION")] : []

let package = Package(
    name: "wshostd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "wshostd", targets: ["wshostd"]),
        .executable(name: "wshostctl", targets: ["wshostctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        // Metrics: the swift-metrics API, with a Prometheus registry behind it (Daemon only).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // System libraries, found with pkg-config (Debian: libsystemd-dev, libssl-dev).
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // epoll(7), which Glibc's module leaves out (the loop's Poller).
        .systemLibrary(name: "CEpoll", path: "Sources/CEpoll"),
        // malloc_trim(3), which Glibc's module leaves out (the daemon returns
        // the heap that parsing and restoring left free).
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // PostgreSQL's client library, for the fleet (Debian: libpq-dev).
        .systemLibrary(name: "CLibpq", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // Pure core: the sans-I/O RFC 6455 client (bytes and commands in, events and bytes out).
        .target(name: "WebSocketProtocol", swiftSettings: strict),

        // Pure: a monotonic instant type shared by the cores and the loop.
        .target(name: "MonotonicTime", swiftSettings: strict),

        // Pure core: users, sessions, objects, records, the handling-user rule, the record lifecycle.
        .target(name: "World", dependencies: ["MonotonicTime", "WebSocketProtocol"], swiftSettings: strict),

        // Pure core: a fleet member's lease, fence and held sessions (docs/fleet.md).
        .target(name: "FleetCore", dependencies: ["MonotonicTime", "World"], swiftSettings: strict),

        // Pure core: the configuration schema, TOML parsing (its own TOML 1.0
        // parser: no C++, nothing that can abort) and validation.
        .target(name: "Config", dependencies: ["FleetCore", "WebSocketProtocol", "World"], swiftSettings: strict),

        // Pure: a JSON value, read (RFC 8259, strict, bounded) and written without Foundation.
        .target(name: "JSONValue", swiftSettings: strict),

        // Pure core: the control protocol (requests, results, events), shared by daemon and CLI.
        .target(
            name: "Control",
            dependencies: [
                "JSONValue", "MonotonicTime", "WebSocketProtocol", "World",
            ],
            swiftSettings: strict
        ),

        // Shell: the durable state (SQLite through GRDB, in the state directory).
        .target(
            name: "StateStore",
            dependencies: ["JSONValue", "World", "WebSocketProtocol", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),

        // Shell: the one Dispatch serial queue, its actor, timers and signals.
        .target(
            name: "EventLoop",
            dependencies: ["CEpoll", "MonotonicTime", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: strict
        ),

        // Shell: PostgreSQL connections on the loop (libpq's asynchronous API).
        .target(name: "Postgres", dependencies: ["CLibpq", "EventLoop"], swiftSettings: strict),

        // Shell: TLS client sessions over memory BIOs (system OpenSSL), for wss only.
        .target(name: "TLS", dependencies: ["COpenSSL"], swiftSettings: strict),

        // Shell: permessage-deflate's DEFLATE through the system zlib (the protocol core's DeflateCodec).
        .target(name: "Zlib", dependencies: ["CZlib", "WebSocketProtocol"], swiftSettings: strict),

        // Shell: one outbound WebSocket on the loop (transport + TLS + protocol core).
        .target(
            name: "WebSocketClient",
            dependencies: ["Config", "EventLoop", "MonotonicTime", "TLS", "WebSocketProtocol", "Zlib"],
            swiftSettings: strict
        ),

        // Pure core: the hosting decisions (world + consent + statuses + stop,
        // one value, inputs in, effects out) and the inbound delivery policy.
        .target(
            name: "HostingCore",
            dependencies: [
                "MonotonicTime", "WebSocketProtocol", "World",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),

        // Shell: the hosting core's runtime — records' sockets, timers, the message path.
        .target(
            name: "HostRuntime",
            dependencies: [
                "EventLoop", "HostingCore", "MonotonicTime", "WebSocketClient", "WebSocketProtocol", "World",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // Shell: libsystemd (notify, watchdog, journald) and the swift-log backends.
        .target(
            name: "Systemd",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),

        // Shell: the daemon's wiring (config + loop + systemd + logging).
        .target(
            name: "Daemon",
            dependencies: [
                "Config", "Control", "EventLoop", "FleetCore", "HostingCore", "HostRuntime", "JSONValue", "Postgres",
                "StateStore", "MonotonicTime",
                "Systemd", "CMalloc",
                "COpenSSL",
                "TLS",
                "WebSocketClient",
                "World",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict + faultInjection
        ),

        .executableTarget(
            name: "wshostd",
            dependencies: [
                "Daemon", "Config",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // A client probe for manual tests and the Autobahn fuzzing server.
        .executableTarget(
            name: "wsprobe",
            dependencies: [
                "Config", "EventLoop", "HostingCore", "HostRuntime", "TLS", "WebSocketClient", "WebSocketProtocol",
                "World",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "wshostctl",
            dependencies: [
                "Config", "Control", "JSONValue", "WebSocketProtocol", "World",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // Helpers shared by the test targets: a real notify socket, child processes.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strict),

        .testTarget(
            name: "ConfigTests", dependencies: ["Config", "FleetCore", "World", "WebSocketProtocol"],
            swiftSettings: strict),
        .testTarget(
            name: "ControlTests", dependencies: ["Control", "JSONValue", "World", "WebSocketProtocol", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "StateStoreTests",
            dependencies: [
                "StateStore", "JSONValue", "World", "WebSocketProtocol", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            // A database written by release 0.2.0 (read through #filePath).
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WebSocketProtocolTests", dependencies: ["WebSocketProtocol", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ZlibTests", dependencies: ["Zlib", "WebSocketProtocol"], swiftSettings: strict),
        .testTarget(
            name: "WebSocketClientTests",
            dependencies: [
                "WebSocketClient", "WebSocketProtocol", "Config", "EventLoop", "MonotonicTime", "TLS", "TestSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WorldTests", dependencies: ["World", "MonotonicTime", "WebSocketProtocol"], swiftSettings: strict),
        .testTarget(
            name: "FleetCoreTests", dependencies: ["FleetCore", "World", "MonotonicTime"], swiftSettings: strict),
        .testTarget(
            name: "HostingCoreTests",
            dependencies: ["HostingCore", "World", "MonotonicTime", "WebSocketProtocol"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "HostRuntimeTests",
            dependencies: [
                "HostRuntime", "HostingCore", "World", "EventLoop", "WebSocketClient", "WebSocketProtocol",
                "TestSupport",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EventLoopTests", dependencies: ["EventLoop", "MonotonicTime", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SystemdTests",
            dependencies: ["Systemd", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DaemonTests",
            // Depends on the executable so that `swift test` builds it: these
            // tests run the real binary.
            dependencies: [
                "Daemon", "Config", "Control", "HostingCore", "JSONValue", "TestSupport", "WebSocketProtocol", "World",
                "wshostd", "wshostctl",
            ],
            swiftSettings: strict
        ),
    ]
)
