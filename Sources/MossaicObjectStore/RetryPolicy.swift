/// How hard S3ObjectStore tries before giving up on a request.
///
/// Delays use exponential backoff with full jitter (a uniformly random wait in
/// `0 ... min(maxDelay, baseDelay · 2^retry)`): many clients hit by the same outage then spread
/// out instead of retrying in lock-step.
public struct RetryPolicy: Sendable, Equatable {
    /// Total tries, the first included (so `retries=8` means 9 attempts).
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    /// Stop retrying once this much time (seconds) has passed since the first attempt; nil for
    /// no bound beyond `maxAttempts`.
    public var totalBudget: Double?
    public var connectTimeout: Double
    /// Bound on one whole transfer (seconds), or nil; large transfers rely on the low-speed limit.
    public var requestTimeout: Double?

    public init(maxAttempts: Int, baseDelay: Double = 0.1, maxDelay: Double = 10, totalBudget: Double? = nil,
                connectTimeout: Double = 10, requestTimeout: Double? = nil) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.totalBudget = totalBudget
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
    }

    /// Default for data operations: 8 retries, at most 10 s between tries (about 20 s of waits
    /// in total), enough to ride out an S3 SlowDown burst or a short network outage — and the
    /// whole request, every attempt and wait included, over within 60 s (`timeout=`): a
    /// store that accepts connections and never answers must not hold close(2) for minutes.
    public static let standard = RetryPolicy(maxAttempts: 9, deadline: 60)

    /// `maxAttempts` tries, all of them within `deadline` seconds: each attempt may take what
    /// is left of it (connect and transfer), and no retry starts after it.
    public init(maxAttempts: Int, deadline: Double) {
        self.init(maxAttempts: maxAttempts, totalBudget: deadline, connectTimeout: min(10, deadline), requestTimeout: deadline)
    }

    /// The transfer time attempt may take when `elapsed` seconds of the request have passed
    /// (nil: no bound but the low-speed limit).
    func attemptTimeout(elapsed: Double) -> Double? {
        let left = totalBudget.map { max(0.001, $0 - elapsed) }
        switch (requestTimeout, left) {
        case let (r?, l?): return min(r, l)
        case let (r, l): return r ?? l
        }
    }

    /// For the up-front access check of `format`/`mount`: an unreachable or misconfigured
    /// endpoint must be reported within seconds, not after the full data-path budget. The
    /// 4-second budget bounds the time; the attempts inside it let a burst of 503s pass.
    public static let accessCheck = RetryPolicy(maxAttempts: 8, baseDelay: 0.1, maxDelay: 0.5, totalBudget: 4,
                                                connectTimeout: 1.5, requestTimeout: 4)

    /// The wait before retry number `retry` (1 for the first retry).
    func delay(beforeRetry retry: Int) -> Double {
        let ceiling = min(maxDelay, baseDelay * Double(1 << min(retry - 1, 30)))
        return ceiling > 0 ? Double.random(in: 0...ceiling) : 0
    }
}
