// The protocol core's cost per message, without sockets: what the daemon's
// echo path does between the socket's read and its write (parse a server
// frame, assemble the message, frame and mask the answer, hand the bytes
// over). Allocations are counted by the benchmark framework's malloc
// interposer; instructions by callgrind in docs/performance.md.
import Benchmark
import WebSocketProtocol

/// A connection past its handshake, with a cheap deterministic key source;
/// its messages are assembled in buffers from `buffers` (the daemon's loop
/// shares one such pool, and gives a binary message's buffer back once its
/// reactions have run).
func openConnection(buffers: MessageBuffers = MessageBuffers()) -> ClientConnection {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var connection = ClientConnection(
        url: WebSocketURL(secure: false, host: "127.0.0.1", port: 9000),
        maskKey: {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt32(truncatingIfNeeded: state)
        }, messageBuffers: buffers)
    connection.drainOutbound { $0.count }
    let response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Accept: \(connection.handshake.expectedAccept)\r\n\r\n"
    connection.receive(Array(response.utf8))
    while let event = connection.nextEvent() {
        precondition(event == .opened)
    }
    return connection
}

/// One unmasked server frame carrying `size` bytes.
func serverFrame(size: Int) -> [UInt8] {
    var frame: [UInt8] = [0x82]
    if size < 126 {
        frame.append(UInt8(size))
    } else if size <= 0xFFFF {
        frame += [126, UInt8(size >> 8), UInt8(size & 0xFF)]
    } else {
        frame.append(127)
        for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((size >> shift) & 0xFF)) }
    }
    return frame + [UInt8](repeating: 0x5A, count: size)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        scalingFactor: .kilo,
        maxDuration: .seconds(2))

    for size in [16, 1024, 65536] {
        Benchmark("echo \(size) B: parse, assemble, frame, mask, drain") { benchmark in
            let buffers = MessageBuffers()
            var connection = openConnection(buffers: buffers)
            let frame = serverFrame(size: size)
            var written = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                frame.withUnsafeBytes { connection.receive($0) }
                while let event = connection.nextEvent() {
                    if case .binary(let bytes) = event {
                        try? connection.send(binary: bytes)
                        buffers.give(bytes)
                    }
                }
                connection.drainOutbound { bytes in
                    written &+= bytes.count
                    return bytes.count
                }
            }
            benchmark.stopMeasurement()
            blackHole(written)
        }

        Benchmark("receive \(size) B: parse and assemble") { benchmark in
            let buffers = MessageBuffers()
            var connection = openConnection(buffers: buffers)
            let frame = serverFrame(size: size)
            var received = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                frame.withUnsafeBytes { connection.receive($0) }
                while let event = connection.nextEvent() {
                    if case .binary(let bytes) = event {
                        received &+= bytes.count
                        buffers.give(bytes)
                    }
                }
            }
            benchmark.stopMeasurement()
            blackHole(received)
        }

        Benchmark("send \(size) B: frame, mask, drain") { benchmark in
            var connection = openConnection()
            let payload = [UInt8](repeating: 0x5A, count: size)
            var written = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try? connection.send(binary: payload)
                connection.drainOutbound { bytes in
                    written &+= bytes.count
                    return bytes.count
                }
            }
            benchmark.stopMeasurement()
            blackHole(written)
        }
    }
}
