import MossaicCore

/// The one bound on the write memory of the whole mount (`mem_buffer_size`): the bytes of
/// every open file's dirty pages together, also those in uploads in flight. Answers "how much
/// write memory is left".
///
/// A writer that would go past the bound WAITS, never fails: first it has buffered data
/// committed (`relieve`: the file holding the most, whose commit stores and then drops its
/// pages), and when every dirty file is already being committed it waits for one of those
/// commits to finish. A waiting writer whose request is interrupted stops waiting (EINTR);
/// nothing it wrote before is lost.
///
/// Each file also keeps its own, smaller bound (`MountConfiguration.maxDirtyBytesPerFile`),
/// so one writer cannot take the whole budget from the others.
final class MemoryLimiter: Sendable {
    /// What an attempt to free memory achieved.
    enum Relief {
        /// A commit dropped buffered pages: try again at once.
        case freed
        /// Every file holding memory is being committed: wait for one to finish.
        case pending
        /// Nothing holds memory that a commit could free (the count and the files disagree,
        /// which a failed file's cleanup can cause for a moment): go over the bound rather
        /// than wait for nothing.
        case nothing
    }

    struct Usage: Sendable, Equatable {
        var used = 0
        /// The most ever in use at once.
        var peak = 0
        /// Writers that had to wait for memory, in total.
        var waits = 0
    }

    let limit: Int
    private let usage = ConditionBox(Usage())

    init(limit: Int) {
        self.limit = max(limit, FormatConstants.chunkSize)
    }

    var current: Usage { usage.withLock { $0 } }

    /// Takes `bytes` from the budget, waiting as described above. A request smaller than the
    /// whole budget always fits once everything else is freed; a larger one (impossible with
    /// the minimum of one chunk) proceeds when nothing else is in use.
    func reserve(_ bytes: Int, interruption: Interruption?, relieve: () -> Relief) throws(FSError) {
        guard bytes > 0 else { return }
        var counted = false
        while true {
            let seen: Int? = usage.withLock { u in
                guard u.used > 0, u.used + bytes > limit else {
                    u.used += bytes
                    u.peak = max(u.peak, u.used)
                    return nil
                }
                if !counted { u.waits += 1 }
                return u.used
            }
            guard let seen else { return }
            counted = true
            if interruption?.isInterrupted == true { throw .interrupted }
            switch relieve() {
            case .freed:
                continue
            case .nothing:
                usage.withLock { u in u.used += bytes; u.peak = max(u.peak, u.used) }
                return
            case .pending:
                // Until a commit (or any release) returns memory.
                let released: (inout Usage) -> Void? = { u in u.used < seen || u.used + bytes <= self.limit ? () : nil }
                if let interruption {
                    if usage.wait(until: released, interruption: interruption) == nil { throw .interrupted }
                } else {
                    usage.wait(until: released)
                }
            }
        }
    }

    /// Corrects a reservation by `delta` bytes without waiting (the write turned out to need
    /// more or less than reserved), or returns memory (negative).
    func adjust(by delta: Int) {
        guard delta != 0 else { return }
        usage.withLock { u in
            u.used = max(0, u.used + delta)
            u.peak = max(u.peak, u.used)
        }
    }

    func release(_ bytes: Int) { adjust(by: -bytes) }
}
