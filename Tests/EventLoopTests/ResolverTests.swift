import Glibc
import Testing

@testable import EventLoop

@Suite("Resolver: address literals without getaddrinfo")
struct ResolverTests {
    @Test("dotted-quad IPv4 and plain IPv6 literals are read directly, with the port in network order")
    func literals() throws {
        let v4 = try #require(Resolver.literal("127.0.0.1", port: 8080))
        #expect(v4.family == AF_INET)
        #expect(v4.length == socklen_t(MemoryLayout<sockaddr_in>.size))
        #expect(v4.ipBytes == [127, 0, 0, 1])
        #expect(v4.description == "127.0.0.1:8080")
        let v6 = try #require(Resolver.literal("2001:db8::1", port: 443))
        #expect(v6.family == AF_INET6)
        #expect(v6.length == socklen_t(MemoryLayout<sockaddr_in6>.size))
        #expect(v6.ipBytes == [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1])
        #expect(v6.description == "[2001:db8::1]:443")
        // What getaddrinfo alone judges: other IPv4 spellings, scope IDs, names.
        for host in ["127.1", "0x7f.0.0.1", "fe80::1%lo", "[::1]", "localhost", "", "1.2.3.4 "] {
            #expect(Resolver.literal(host, port: 80) == nil, "\(host)")
        }
    }

    @Test("a literal's socket address is byte for byte getaddrinfo's (AI_NUMERICHOST)")
    func sameAsGetaddrinfo() throws {
        for host in ["127.0.0.1", "10.1.2.3", "255.255.255.255", "::1", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1"] {
            let ours = try #require(Resolver.literal(host, port: 9301), "\(host)")
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_protocol = Int32(IPPROTO_TCP)
            hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
            var list: UnsafeMutablePointer<addrinfo>?
            try #require(getaddrinfo(host, "9301", &hints, &list) == 0, "\(host)")
            defer { freeaddrinfo(list) }
            let theirs = try #require(list).pointee
            #expect(theirs.ai_next == nil, "\(host): one address")
            #expect(ours.family == theirs.ai_family, "\(host)")
            #expect(ours.length == theirs.ai_addrlen, "\(host)")
            var storage = ours.storage
            let ourBytes = withUnsafeBytes(of: &storage) { Array($0.prefix(Int(ours.length))) }
            let theirBytes = Array(UnsafeRawBufferPointer(start: theirs.ai_addr, count: Int(theirs.ai_addrlen)))
            #expect(ourBytes == theirBytes, "\(host)")
        }
    }

    @Test("a numeric lookup gives what getaddrinfo gives: a literal read directly, other spellings through it")
    func numericLookup() throws {
        func addresses(_ host: String) -> [String]? {
            guard case .success(let list) = Resolver.lookup(host: host, port: 80, numericOnly: true) else { return nil }
            return list.map(\.description)
        }
        #expect(addresses("10.1.2.3") == ["10.1.2.3:80"])
        #expect(addresses("::1") == ["[::1]:80"])
        #expect(addresses("127.1") == ["127.0.0.1:80"])  // inet_aton's short form, through getaddrinfo
        #expect(addresses("example.invalid") == nil)
    }
}
