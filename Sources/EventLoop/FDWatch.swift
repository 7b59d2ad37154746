/// Readiness of a descriptor that the loop does not read itself (a database
/// client library's socket, say): registered in the loop's one epoll set, so
/// it is served in the same poller turns as every WebSocket. The owner
/// reads and writes; the watch only says when. Level-triggered: what is left
/// unread is reported again on the next turn.
@LoopActor
public final class FDWatch {
    public typealias Handler = @LoopActor (_ readable: Bool, _ writable: Bool) -> Void

    public let fd: Int32
    private var token: Poller.Token?
    private let handler: Handler

    /// Watches `fd` for reading (and writing, when asked); nil when epoll
    /// refuses the descriptor (`errno` says why).
    public init?(fd: Int32, write: Bool = false, _ handler: @escaping Handler) {
        self.fd = fd
        self.handler = handler
        guard let token = Poller.shared.register(fd, self, read: true, write: write) else { return nil }
        self.token = token
    }

    /// Asks for writability too (while bytes wait), or no longer.
    public func wantWrite(_ write: Bool) {
        guard let token else { return }
        Poller.shared.modify(fd, token, read: true, write: write)
    }

    /// Stops watching; call before the descriptor is closed.
    public func cancel() {
        guard let token else { return }
        Poller.shared.unregister(fd, token)
        self.token = nil
    }

    func ready(readable: Bool, writable: Bool) {
        handler(readable, writable)
    }
}
