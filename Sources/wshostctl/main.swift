import ArgumentParser
import Config
import Control
import Glibc
import JSONValue
import WebSocketProtocol
import World

/// `wshostctl`: operates a running wshostd over its control socket
/// (docs/control-protocol.md). Every command prints readable output, or the
/// daemon's JSON result with `--json`.
struct Wshostctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wshostctl",
        abstract: "Operate a running wshostd: worlds, records, consent, events.",
        discussion: """
            wshostctl talks to wshostd over its control socket (default \(SocketPath.default); \
            --socket or $WSHOSTCTL_SOCKET name another). Root, the daemon's own user and members \
            of the configured [control] group may operate it; a user's consent token lets its \
            holder watch and answer that user's prompts.

            EXIT STATUS
              0   success
              1   the daemon refused the request (its message is printed)
              2   usage error
              69  the daemon is unreachable (the socket path is printed)
            """,
        version: ReleaseVersion.current,
        subcommands: [
            Status.self, Metrics.self, Sessions.self, Users.self, Objects.self, WS.self, Events.self, Consent.self,
            Fleet.self, Reload.self,
        ]
    )
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The control socket (default: $WSHOSTCTL_SOCKET, else \(SocketPath.default)).", valueName: "path"),
        completion: .file())
    var socket: String?

    @Flag(name: .long, help: "Print the daemon's JSON result (stable field names) instead of readable output.")
    var json = false

    /// Sends one request and prints the result as JSON or with `human`.
    func run(_ command: ControlCommand, human: (JSON) -> Void) throws { try run(building: { command }, human: human) }

    /// Builds a request from values the CLI reads (a URL, a trigger), sends
    /// it, and prints the result. A value it cannot read is refused with the
    /// daemon's own message and exit status, after the daemon was reached (an
    /// unreachable daemon is said first, as when the daemon judged the values).
    func run(building build: () throws(ControlError) -> ControlCommand, human: (JSON) -> Void) throws {
        let result: JSON
        do throws(CommandFailure) {
            let connection = try Connection(path: SocketPath.resolve(socket))
            result = try connection.request(try CommandFailure.refusing(build))
        } catch {
            Output.error(error.message)
            throw ExitCode(error.status)
        }
        if json { Output.print(result.description) } else { human(result) }
    }

}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count < 0 { return nil }
        if count == 0 { return bytes }
        bytes += chunk[0..<count]
    }
}

/// Global options may come before the command (`wshostctl --json status`):
/// they are moved behind it, where the subcommands read them.
func reorderGlobalOptions(_ arguments: [String]) -> [String] {
    var leading: [String] = []
    var rest = arguments[...]
    while let first = rest.first, first.hasPrefix("--") {
        if first == "--json" || first.hasPrefix("--socket=") {
            leading.append(first)
            rest = rest.dropFirst()
        } else if first == "--socket", rest.count >= 2 {
            leading += rest.prefix(2)
            rest = rest.dropFirst(2)
        } else {
            break
        }
    }
    // A bare `wshostctl --json` keeps its options where ArgumentParser reports them.
    return rest.isEmpty ? arguments : Array(rest) + leading
}

// Usage errors exit 2 (the contract), not ArgumentParser's 64.
do {
    var command = try Wshostctl.parseAsRoot(reorderGlobalOptions(Array(CommandLine.arguments.dropFirst())))
    try command.run()
} catch {
    let code = Wshostctl.exitCode(for: error)
    if code == .validationFailure {
        var message = Wshostctl.fullMessage(for: error)
        if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
        Output.error(message)
        exit(Exit.usage)
    }
    Wshostctl.exit(withError: error)
}
