import Dispatch
import Glibc
import Testing

@testable import EventLoop

@Suite("TCPSocket: every read is seen, on many sockets at once")
struct SocketTests {
    struct NoSockets: Error {}

    /// A regression test: a write source activated and then suspended on the
    /// same fd made Linux Dispatch miss read events now and then (seen as
    /// control clients that never got an answer; with the old socket this test
    /// lost 3-25 of 300 bytes in 4 of 10 rounds). Each round: 300 socket pairs,
    /// our end read by a TCPSocket, then (20 ms later, once the sources are
    /// registered) one byte written to each peer end; every socket must see
    /// its byte.
    @Test("300 sockets, a byte each: every one is read, in every round")
    func everyReadSeen() async throws {
        for round in 0..<10 {
            var ours: [Int32] = []
            var peers: [Int32] = []
            for _ in 0..<300 {
                var pair: [Int32] = [0, 0]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { throw NoSockets() }
                _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
                ours.append(pair[0])
                peers.append(pair[1])
            }
            let fds = ours
            let seen = await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
                LoopExecutor.shared.queue.async {
                    LoopActor.assumeIsolated { Readers(fds: fds, done: done).start() }
                }
                usleep(20_000)
                for peer in peers { _ = send(peer, "x", 1, 0) }
            }
            for peer in peers { close(peer) }
            #expect(seen == 300, "round \(round)")
        }
    }
}

/// Reads the given fds until each delivered a byte, or 5 s passed.
@LoopActor
private final class Readers {
    let fds: [Int32]
    let done: CheckedContinuation<Int, Never>
    var sockets: [TCPSocket] = []
    var count = 0
    var finished = false

    init(fds: [Int32], done: CheckedContinuation<Int, Never>) {
        self.fds = fds
        self.done = done
    }

    func start() {
        for fd in fds {
            let socket = TCPSocket(fd: fd, peer: SocketAddress(family: AF_UNIX, storage: sockaddr_storage(), length: 0))
            socket.start(onInput: { [self] input in
                guard case .data = input else { return }
                count += 1
                if count == fds.count { finish() }
            })
            sockets.append(socket)
        }
        LoopExecutor.shared.queue.asyncAfter(deadline: .now() + .seconds(5)) { [self] in
            LoopActor.assumeIsolated { finish() }
        }
    }

    func finish() {
        guard !finished else { return }
        finished = true
        for socket in sockets { socket.close() }
        sockets = []
        done.resume(returning: count)
    }
}
