import Foundation
import Glibc
import TestSupport
import Testing

/// The names a Tab completes come from the running daemon, through the
/// entry point the generated bash, zsh and fish scripts call:
/// `wshostctl ---completion SUBCOMMANDS -- ARGUMENT WORD-INDEX CURSOR WORDS…`.
@Suite("shell completion asks the running daemon", .serialized)
struct CompletionTests {
    static let world = """
        [[users]]
        id = "ann"

        [[users]]
        id = "bob"

        [[sessions]]
        id = "lobby"
        host = "ann"

        [[sessions.objects]]
        id = "door"

        [[sessions.objects]]
        id = "desk"

        [[sessions]]
        id = "loft"
        host = "bob"

        [[sessions.objects]]
        id = "lamp"
        """

    /// Completes the last of `words` (the command line as the shell split
    /// it, after `wshostctl`), or `words[at]`, for `argument` of `command`.
    static func complete(
        _ command: [String], _ argument: String, _ words: [String], at: Int? = nil, socket: String
    ) throws -> (status: Int32, names: [String], stderr: String) {
        let line = ["wshostctl"] + words
        let index = at.map { $0 + 1 } ?? line.count - 1
        let out = try ChildProcess.run(
            "wshostctl",
            ["---completion"] + command + ["--", argument, String(index), String(line[index].count)] + line,
            environment: ["WSHOSTCTL_SOCKET": socket])
        return (out.status, out.stdout.split(separator: "\n").map(String.init), out.stderr)
    }

    @Test("sessions, users and a session's objects, filtered by what was typed")
    func namesFromTheDaemon() throws {
        let daemon = try ControlledDaemon(Self.world)
        defer { _ = daemon.stop() }
        let socket = daemon.socket
        var out = try Self.complete(["sessions", "show"], "positional@0", ["sessions", "show", ""], socket: socket)
        #expect(out.status == 0 && out.stderr.isEmpty)
        #expect(out.names == ["lobby", "loft"])
        out = try Self.complete(["sessions", "show"], "positional@0", ["sessions", "show", "lob"], socket: socket)
        #expect(out.names == ["lobby"])
        // The object is completed in the session typed before it.
        out = try Self.complete(
            ["objects", "show"], "positional@1", ["objects", "show", "lobby", ""], socket: socket)
        #expect(out.names == ["desk", "door"])
        out = try Self.complete(
            ["objects", "show"], "positional@1", ["objects", "show", "loft", ""], socket: socket)
        #expect(out.names == ["lamp"])
        out = try Self.complete(
            ["objects", "wear"], "positional@2", ["objects", "wear", "lobby", "door", "b"], socket: socket)
        #expect(out.names == ["bob"])
        // Options: --session and --object of events, --host of sessions start.
        out = try Self.complete(
            ["events"], "--object", ["events", "--session", "loft", "--object", ""], socket: socket)
        #expect(out.names == ["lamp"])
        out = try Self.complete(
            ["sessions", "start"], "--host", ["sessions", "start", "x", "--host", ""], socket: socket)
        #expect(out.names.contains("ann") && out.names.contains("bob"))
        // --socket on the line wins over the environment.
        let elsewhere = try Self.complete(
            ["sessions", "show"], "positional@0", ["sessions", "show", "--socket", socket, ""],
            socket: daemon.directory + "/absent.sock")
        #expect(elsewhere.names == ["lobby", "loft"])
        // A change is seen at the next Tab.
        #expect(try daemon.ctl(["sessions", "start", "attic"]).status == 0)
        out = try Self.complete(["users", "join"], "positional@0", ["users", "join", "a"], socket: socket)
        #expect(out.names == ["attic"])
    }

    @Test("options anywhere on the line, as each shell splits them")
    func optionsOnTheLine() throws {
        let daemon = try ControlledDaemon(Self.world)
        defer { _ = daemon.stop() }
        let socket = daemon.socket
        let absent = daemon.directory + "/absent.sock"
        // A flag between the session and the object.
        var out = try Self.complete(
            ["objects", "show"], "positional@1", ["objects", "show", "lobby", "--json", ""], socket: socket)
        #expect(out.names == ["desk", "door"])
        // An option with its value between them.
        out = try Self.complete(
            ["objects", "show"], "positional@1", ["objects", "show", "loft", "--socket", socket, ""], socket: absent)
        #expect(out.names == ["lamp"])
        // bash splits --socket=PATH into three words; zsh and fish keep one.
        out = try Self.complete(
            ["sessions", "show"], "positional@0", ["sessions", "show", "--socket", "=", socket, ""], socket: absent)
        #expect(out.names == ["lobby", "loft"])
        out = try Self.complete(
            ["sessions", "show"], "positional@0", ["sessions", "show", "--socket=" + socket, ""], socket: absent)
        #expect(out.names == ["lobby", "loft"])
        // The last --socket wins, as it does when the command runs.
        out = try Self.complete(
            ["sessions", "show"], "positional@0", ["sessions", "show", "--socket", absent, "--socket", socket, ""],
            socket: absent)
        #expect(out.names == ["lobby", "loft"])
        // An option typed after the word completed counts too.
        out = try Self.complete(
            ["objects", "show"], "positional@1", ["objects", "show", "lobby", "", "--socket", socket], at: 3,
            socket: absent)
        #expect(out.names == ["desk", "door"])
        // events --object needs --session, in either spelling.
        out = try Self.complete(["events"], "--object", ["events", "--object", ""], socket: socket)
        #expect(out.names.isEmpty)
        out = try Self.complete(["events"], "--object", ["events", "--session=loft", "--object", ""], socket: socket)
        #expect(out.names == ["lamp"])
        out = try Self.complete(
            ["events"], "--object", ["events", "--session", "=", "lobby", "--object", "d"], socket: socket)
        #expect(out.names == ["desk", "door"])
    }

    @Test("every option that takes a value is read with its value; a new object's id is not completed")
    func parserAgreement() throws {
        let dump = try ChildProcess.run("wshostctl", ["--experimental-dump-help"])
        #expect(dump.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8))
        var options = Set<String>()
        func walk(_ value: Any) {
            if let object = value as? [String: Any] {
                if object["kind"] as? String == "option", let names = object["names"] as? [[String: Any]] {
                    for case let name? in names.map({ $0["name"] as? String }) where name.count > 1 {
                        options.insert("--" + name)
                    }
                }
                object.values.forEach(walk)
            } else if let array = value as? [Any] {
                array.forEach(walk)
            }
        }
        walk(json)
        #expect(options.count > 10 && options.contains("--socket") && options.contains("--spawned-by"))

        // Each of them between the session and the object: the object is
        // still completed in that session, so its value was not taken for one.
        let daemon = try ControlledDaemon(Self.world)
        defer { _ = daemon.stop() }
        for option in options.sorted() {
            let value = option == "--socket" ? daemon.socket : "x"
            let out = try Self.complete(
                ["objects", "show"], "positional@1", ["objects", "show", "lobby", option, value, ""],
                socket: daemon.socket)
            #expect(out.names == ["desk", "door"], "\(option) is not in Complete.valueOptions")
        }

        let bash = try ChildProcess.run("wshostctl", ["--generate-completion-script", "bash"])
        #expect(bash.stdout.contains("---completion objects show -- positional@1"))
        #expect(!bash.stdout.contains("---completion objects spawn -- positional@1"))
    }

    @Test("no daemon, or a daemon that never answers: nothing completed, no message, within the timeout")
    func silentWithoutADaemon() throws {
        var template = Array("/tmp/wshostd-completion-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        let directory = String(cString: made)
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }

        let absent = try Self.complete(
            ["sessions", "show"], "positional@0", ["sessions", "show", ""], socket: directory + "/absent.sock")
        #expect(absent.status == 0 && absent.names.isEmpty && absent.stderr.isEmpty)

        // A socket that accepts connections (the kernel's backlog) but never reads or answers.
        let stuck = directory + "/stuck.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: stuck.utf8)
            raw[stuck.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0 && listen(fd, 8) == 0)
        let start = ContinuousClock.now
        let out = try Self.complete(["sessions", "show"], "positional@0", ["sessions", "show", ""], socket: stuck)
        let took = ContinuousClock.now - start
        #expect(out.status == 0 && out.names.isEmpty && out.stderr.isEmpty)
        #expect(took >= .milliseconds(900), "gave up before its 1 s timeout: \(took)")
        #expect(took < .seconds(5), "a Tab waited \(took) on a daemon that never answers")
    }
}
