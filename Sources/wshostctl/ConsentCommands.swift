import ArgumentParser
import Control
import Glibc
import JSONValue
import World

struct Consent: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A user's consent: watch and answer prompts, list and forget decisions.",
        discussion:
            "Watching and answering need the user's token (--token, $WSHOSTCTL_TOKEN; operators without one get it from the daemon).",
        subcommands: [Watch.self, Answer.self, List.self, Forget.self])

    struct TokenOption: ParsableArguments {
        @Option(help: "The user's consent token (default: $WSHOSTCTL_TOKEN, else asked of the daemon, operators only).")
        var token: String?

        func resolve(_ connection: Connection, user: String) throws(CommandFailure) -> String {
            if let token { return token }
            if let value = getenv("WSHOSTCTL_TOKEN"), value.pointee != 0 { return String(cString: value) }
            return try connection.request(.usersToken(UserID(user)))["token"]?.stringValue ?? ""
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Act as the user's consent channel: prompts are printed, answers read from stdin.",
            discussion: """
                Each prompt shows the asking object and session, host:port, scope and reason. Type \
                allow, deny or ignore (for the latest prompt) or "ID allow". Allow and deny are stored \
                before they take effect; ignore is not stored (the next attempt asks again). The \
                command ends at the end of its input. With --json, prompts are printed as JSON lines.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        @OptionGroup var token: TokenOption

        func run() throws {
            do throws(CommandFailure) {
                let connection = try Connection(path: SocketPath.resolve(global.socket))
                let secret = try token.resolve(connection, user: user)
                let result = try connection.request(.consentWatch(UserID(user), token: secret))
                var latest: Int?
                func show(_ prompt: JSON) {
                    latest = prompt["prompt"]?.intValue
                    Output.print(global.json ? JSON.object(["prompt": prompt]).description : Output.prompt(prompt))
                    Output.flush()
                }
                if !global.json { Output.print("watching consent prompts for \(user)") }
                for prompt in result["pending"]?.arrayValue ?? [] { show(prompt) }
                Output.flush()
                while true {
                    if !connection.hasBufferedInput {
                        var fds = [
                            pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0),
                            pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                        ]
                        let ready = poll(&fds, nfds_t(fds.count), -1)
                        if ready < 0 && errno == EINTR { continue }
                        if fds[1].revents != 0 {
                            // End of input: the user is done answering.
                            guard let line = readLine() else { return }
                            try answer(line, latest: latest, connection: connection, secret: secret)
                            continue
                        }
                    }
                    guard let event = try connection.nextEvent() else {
                        throw CommandFailure(status: Exit.unreachable, message: "wshostd closed the connection")
                    }
                    let type = event["type"]?.stringValue.flatMap(ControlEventType.init(rawValue:))
                    if type == .prompt, let prompt = event["prompt"] {
                        show(prompt)
                    } else if type == .promptDismissed {
                        Output.print(
                            global.json
                                ? event.description
                                : "prompt \(Output.text(event["prompt"])) withdrawn (no longer needed)")
                        Output.flush()
                    }
                }
            } catch {
                Output.error(error.message)
                throw ExitCode(error.status)
            }
        }

        private func answer(_ line: String, latest: Int?, connection: Connection, secret: String) throws(CommandFailure)
        {
            let words = line.split(separator: " ").map(String.init)
            guard !words.isEmpty else { return }
            var prompt = latest
            var verdict = words[0]
            if words.count == 2, let id = Int(words[0]) {
                prompt = id
                verdict = words[1]
            }
            guard let prompt, let answer = ConsentEngine.Answer(rawValue: verdict) else {
                Output.error("answer with allow, deny or ignore (or \"ID allow\")")
                return
            }
            do {
                _ = try connection.request(.consentAnswer(UserID(user), prompt: prompt, answer, token: secret))
                if !global.json { Output.print("prompt \(prompt): \(verdict)") }
            } catch  where error.status == Exit.refused {
                Output.error(error.message)
            }
            Output.flush()
        }
    }

    struct Answer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Answer one prompt as the user: allow, deny or ignore.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        @Argument(help: "The prompt id (shown by watch, list and events).") var request: Int
        @Argument(help: "allow, deny or ignore.", completion: Complete.answers) var answer: String
        @OptionGroup var token: TokenOption

        func run() throws {
            do throws(CommandFailure) {
                let connection = try Connection(path: SocketPath.resolve(global.socket))
                let secret = try token.resolve(connection, user: user)
                let verdict = try CommandFailure.refusing { () throws(ControlError) in try ControlValue.answer(answer) }
                let result = try connection.request(
                    .consentAnswer(UserID(user), prompt: request, verdict, token: secret))
                Output.print(global.json ? result.description : "prompt \(request): \(answer)")
            } catch {
                Output.error(error.message)
                throw ExitCode(error.status)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the user's decisions and pending prompts.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        @Option(help: "The user's token (needed by non-operators).") var token: String?
        func run() throws {
            try global.run(.consentList(UserID(user), token: token)) { result in
                let rows = (result["decisions"]?.arrayValue ?? []).map { d in
                    [
                        Output.text(d["hostPort"]), Output.text(d["scope"]), Output.text(d["verdict"]),
                        Output.text(d["reason"]),
                    ]
                }
                Output.table(["HOST:PORT", "SCOPE", "VERDICT", "REASON"], rows)
                for prompt in result["pending"]?.arrayValue ?? [] {
                    Output.print(
                        "pending: prompt \(Output.text(prompt["prompt"])) for \(Output.text(prompt["hostPort"])) from \(Output.text(prompt["session"]))/\(Output.text(prompt["object"]))"
                    )
                }
            }
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget a decision: the next attempt to that host asks again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        @Argument(help: "host:port (or a ws:// / wss:// URL).") var host: String
        @Option(help: "The user's token (needed by non-operators).") var token: String?
        func run() throws {
            try global.run(
                building: { () throws(ControlError) in
                    .consentForget(UserID(user), try ControlValue.accessKey(host), token: token)
                },
                human: { r in
                    Output.print("\(user) forgot \(Output.text(r["forgotten"]))")
                })
        }
    }
}
