#if canImport(Glibc)
import Glibc
#endif

/// glibc's allocator knobs, in one place. malloc.h is not part of Swift's Glibc module, so
/// its functions are looked up by name; on a C library without them each call does nothing.
public enum MallocControl {
    /// mallopt(3) parameters (their values in malloc.h).
    public enum Parameter: Int32 {
        /// M_ARENA_MAX: how many arenas threads may spread over.
        case arenaMax = -8
        /// M_MMAP_THRESHOLD: allocations from this size up are mapped and unmapped apart.
        case mmapThreshold = -3
    }

    /// mallopt(3); false where it is missing or refused the value.
    @discardableResult
    public static func set(_ parameter: Parameter, _ value: Int32) -> Bool {
        guard let symbol = symbol("mallopt") else { return false }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        return unsafeBitCast(symbol, to: Mallopt.self)(parameter.rawValue, value) == 1
    }

    /// Hands the heap's free pages back to the kernel (`malloc_trim`) after a task that used
    /// much memory once and freed it — the SQLite page cache of a restore from the store.
    /// glibc returns on its own only free memory at the top of the heap; the rest would stay
    /// resident for the daemon's lifetime (a 10⁵-file restore left 157 MiB instead of 43).
    public static func releaseFreeMemory() {
        guard let symbol = symbol("malloc_trim") else { return }
        typealias MallocTrim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
    }

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)
    }
}
