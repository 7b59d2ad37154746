import CMalloc

/// How many heaps (arenas) glibc's malloc keeps. By default a thread that
/// allocates while another holds the heap lock gets an arena of its own, up
/// to eight per core, and each arena keeps its own free memory. The loop runs
/// on the poller's thread and on whichever of Dispatch's workers is free, so over reconnect
/// waves the records' and OpenSSL's allocations spread over more and more
/// arenas and RSS grows with every wave (300 wss records cut and reconnected:
/// 76.5 MB after 10 waves, 77.7 MB after 60, still climbing). With one arena
/// the same run measured 58.5 → 59.2 MB. Only one thread works at a time in
/// this daemon, so one arena costs no contention that matters.
public enum HeapArenas {
    /// The arena count the daemon sets.
    public static let daemonDefault: Int32 = 1

    /// Limits malloc to `count` arenas, unless the operator chose a limit
    /// (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`).
    /// Call first thing in `main`, before any other thread exists. Returns
    /// whether the limit was set.
    @discardableResult
    public static func limit(to count: Int32 = daemonDefault, environment: [String: String]) -> Bool {
        if environment["MALLOC_ARENA_MAX"] != nil { return false }
        if let tunables = environment["GLIBC_TUNABLES"], tunables.contains("glibc.malloc.arena_max") { return false }
        return mallopt(M_ARENA_MAX, count) == 1
    }
}
