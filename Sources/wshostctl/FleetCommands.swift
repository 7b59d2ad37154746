import ArgumentParser
import Control
import JSONValue
import World

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The fleet (docs/fleet.md): hosts, leases, who holds which session; drain, move.",
        discussion:
            "Any host of a fleet answers for the whole fleet, from the database. A host that is not in a fleet answers not_found.",
        subcommands: [Show.self, Drain.self, Undrain.self, Move.self],
        defaultSubcommand: Show.self)

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the hosts with their leases and sessions, and who holds each session.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Leave out the list of sessions.") var hostsOnly = false
        func run() throws {
            try global.run(.fleetShow) { result in
                let hosts = (result["hosts"]?.arrayValue ?? []).map { h in
                    let state =
                        h["live"]?.boolValue == true
                        ? (h["draining"]?.boolValue == true ? "draining" : "live") : "expired"
                    return [
                        Output.text(h["id"]) + (h["this"]?.boolValue == true ? " *" : ""), Output.text(h["epoch"]),
                        state, Output.text(h["leaseLeft"]) + "s", Output.text(h["sessions"]),
                        h["maxSessions"]?.intValue == 0 ? "-" : Output.text(h["maxSessions"]),
                    ]
                }
                Output.table(["HOST", "EPOCH", "STATE", "LEASE LEFT", "SESSIONS", "MAX"], hosts)
                guard !hostsOnly else { return }
                Output.print("")
                let sessions = (result["sessions"]?.arrayValue ?? []).map { s in
                    [
                        Output.text(s["session"]), Output.text(s["records"]),
                        s["holder"]?.stringValue ?? "(none)", Output.text(s["fence"]),
                        s["pinnedTo"]?.stringValue ?? "-",
                    ]
                }
                Output.table(["SESSION", "RECORDS", "HOLDER", "FENCE", "PINNED TO"], sessions)
            }
        }
    }

    struct Drain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drain a host: it hands every session over (claim_batch a round) and claims none.",
            discussion: "The host stays a member; `wshostctl fleet undrain` lets it take sessions again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The host's id ([fleet] host_id).") var host: String
        func run() throws {
            try global.run(.fleetDrain(host: host, true)) { _ in Output.print("host \(host) draining") }
        }
    }

    struct Undrain: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a drained host take sessions again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The host's id ([fleet] host_id).") var host: String
        func run() throws {
            try global.run(.fleetDrain(host: host, false)) { _ in Output.print("host \(host) takes sessions again") }
        }
    }

    struct Move: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a session to a host: its holder hands it over, and that host keeps it.",
            discussion:
                "The session stays pinned to the host (never handed on for balance) until it is moved again, or the host drains or dies."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        @Argument(help: "The host's id ([fleet] host_id).") var host: String
        func run() throws {
            try global.run(.fleetMove(SessionID(session), host: host)) { result in
                let from = result["from"]?.stringValue.map { " from \($0)" } ?? ""
                Output.print("session \(session) moving\(from) to \(host)")
            }
        }
    }
}
