import ArgumentParser
import Control
import JSONValue
import World

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, start and close sessions (worlds).",
        subcommands: [List.self, Show.self, Start.self, Close.self])

    static func print(_ session: JSON) {
        Output.block([
            ("session", Output.text(session["id"])), ("name", Output.text(session["name"])),
            ("host", Output.text(session["host"])), ("present", Output.text(session["present"])),
            ("objects", Output.text(session["objects"])),
        ])
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the sessions.")
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try global.run(.sessionsList) { result in
                let rows = (result["sessions"]?.arrayValue ?? []).map { s in
                    [
                        Output.text(s["id"]), Output.text(s["name"]), Output.text(s["host"]), Output.text(s["present"]),
                        String(s["objects"]?.arrayValue?.count ?? 0),
                    ]
                }
                Output.table(["SESSION", "NAME", "HOST", "PRESENT", "OBJECTS"], rows)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one session.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        func run() throws {
            try global.run(.sessionsShow(SessionID(session))) { Sessions.print($0["session"]!) }
        }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a session.",
            discussion: "Without --host the session is hosted by the daemon's own headless user \"wshostd\".")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The new session's id (letters, digits, ._:@-).") var session: String
        @Option(help: "A display name (default: the id).") var name: String?
        @Option(help: "The hosting user (present from the start).", completion: Complete.users) var host: String?
        func run() throws {
            try global.run(.sessionsStart(SessionID(session), name: name, host: host.map { UserID($0) })) {
                Sessions.print($0["session"]!)
            }
        }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close a session: every record in it disconnects and its objects are removed.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        func run() throws {
            try global.run(.sessionsClose(SessionID(session))) { _ in
                Output.print("session \(session) closed")
            }
        }
    }
}
