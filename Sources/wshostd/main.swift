import ArgumentParser
import Config
import Daemon
import EventLoop
import Foundation

/// `wshostd`: the session-host daemon. Reads like a checklist: block the
/// handled signals, read the config, set up logging, start the daemon on the
/// loop, and park the main thread (see `parkMainThread`).
struct Wshostd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wshostd",
        abstract: "Headless session-host daemon: WebSocket Client records on one Dispatch event loop.",
        discussion: """
            Runs in the foreground; under systemd as a Type=notify service. Without \
            --config it reads $CONFIGURATION_DIRECTORY/wshostd.toml when systemd sets \
            that variable, else /etc/wshostd/wshostd.toml (an absent default file means \
            all defaults). SIGHUP reloads the config; SIGTERM or SIGINT stops. An invalid \
            config exits with status 78 (EX_CONFIG).
            """,
        version: BuildInfo.version
    )

    @Option(name: .long, help: ArgumentHelp("Path of the TOML config file.", valueName: "path"))
    var config: String?

    @Flag(name: .long, help: "Validate the config file, print the result and exit (0 valid, 78 invalid).")
    var checkConfig = false

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let path = config ?? ConfigFile.implicitPath(environment: environment)
        let loaded: DaemonConfig
        do {
            loaded = try ConfigFile.load(path, missingIsDefault: config == nil)
        } catch {
            FileHandle.standardError.write(Data("wshostd: invalid configuration:\n\(error.description)\n".utf8))
            throw ExitCode(78)
        }
        if checkConfig {
            print("wshostd: \(path): configuration OK")
            return
        }
        let backend = LogSetup.bootstrap(loaded.log)
        let implicit = config == nil
        Task { @LoopActor in
            Daemon(config: loaded, configPath: path, configPathIsImplicit: implicit, logBackend: backend).start()
        }
        parkMainThread()
    }
}

HeapArenas.limit(environment: ProcessInfo.processInfo.environment)  // before any thread starts
SignalWatcher.blockInAllThreads(Daemon.handledSignals)
signal(SIGPIPE, SIG_IGN)  // socket errors are handled where they happen
Wshostd.main()
