import Dispatch
import Glibc

/// One address to connect to.
public struct SocketAddress: Sendable, CustomStringConvertible {
    public var family: Int32
    var storage: sockaddr_storage
    var length: socklen_t

    /// The IP address's bytes (4 or 16), network order; nil for other families.
    public var ipBytes: [UInt8]? {
        var copy = storage
        let (offset, count): (Int, Int)
        switch family {
        case AF_INET: (offset, count) = (MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, 4)
        case AF_INET6: (offset, count) = (MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!, 16)
        default: return nil
        }
        // Both are stored in network order: the bytes as they are.
        return withUnsafeBytes(of: &copy) { Array($0[offset..<offset + count]) }
    }

    /// "127.0.0.1:80", "[::1]:80".
    public var description: String {
        if family == AF_UNIX { return "local" }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        var copy = storage
        let result = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                    NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard result == 0 else { return "?" }
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let port = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return family == AF_INET6 ? "[\(name)]:\(port)" : "\(name):\(port)"
    }
}

/// Name resolution that never blocks the loop: `getaddrinfo` runs on a
/// Dispatch worker, the answer comes back on the loop, and a timeout on the
/// loop abandons a lookup that takes too long (its thread finishes unseen).
/// IP literals resolve at once, on the loop.
@LoopActor
public enum Resolver {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case notFound(String)
        case timedOut(host: String, after: Duration)
        case failed(String)

        public var description: String {
            switch self {
            case .notFound(let host): return "host \(host) not found"
            case .timedOut(let host, let after): return "resolving \(host) took longer than \(after)"
            case .failed(let reason): return "name resolution failed: \(reason)"
            }
        }
    }

    /// Resolves `host` to TCP addresses ordered for Happy Eyeballs (RFC 8305
    /// §4: families interleaved, IPv6 first).
    public static func resolve(
        host: String, port: UInt16, timeout: Duration, timers: LoopTimers,
        _ completion: @escaping @LoopActor (Result<[SocketAddress], Failure>) -> Void
    ) {
        if let literal = lookup(host: host, port: port, numericOnly: true), case .success = literal {
            completion(literal)
            return
        }
        var done = false
        let timer = timers.schedule(after: timeout, slack: .milliseconds(10)) {
            guard !done else { return }
            done = true
            completion(.failure(.timedOut(host: host, after: timeout)))
        }
        DispatchQueue.global().async {
            let result = lookup(host: host, port: port, numericOnly: false)
            LoopExecutor.shared.queue.async {
                LoopActor.assumeIsolated {
                    guard !done else { return }
                    done = true
                    timers.cancel(timer)
                    completion(result ?? .failure(.notFound(host)))
                }
            }
        }
    }

    nonisolated static func lookup(host: String, port: UInt16, numericOnly: Bool) -> Result<[SocketAddress], Failure>? {
        if numericOnly, let address = literal(host, port: port) { return .success([address]) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        hints.ai_flags = AI_NUMERICSERV | (numericOnly ? AI_NUMERICHOST : AI_ADDRCONFIG)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            if numericOnly { return nil }
            if status == EAI_NONAME || status == EAI_FAIL { return .failure(.notFound(host)) }
            return .failure(.failed(String(cString: gai_strerror(status))))
        }
        defer { freeaddrinfo(list) }
        var v6: [SocketAddress] = []
        var v4: [SocketAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let current = node {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { raw in
                raw.copyMemory(
                    from: UnsafeRawBufferPointer(start: current.pointee.ai_addr, count: Int(current.pointee.ai_addrlen))
                )
            }
            let address = SocketAddress(
                family: current.pointee.ai_family, storage: storage, length: current.pointee.ai_addrlen)
            if address.family == AF_INET6 {
                v6.append(address)
            } else if address.family == AF_INET {
                v4.append(address)
            }
            node = current.pointee.ai_next
        }
        var ordered: [SocketAddress] = []
        for i in 0..<max(v6.count, v4.count) {
            if i < v6.count { ordered.append(v6[i]) }
            if i < v4.count { ordered.append(v4[i]) }
        }
        return ordered.isEmpty ? .failure(.notFound(host)) : .success(ordered)
    }

    /// A dotted-quad IPv4 or a plain IPv6 literal, as getaddrinfo with
    /// AI_NUMERICHOST gives it (one address), without its allocations; nil for
    /// anything else (other IPv4 spellings, a scope ID), which getaddrinfo judges.
    nonisolated static func literal(_ host: String, port: UInt16) -> SocketAddress? {
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            return SocketAddress(AF_INET, v4)
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            return SocketAddress(AF_INET6, v6)
        }
        return nil
    }
}

extension SocketAddress {
    /// `address` (a `sockaddr_in` or `sockaddr_in6`) as the address of `family`.
    init<Address>(_ family: Int32, _ address: Address) {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in withUnsafeBytes(of: address) { raw.copyMemory(from: $0) } }
        self.init(family: family, storage: storage, length: socklen_t(MemoryLayout<Address>.size))
    }
}
