import ArgumentParser
import Config
import Control
import Glibc
import World

struct WS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws",
        abstract: "An object's WebSocket Client record: show, set fields, Connect, send, disconnect.",
        subcommands: [Show.self, Set.self, Connect.self, Send.self, Disconnect.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the record's fields (reference names) and status.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        func run() throws { try global.run(.wsShow(address.record)) { Output.record($0["record"]!) } }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set record fields; gives the object a record if it has none.",
            discussion: "A change of URL or Enabled restarts the record (closes, then connects again through consent).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        @Option(help: "URL: ws:// or wss:// (\"\" clears).") var url: String?
        @Option(name: .customLong("access-reason"), help: "AccessReason, shown in consent prompts.") var accessReason:
            String?
        @Option(
            name: .customLong("retry-interval"),
            help:
                "ConnectRetryInterval: a duration as in the config (\"10s\", \"250ms\", \"1m30s\") or seconds (\"10\", \"0.5\").",
            transform: { text in
                if let seconds = Double(text), seconds.isFinite { return seconds }
                guard let duration = Units.duration(text) else {
                    throw ValidationError("\"\(text)\" is not a duration such as \"10s\", \"250ms\" or \"1m30s\"")
                }
                return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            })
        var retryInterval: Double?
        @Option(help: "Enabled: true or false.") var enabled: Bool?
        @Option(
            help: ArgumentHelp(
                "permessage-deflate for this record: off, on, an offer such as \"permessage-deflate; server_max_window_bits=10\", or inherit ([websocket] compression). Takes effect at the next connection.",
                valueName: "setting"), completion: Complete.compression)
        var compression: String?
        func run() throws {
            try global.run(
                building: { () throws(ControlError) in
                    var patch = ControlCommand.RecordPatch(accessReason: accessReason, enabled: enabled)
                    if let compression {
                        patch.compression =
                            compression == "inherit"
                            ? .some(nil) : .some(try ControlValue.compression(compression, key: "compression"))
                    }
                    if let url { patch.url = .some(try ControlValue.url(url, key: "url")) }
                    if let retryInterval {
                        patch.connectRetryInterval = try ControlValue.retryInterval(seconds: retryInterval)
                    }
                    return .wsSet(address.record, patch)
                }, human: { Output.record($0["record"]!) })
        }
    }

    struct Connect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Websocket Connect node: set URL and HandlingUser, then connect.",
            discussion:
                "Without --url the current URL stays; without --user the handling user is automatic (worn by → defined user → spawned by → interacting user → session host). Returns at once; connecting happens through consent and the lifecycle."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        @Option(help: "The URL (ws:// or wss://).") var url: String?
        @Option(help: "Pin the handling user.", completion: Complete.users) var user: String?
        func run() throws {
            try global.run(
                building: { () throws(ControlError) in
                    .wsConnect(
                        address.record,
                        url: try url.flatMap { text throws(ControlError) in try ControlValue.url(text, key: "url") },
                        user: user.map { UserID($0) })
                },
                human: {
                    Output.record($0["record"]!)
                })
        }
    }

    struct Send: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Text Message Sender (or binary): OnSent, or OnSendError with the reason (exit 1).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        @Option(help: "A text message.") var text: String?
        @Option(
            name: .customLong("binary-file"), help: "Send this file's bytes as one binary message.", completion: .file()
        )
        var binaryFile: String?
        func validate() throws {
            guard (text == nil) != (binaryFile == nil) else {
                throw ValidationError("give exactly one of --text or --binary-file")
            }
        }
        func run() throws {
            var payload = Payload.text(text ?? "")
            if let binaryFile {
                guard let bytes = readFile(binaryFile) else {
                    Output.error("cannot read \(binaryFile): \(String(cString: strerror(errno)))")
                    throw ExitCode(Exit.usage)
                }
                payload = .binary(bytes)
            }
            try global.run(.wsSend(address.record, payload)) { _ in Output.print("sent") }
        }
    }

    struct Disconnect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disconnect now (Close 1000); the record stays down until Connect or a field change.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        func run() throws {
            try global.run(.wsDisconnect(address.record)) { result in
                Output.print("\(address.session)/\(address.object): \(Output.text(result["record"]?["state"]))")
            }
        }
    }
}
