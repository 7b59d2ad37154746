import JSONValue

/// The control protocol's envelope (docs/control-protocol.md): one JSON object
/// per line each way. Requests `{"id", "op", "args"}`; responses
/// `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": {"code", "message"}}`;
/// stream lines `{"event": {...}}`.
public enum ControlProtocol {
    /// Bumped when a change would break existing clients; `hello` reports it.
    public static let version = 1

    /// Longest request line accepted by default (bytes, without the newline).
    public static let defaultMaxLine = 64 << 10
}

/// A request id: a number or a string chosen by the client, echoed in the response.
public enum RequestID: Equatable, Sendable, CustomStringConvertible {
    case number(Double)
    case string(String)

    public var json: JSON {
        switch self {
        case .number(let value): return .number(value)
        case .string(let value): return .string(value)
        }
    }

    public var description: String { json.description }
}

/// Why a request failed; `code` is stable, `message` is for people.
public struct ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Equatable, Sendable, CaseIterable {
        /// The line is not JSON.
        case parseError = "parse_error"
        /// JSON, but not a request object (no `op`, an `id` of the wrong type, …).
        case invalidRequest = "invalid_request"
        case unknownOp = "unknown_op"
        /// Missing, unknown or mistyped arguments.
        case invalidArgs = "invalid_args"
        /// The session, user, object, record or prompt does not exist.
        case notFound = "not_found"
        /// It exists already.
        case conflict
        /// The peer may not do this (not an operator; wrong or missing token).
        case forbidden
        /// The line is longer than the daemon accepts.
        case lineTooLong = "line_too_long"
        /// The daemon is at its client limit.
        case tooManyClients = "too_many_clients"
        /// The daemon is stopping, or the state could not be stored.
        case unavailable
        /// The Text Message Sender reported OnSendError.
        case sendFailed = "send_failed"
        /// `since` is older than the event history kept.
        case historyGone = "history_gone"
        /// A configured limit refuses it (`[limits]`).
        case limitReached = "limit_reached"
        /// The config reload was refused (the running configuration stays).
        case reloadFailed = "reload_failed"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public var json: JSON { .object(["code": .string(code.rawValue), "message": .string(message)]) }
}

/// A response line.
public enum ControlResponse: Equatable, Sendable {
    case success(id: RequestID?, JSON)
    case failure(id: RequestID?, ControlError)

    public var json: JSON {
        switch self {
        case .success(let id, let result):
            return .object(["id": id?.json ?? .null, "ok": .bool(true), "result": result])
        case .failure(let id, let error):
            return .object(["id": id?.json ?? .null, "ok": .bool(false), "error": error.json])
        }
    }

    /// The line to write, newline included.
    public var line: String { json.description + "\n" }

    /// Reads a response line (the CLI's side).
    public static func parse(_ line: some Collection<UInt8>) -> ControlResponse? {
        guard let json = try? JSON.parse(line), let ok = json["ok"]?.boolValue else { return nil }
        let id: RequestID? =
            switch json["id"] {
            case .number(let value)?: .number(value)
            case .string(let value)?: .string(value)
            default: nil
            }
        if ok { return .success(id: id, json["result"] ?? .null) }
        guard let error = json["error"], let code = error["code"]?.stringValue else { return nil }
        return .failure(
            id: id,
            ControlError(ControlError.Code(rawValue: code) ?? .invalidRequest, error["message"]?.stringValue ?? ""))
    }
}

/// A decoded request line.
public struct ControlRequest: Equatable, Sendable {
    public var id: RequestID?
    public var command: ControlCommand

    public init(id: RequestID?, command: ControlCommand) {
        self.id = id
        self.command = command
    }

    /// A line that is not a valid request, with its id when that could be read.
    public struct Rejected: Error, Equatable, Sendable {
        public var id: RequestID?
        public var error: ControlError

        public init(_ id: RequestID?, _ error: ControlError) {
            self.id = id
            self.error = error
        }
    }

    /// Decodes one line. A failure carries the request's id when it could be read,
    /// so the error response can still be matched.
    public static func decode(_ line: some Collection<UInt8>) -> Result<ControlRequest, Rejected> {
        let json: JSON
        do {
            json = try JSON.parse(line)
        } catch {
            return .failure(Rejected(nil, ControlError(.parseError, "malformed JSON: \(error)")))
        }
        guard case .object(let members) = json else {
            return .failure(Rejected(nil, ControlError(.invalidRequest, "a request is a JSON object")))
        }
        var id: RequestID?
        switch members["id"] {
        case nil, .null?: id = nil
        case .number(let value)?: id = .number(value)
        case .string(let value)?: id = .string(value)
        default: return .failure(Rejected(nil, ControlError(.invalidRequest, "\"id\" must be a number or a string")))
        }
        for key in members.keys where !["id", "op", "args", "v"].contains(key) {
            return .failure(Rejected(id, ControlError(.invalidRequest, "unknown request field \"\(key)\"")))
        }
        if let version = members["v"] {
            guard let number = version.intValue else {
                return .failure(Rejected(id, ControlError(.invalidRequest, "\"v\" must be an integer")))
            }
            guard number == ControlProtocol.version else {
                return .failure(
                    Rejected(
                        id,
                        ControlError(
                            .invalidRequest,
                            "protocol version \(number) is not supported (this daemon speaks \(ControlProtocol.version))"
                        )))
            }
        }
        guard let op = members["op"]?.stringValue else {
            return .failure(Rejected(id, ControlError(.invalidRequest, "\"op\" must be a string naming the operation")))
        }
        let args: [String: JSON]
        switch members["args"] {
        case nil, .null?: args = [:]
        case .object(let object)?: args = object
        default: return .failure(Rejected(id, ControlError(.invalidArgs, "\"args\" must be an object")))
        }
        do {
            return .success(ControlRequest(id: id, command: try ControlCommand(op: op, args: args)))
        } catch {
            return .failure(Rejected(id, error))
        }
    }

    /// The line a client sends.
    public static func line(id: Int, op: String, args: [String: JSON] = [:]) -> String {
        JSON.object(["id": .int(id), "op": .string(op), "args": .object(args), "v": .int(ControlProtocol.version)])
            .description + "\n"
    }
}

/// The release of this build, shared by the daemon and `wshostctl`.
public enum ReleaseVersion {
    public static let current = "0.2.0"
}
