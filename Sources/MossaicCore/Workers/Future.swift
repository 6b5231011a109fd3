/// The outcome of work running elsewhere (a `WorkerPool` job, a fetch led by another thread):
/// set once with `finish`, awaited by any number of threads.
public final class Future<Success: Sendable, Failure: Error>: Sendable {
    private let box = ConditionBox<Result<Success, Failure>?>(nil)

    public init() {}

    /// Sets the outcome (the first one wins) and wakes every waiter.
    public func finish(_ result: Result<Success, Failure>) {
        box.withLock { if $0 == nil { $0 = result } }
    }

    /// Waits for the outcome.
    public func wait() throws(Failure) -> Success {
        // Reading the outcome changes nothing another waiter waits for: wake no one.
        try box.wait(waking: .none) { $0 }.get()
    }

    /// Waits for the outcome, or until `interruption` fires: nil then (the work goes on, its
    /// outcome unobserved).
    public func result(_ interruption: Interruption?) -> Result<Success, Failure>? {
        guard let interruption else { return box.wait(waking: .none) { $0 } }
        return box.wait(until: { $0 }, interruption: interruption)
    }

    public var isDone: Bool { box.withLock { $0 != nil } }
}

extension Future where Failure == FSError {
    /// Waits for the outcome; with `interruption`, throws `.interrupted` as soon as the request
    /// is interrupted.
    public func wait(_ interruption: Interruption?) throws(FSError) -> Success {
        guard let result = result(interruption) else { throw .interrupted }
        return try result.get()
    }
}
