import ArgumentParser
import Daemon

/// `wshostctl`: the control CLI. The control socket and its commands arrive
/// with the control protocol; until then it reports its version only.
struct Wshostctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wshostctl",
        abstract: "Control a running wshostd.",
        discussion:
            "The control commands (status, sessions, users, objects, ws, consent, events, reload) are not built yet.",
        version: BuildInfo.version
    )
}

Wshostctl.main()
