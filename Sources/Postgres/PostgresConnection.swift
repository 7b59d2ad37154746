import CLibpq
import EventLoop
import Glibc

/// One PostgreSQL connection on the loop, through libpq's asynchronous API:
/// the connect (`PQconnectStartParams` / `PQconnectPoll`), queries
/// (`PQsendQueryParams`, `PQconsumeInput`, `PQgetResult`) and LISTEN/NOTIFY,
/// with libpq's socket watched by the loop's poller (`FDWatch`). Nothing here
/// blocks the loop: a database that does not answer costs a timer, not a
/// stalled thread.
///
/// Queries run one at a time, in order; each has a deadline, and a query past
/// it ends the connection (a cut network leaves a query waiting for ever).
/// A lost connection fails every waiting query and is reported once; the
/// owner decides when to connect again.
@LoopActor
public final class PostgresConnection {
    /// Why a query or the connection failed: PostgreSQL's SQLSTATE when the
    /// server answered, and its message (or libpq's).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var sqlState: String?
        public var message: String
        /// True when the connection itself failed (not just the statement).
        public var connectionLost: Bool

        public init(sqlState: String? = nil, _ message: String, connectionLost: Bool = false) {
            self.sqlState = sqlState
            self.message = message
            self.connectionLost = connectionLost
        }

        public var description: String { sqlState.map { "\(message) (SQLSTATE \($0))" } ?? message }
    }

    /// A statement's rows, as text (libpq's text format); nil is SQL NULL.
    public struct Rows: Sendable {
        public var columns: [String] = []
        public var rows: [[String?]] = []
        /// "UPDATE 3", "SELECT 1", …
        public var command = ""

        public init() {}

        /// Column `name` of row `index`.
        public func value(_ index: Int, _ name: String) -> String? {
            guard let column = columns.firstIndex(of: name), rows.indices.contains(index) else { return nil }
            return rows[index][column]
        }
    }

    public typealias Completion = @LoopActor (Result<Rows, Failure>) -> Void

    public enum State: Equatable, Sendable {
        case idle
        case connecting
        case ready
    }

    public private(set) var state = State.idle
    /// Told once per connection when it is ready for queries.
    public var onReady: (@LoopActor () -> Void)?
    /// Told once when a connection (or an attempt) ends, with why.
    public var onLost: (@LoopActor (Failure) -> Void)?
    /// A NOTIFY on a channel this connection LISTENs to: channel, payload.
    public var onNotify: (@LoopActor (String, String) -> Void)?

    private let conninfo: String
    private let timers: LoopTimers
    /// Longest wait for the connect, and for any one query.
    public var timeout: Duration
    private var connection: OpaquePointer?
    private var watch: FDWatch?
    /// What the connect's last poll asked for.
    private var pollingWrite = true
    private var deadline: TimerID?
    private struct Query {
        var sql: String
        var parameters: [String?]
        var completion: Completion
    }
    private var queue: [Query] = []
    /// The query sent and not yet answered, with the results read so far.
    private var current: Query?
    private var currentRows: Result<Rows, Failure>?

    /// `conninfo`: a libpq connection string or URI (keywords the operator
    /// wrote win over the defaults this connection adds: application_name,
    /// TCP keepalives, tcp_user_timeout).
    public init(conninfo: String, timers: LoopTimers, timeout: Duration) {
        self.conninfo = conninfo
        self.timers = timers
        self.timeout = timeout
    }

    isolated deinit {
        teardown()
    }

    /// Starts connecting (nothing when already connecting or ready).
    public func connect() {
        guard state == .idle else { return }
        let seconds = max(1, Int(timeout.components.seconds))
        // Later keywords override earlier ones, and the expanded dbname
        // (the operator's string) comes last.
        let pairs: [(String, String)] = [
            ("application_name", "wshostd"),
            ("keepalives", "1"),
            ("keepalives_idle", "\(seconds)"),
            ("keepalives_interval", "1"),
            ("keepalives_count", "3"),
            ("tcp_user_timeout", "\(seconds * 1000)"),
            ("dbname", conninfo),
        ]
        let keys = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer {
            for pointer in keys + values { free(pointer) }
        }
        var keyPointers = keys.map { UnsafePointer<CChar>($0) } + [nil]
        var valuePointers = values.map { UnsafePointer<CChar>($0) } + [nil]
        connection = PQconnectStartParams(&keyPointers, &valuePointers, 1)
        guard let connection, PQstatus(connection) != CONNECTION_BAD else {
            return lost(Failure(errorMessage() ?? "cannot start a connection (out of memory)", connectionLost: true))
        }
        // The server's notices (NOTICE, the FATAL of a shutdown) would go to
        // stderr; what matters reaches the owner as a failure instead.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        state = .connecting
        pollingWrite = true
        armDeadline()
        // The first poll once the socket is writable (libpq: "consider it
        // returned PGRES_POLLING_WRITING").
        _ = rewatch(write: true)
    }

    /// Runs `sql` with `parameters` ($1, $2, …, as text) after the queries
    /// before it; fails at once when not connected. Without parameters the
    /// text may hold several statements (never put values in it: only a
    /// parameter keeps them apart from the SQL).
    public func query(_ sql: String, _ parameters: [String?] = [], _ completion: @escaping Completion) {
        guard state == .ready else {
            return completion(.failure(Failure("not connected to the database", connectionLost: true)))
        }
        queue.append(Query(sql: sql, parameters: parameters, completion: completion))
        if current == nil { sendNext() }
    }

    /// Ends the connection; waiting queries fail, `onLost` is not told.
    public func close() {
        let waiting = teardown()
        for query in waiting { query.completion(.failure(Failure("connection closed", connectionLost: true))) }
    }

    // MARK: - Connecting

    private func advanceConnect() {
        guard let connection, state == .connecting else { return }
        switch PQconnectPoll(connection) {
        case PGRES_POLLING_OK:
            disarmDeadline()
            PQsetnonblocking(connection, 1)
            state = .ready
            guard rewatch(write: false) else { return }
            onReady?()
        case PGRES_POLLING_READING:
            pollingWrite = false
            _ = rewatch(write: false)
        case PGRES_POLLING_WRITING:
            pollingWrite = true
            _ = rewatch(write: true)
        default:
            lost(Failure(errorMessage() ?? "connection failed", connectionLost: true))
        }
    }

    /// Watches libpq's current socket (it may change while connecting: the
    /// next host or address of the connection string); false when it failed.
    private func rewatch(write: Bool) -> Bool {
        guard let connection else { return false }
        let fd = PQsocket(connection)
        guard fd >= 0 else {
            lost(Failure(errorMessage() ?? "no socket", connectionLost: true))
            return false
        }
        // While connecting, libpq may close its socket and open the next one
        // (another address or host) under the same number: registered afresh
        // each time, since closing took the old one out of the epoll set.
        if let watch, watch.fd == fd, state == .ready {
            watch.wantWrite(write)
            return true
        }
        watch?.cancel()
        watch = FDWatch(fd: fd, write: write) { [weak self] readable, writable in
            self?.ready(readable: readable, writable: writable)
        }
        guard watch != nil else {
            lost(Failure("cannot watch the database socket (errno \(errno))", connectionLost: true))
            return false
        }
        return true
    }

    private func ready(readable: Bool, writable: Bool) {
        switch state {
        case .idle:
            return
        case .connecting:
            if (pollingWrite && writable) || (!pollingWrite && readable) { advanceConnect() }
        case .ready:
            if writable { flush() }
            if readable, state == .ready { readInput() }
        }
    }

    // MARK: - Queries

    private func sendNext() {
        guard let connection, state == .ready, current == nil, !queue.isEmpty else { return }
        let query = queue.removeFirst()
        let parameters = query.parameters.map { $0.map { strdup($0) } ?? nil }
        defer { for parameter in parameters { free(parameter) } }
        let pointers = parameters.map { $0.map { UnsafePointer<CChar>($0) } }
        // Without parameters, the simple protocol: a script of several
        // statements (the schema's migrations) is one query.
        let sent =
            pointers.isEmpty
            ? PQsendQuery(connection, query.sql)
            : pointers.withUnsafeBufferPointer { buffer in
                PQsendQueryParams(connection, query.sql, Int32(buffer.count), nil, buffer.baseAddress, nil, nil, 0)
            }
        guard sent == 1 else {
            current = query
            return lost(Failure(errorMessage() ?? "cannot send the query", connectionLost: true))
        }
        current = query
        currentRows = nil
        armDeadline()
        flush()
    }

    private func flush() {
        guard let connection else { return }
        switch PQflush(connection) {
        case 0: watch?.wantWrite(false)
        case 1: watch?.wantWrite(true)
        default: lost(Failure(errorMessage() ?? "cannot send to the database", connectionLost: true))
        }
    }

    private func readInput() {
        guard let connection else { return }
        guard PQconsumeInput(connection) == 1 else {
            return lost(Failure(errorMessage() ?? "connection to the database lost", connectionLost: true))
        }
        guard drainNotifications(connection) else { return }
        while current != nil, PQisBusy(connection) == 0 {
            guard let result = PQgetResult(connection) else {
                // The query is complete.
                let query = current!
                let outcome = currentRows ?? .failure(Failure("no result"))
                current = nil
                currentRows = nil
                disarmDeadline()
                query.completion(outcome)
                guard self.connection == connection else { return }
                sendNext()
                guard self.connection == connection else { return }
                continue
            }
            // The first error wins; else the last result's rows.
            if case .failure = currentRows {
            } else {
                currentRows = Self.rows(result)
            }
            PQclear(result)
        }
        // Notifications parsed while reading the results.
        guard drainNotifications(connection) else { return }
        if PQstatus(connection) == CONNECTION_BAD {
            lost(Failure(errorMessage() ?? "connection to the database lost", connectionLost: true))
        }
    }

    /// Hands the notifications libpq has parsed to `onNotify`; false when a
    /// handler ended the connection.
    private func drainNotifications(_ connection: OpaquePointer) -> Bool {
        while let notice = PQnotifies(connection) {
            let channel = String(cString: notice.pointee.relname)
            let payload = notice.pointee.extra.map { String(cString: $0) } ?? ""
            PQfreemem(notice)
            onNotify?(channel, payload)
            guard self.connection == connection else { return false }
        }
        return true
    }

    private static func rows(_ result: OpaquePointer) -> Result<Rows, Failure> {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            var rows = Rows()
            rows.command = String(cString: PQcmdStatus(result))
            let columns = PQnfields(result)
            rows.columns = (0..<columns).map { String(cString: PQfname(result, $0)) }
            for row in 0..<PQntuples(result) {
                rows.rows.append(
                    (0..<columns).map { column in
                        PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                    })
            }
            return .success(rows)
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            let message = primary ?? String(cString: PQresultErrorMessage(result))
            return .failure(Failure(sqlState: state, message.trimmingTrailingNewlines))
        }
    }

    // MARK: - Deadlines and the end

    private func armDeadline() {
        disarmDeadline()
        deadline = timers.schedule(after: timeout, slack: .milliseconds(50)) { [weak self] in
            guard let self else { return }
            deadline = nil
            let what = state == .connecting ? "connection to" : "answer from"
            lost(Failure("no \(what) the database within \(timeout)", connectionLost: true))
        }
    }

    private func disarmDeadline() {
        if let deadline { timers.cancel(deadline) }
        deadline = nil
    }

    /// The connection (or attempt) is over: every waiting query fails, then
    /// the owner is told.
    private func lost(_ failure: Failure) {
        guard state != .idle || connection != nil else { return }
        let waiting = teardown()
        for query in waiting { query.completion(.failure(failure)) }
        onLost?(failure)
    }

    /// Closes everything; returns the queries that were waiting.
    @discardableResult
    private func teardown() -> [Query] {
        disarmDeadline()
        watch?.cancel()
        watch = nil
        if let connection { PQfinish(connection) }
        connection = nil
        state = .idle
        let waiting = (current.map { [$0] } ?? []) + queue
        current = nil
        currentRows = nil
        queue = []
        return waiting
    }

    private func errorMessage() -> String? {
        guard let connection, let text = PQerrorMessage(connection) else { return nil }
        let message = String(cString: text).trimmingTrailingNewlines
        return message.isEmpty ? nil : message
    }
}

extension String {
    fileprivate var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while let last = text.last, last.isNewline || last == " " { text.removeLast() }
        return String(text)
    }
}
