import ArgumentParser
import Control

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's state: version, world counts, records by state, config.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run(.status) { result in
            let states = (result["recordStates"]?.objectValue ?? [:]).sorted { $0.key < $1.key }
                .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            Output.block([
                (
                    "daemon",
                    "wshostd \(Output.text(result["daemon"])) (protocol \(Output.text(result["protocol"])), pid \(Output.text(result["pid"])))"
                ),
                ("state", Output.text(result["state"])),
                ("status", Output.text(result["status"])),
                (
                    "world",
                    "\(Output.text(result["sessions"])) sessions, \(Output.text(result["users"])) users, \(Output.text(result["objects"])) objects"
                ),
                (
                    "records",
                    "\(Output.text(result["records"])) (\(states.isEmpty ? "none" : states))"
                ),
                (
                    "config",
                    "\(Output.text(result["configFile"])) (generation \(Output.text(result["configGeneration"])))"
                ),
                ("last reload error", Output.text(result["lastReloadError"])),
                ("control clients", Output.text(result["controlClients"])),
                ("events", "last seq \(Output.text(result["eventSeq"])) (epoch \(Output.text(result["epoch"])))"),
            ])
        }
    }
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the daemon's metrics as Prometheus text (docs/operations.md).",
        discussion:
            "The same text [metrics] listen serves at /metrics, read over the control socket (no listener needed).")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run(.metrics) { result in
            if case .string(let text)? = result["text"] { Output.raw(text) }
        }
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload the config file (like SIGHUP): applied only when valid.",
        discussion: "A refused reload keeps the running configuration; the reason is printed and the exit status is 1.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run(.reload) { result in
            Output.print("configuration reloaded (generation \(Output.text(result["configGeneration"])))")
        }
    }
}
