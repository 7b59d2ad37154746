import ArgumentParser
import Control
import World

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print recent events, or follow the live stream.",
        discussion: """
            Each line: SEQ TIME TYPE SESSION/OBJECT and the event's fields. Without --since the \
            events still kept are printed; --since SEQ prints those after SEQ (fails when they \
            are no longer kept). --follow keeps printing live events. Types: \
            \(ControlEventType.allCases.map(\.rawValue).joined(separator: ", ")).
            """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Only this session's events.", completion: Complete.sessions) var session: String?
    @Option(help: "Only this object's events.", completion: Complete.objectsOfSessionOption) var object: String?
    @Option(help: "Only events of this type (repeatable).") var type: [String] = []
    @Flag(help: "Keep printing live events until interrupted.") var follow = false
    @Option(help: "Only events after this sequence number.") var since: Int?

    func run() throws {
        do throws(CommandFailure) {
            let connection = try Connection(path: SocketPath.resolve(global.socket))
            let command = try CommandFailure.refusing { () throws(ControlError) in
                var filter = EventFilter(session: session.map { SessionID($0) }, object: object.map { ObjectID($0) })
                for name in type { filter.types.insert(try ControlValue.eventType(name)) }
                return ControlCommand.subscribe(filter, since: since ?? 0)
            }
            let result = try connection.request(command)
            var remaining = result["backlog"]?.intValue ?? 0
            while follow || remaining > 0, let event = try connection.nextEvent() {
                remaining -= 1
                Output.print(global.json ? event.description : Output.event(event))
                Output.flush()
            }
        } catch {
            Output.error(error.message)
            throw ExitCode(error.status)
        }
    }
}
