import ArgumentParser
import Control
import World

struct Users: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Users: list, add, show a consent token; join, leave, kick, make host.",
        subcommands: [List.self, Add.self, Token.self, Join.self, Leave.self, Kick.self, Host.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users (all, or those present in a session).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only the users present in this session.", completion: Complete.sessions) var session: String?
        func run() throws {
            try global.run(.usersList(session: session.map { SessionID($0) })) { result in
                let rows = (result["users"]?.arrayValue ?? []).map { u in
                    [Output.text(u["id"]), Output.text(u["name"]), Output.text(u["kind"]), Output.text(u["sessions"])]
                }
                Output.table(["USER", "NAME", "KIND", "SESSIONS"], rows)
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user.",
            discussion:
                "Headless users are never prompted: unknown hosts are denied for them. Interactive users are asked through their consent channel (wshostctl consent watch)."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The new user's id.") var user: String
        @Option(help: "A display name (default: the id).") var name: String?
        @Option(help: "headless or interactive.", completion: Complete.userKinds) var kind: String = "headless"
        func run() throws {
            try global.run(
                building: { () throws(ControlError) in
                    .usersAdd(UserID(user), name: name, kind: try ControlValue.userKind(kind))
                },
                human: { r in
                    let u = r["user"]!
                    Output.print("user \(Output.text(u["id"])) added (\(Output.text(u["kind"])))")
                })
        }
    }

    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a user's consent token (generated and stored on first use).",
            discussion:
                "Give the token to the user: with it they can run `wshostctl consent watch` and answer their own prompts. Operators only."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        func run() throws {
            try global.run(.usersToken(UserID(user))) { Output.print(Output.text($0["token"])) }
        }
    }

    struct Join: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A user joins a session (handling users are re-resolved).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        func run() throws { try sessionChange(global, .usersJoin(SessionID(session), UserID(user)), "joined") }
    }

    struct Leave: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A user leaves a session (their records fail over).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        func run() throws { try sessionChange(global, .usersLeave(SessionID(session), UserID(user)), "left") }
    }

    struct Kick: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a user from a session (logged as a kick, with who kicked).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        func run() throws { try sessionChange(global, .usersKick(SessionID(session), UserID(user)), "kicked from") }
    }

    struct Host: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a user the session's host (the last fallback of the handling-user rule).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        func run() throws { try sessionChange(global, .usersHost(SessionID(session), UserID(user)), "now hosts") }
    }

    static func sessionChange(_ global: GlobalOptions, _ command: ControlCommand, _ verb: String) throws {
        let (session, user) =
            switch command {
            case .usersJoin(let s, let u), .usersLeave(let s, let u), .usersKick(let s, let u),
                .usersHost(let s, let u):
                (s, u)
            default: preconditionFailure("not a session change")
            }
        try global.run(command) { _ in Output.print("\(user) \(verb) \(session)") }
    }
}
