import ArgumentParser
import Control
import JSONValue
import World

struct Objects: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Objects in a session: spawn, remove, wear, grab, define a user, reactions.",
        subcommands: [
            List.self, Show.self, Spawn.self, Remove.self, Wear.self, Unwear.self, Grab.self, Release.self,
            DefineUser.self, React.self, Reactions.self, Unreact.self,
        ])

    struct Address: ParsableArguments {
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        @Argument(help: "The object id.", completion: Complete.objects) var object: String
        var record: RecordAddress { RecordAddress(session: SessionID(session), object: ObjectID(object)) }
    }

    /// The address of an object to be created: its id is new, so not completed.
    struct NewAddress: ParsableArguments {
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        @Argument(help: "The new object's id.") var object: String
        var record: RecordAddress { RecordAddress(session: SessionID(session), object: ObjectID(object)) }
    }

    static func print(_ object: JSON) {
        Output.block([
            ("object", "\(Output.text(object["session"]))/\(Output.text(object["id"]))"),
            ("name", Output.text(object["name"])), ("worn by", Output.text(object["wornBy"])),
            ("defined user", Output.text(object["definedUser"])), ("spawned by", Output.text(object["spawnedBy"])),
            ("interacting user", Output.text(object["interactingUser"])),
            (
                "reactions",
                (object["reactions"]?.arrayValue ?? []).map { Output.reaction($0).joined(separator: " → ") }.joined(
                    separator: "; ")
            ),
        ])
        if let record = object["record"], record != .null {
            Output.print("")
            Output.record(record)
        } else {
            Output.print("record:           none")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a session's objects with their record's state.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.", completion: Complete.sessions) var session: String
        func run() throws {
            try global.run(.objectsList(SessionID(session))) { result in
                let rows = (result["objects"]?.arrayValue ?? []).map { o -> [String] in
                    let record = o["record"]
                    return [
                        Output.text(o["id"]), Output.text(o["name"]), Output.text(record?["state"]),
                        Output.text(record?["handlingUser"]), Output.text(record?["url"]),
                    ]
                }
                Output.table(["OBJECT", "NAME", "STATE", "HANDLING-USER", "URL"], rows)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show an object, its relations, reactions and record.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws { try global.run(.objectsShow(address.record)) { Objects.print($0["object"]!) } }
    }

    struct Spawn: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Spawn an object (without a record; give it one with `ws set` or `ws connect`).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: NewAddress
        @Option(help: "A display name (default: the id).") var name: String?
        @Option(
            name: .customLong("spawned-by"), help: "The user who spawned it (third in the handling-user rule).",
            completion: Complete.users)
        var spawnedBy: String?
        func run() throws {
            try global.run(.objectsSpawn(address.record, name: name, spawnedBy: spawnedBy.map { UserID($0) })) { _ in
                Output.print("object \(address.session)/\(address.object) spawned")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an object (its socket is torn down).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws {
            try global.run(.objectsRemove(address.record)) { _ in
                Output.print("object \(address.session)/\(address.object) removed")
            }
        }
    }

    struct Wear: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A user wears the object (first in the handling-user rule).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        func run() throws { try change(global, .objectsWear(address.record, UserID(user)), address) }
    }

    struct Unwear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Nobody wears the object.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws { try change(global, .objectsWear(address.record, nil), address) }
    }

    struct Grab: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A user grabs the object (the interacting user, fourth in the rule).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Argument(help: "The user id.", completion: Complete.users) var user: String
        func run() throws { try change(global, .objectsGrab(address.record, UserID(user)), address) }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Nobody interacts with the object.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws { try change(global, .objectsGrab(address.record, nil), address) }
    }

    struct DefineUser: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "define-user",
            abstract: "Set (or clear with --none) the object's defined user (second in the rule).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Argument(help: "The user id.", completion: Complete.users) var user: String?
        @Flag(help: "No defined user.") var none = false
        func validate() throws {
            guard (user == nil) != !none else { throw ValidationError("give a user id or --none (not both)") }
        }
        func run() throws {
            try change(global, .objectsDefineUser(address.record, user.map { UserID($0) }), address)
        }
    }

    static func change(_ global: GlobalOptions, _ command: ControlCommand, _ address: Address) throws {
        try global.run(command) { result in
            let object = result["object"]!
            let record = object["record"]
            Output.print(
                "\(address.session)/\(address.object): handling user \(Output.text(record?["handlingUser"])), state \(Output.text(record?["state"]))"
            )
        }
    }

    struct React: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a reaction: on an event, echo, send a text, or forward to another object.",
            discussion: "In --send templates, {data} is replaced with the received text.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Option(help: "connected, received or disconnected.", completion: Complete.reactionEvents) var on: String
        @Flag(help: "Send the received message back unchanged.") var echo = false
        @Option(help: "Send this text ({data} = the received text).") var send: String?
        @Option(help: "Send the received message through this object's record.") var forward: String?
        func validate() throws {
            guard [echo ? 1 : 0, send == nil ? 0 : 1, forward == nil ? 0 : 1].reduce(0, +) == 1 else {
                throw ValidationError("give exactly one of --echo, --send TEMPLATE, --forward OBJECT")
            }
        }
        func run() throws {
            let effect: Reaction.Effect =
                if let send { .send(template: send) } else if let forward { .forward(to: ObjectID(forward)) } else {
                    .echo
                }
            try global.run(
                building: { () throws(ControlError) in
                    .objectsReact(address.record, Reaction(on: try ControlValue.trigger(on, key: "on"), effect))
                },
                human: { result in
                    Output.table(["ON", "EFFECT"], (result["reactions"]?.arrayValue ?? []).map(Output.reaction))
                })
        }
    }

    struct Reactions: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the object's reactions.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws {
            try global.run(.objectsReactions(address.record)) { result in
                Output.table(["ON", "EFFECT"], (result["reactions"]?.arrayValue ?? []).map(Output.reaction))
            }
        }
    }

    struct Unreact: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the object's reactions (all, or those on one event).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Option(help: "Only reactions on this event.", completion: Complete.reactionEvents) var on: String?
        func run() throws {
            try global.run(
                building: { () throws(ControlError) in
                    .objectsUnreact(
                        address.record,
                        on: try on.map { text throws(ControlError) in try ControlValue.trigger(text, key: "on") })
                },
                human: { result in
                    Output.print("\(Output.text(result["removed"])) reactions removed")
                })
        }
    }
}
