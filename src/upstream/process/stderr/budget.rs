//! The per-process budget for forwarding server stderr to the log: a pair of
//! token buckets (lines and bytes per second, each holding a burst).
//!
//! Invariant: over any period `T`, the lines a process gets forwarded are at
//! most `lines_per_sec × (T + burst)` and their bytes at most
//! `bytes_per_sec × (T + burst)` (each line costing at most the bucket's
//! capacity), whatever the process writes. Pure arithmetic on the `Instant`s it
//! is given, so it is tested without a clock.

use std::time::{Duration, Instant};

/// How much of a server's stderr reaches the proxy's log, per process. What is
/// over budget is dropped from the log (never from the crash-report tail) and
/// summarized once per `summary_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StderrBudget {
    /// Lines per second forwarded, on average; 0: no line limit.
    pub lines_per_sec: u32,
    /// Bytes per second forwarded, on average; 0: no byte limit.
    pub bytes_per_sec: u64,
    /// Unused budget a quiet process saves up, as time at the rates above
    /// (so a start-up banner or a stack trace passes whole).
    pub burst: Duration,
    /// Longest interval between two summaries of what was suppressed.
    pub summary_every: Duration,
}

impl StderrBudget {
    /// No limit: every line is forwarded (truncated to the line bound).
    pub const UNLIMITED: StderrBudget = StderrBudget {
        lines_per_sec: 0,
        bytes_per_sec: 0,
        burst: Duration::ZERO,
        summary_every: Duration::from_secs(5),
    };
}

impl Default for StderrBudget {
    /// 100 lines/s and 32 KiB/s with 5 s of burst (500 lines, 160 KiB),
    /// summaries every 5 s: a chatty server's normal logging passes, a flood
    /// costs the log at most a few hundred KiB per process per 10 s.
    fn default() -> Self {
        StderrBudget {
            lines_per_sec: 100,
            bytes_per_sec: 32 * 1024,
            burst: Duration::from_secs(5),
            summary_every: Duration::from_secs(5),
        }
    }
}

/// One token bucket; `rate` 0 means unlimited.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
}

impl Bucket {
    fn new(rate: f64, burst: Duration) -> Self {
        // At least one unit, so a limited bucket can always pass something.
        let capacity = (rate * burst.as_secs_f64()).max(rate.min(1.0));
        Bucket {
            rate,
            capacity,
            tokens: capacity,
        }
    }

    fn unlimited(&self) -> bool {
        self.rate == 0.0
    }

    fn refill(&mut self, elapsed: Duration) {
        self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.capacity);
    }

    /// What one item of `size` units costs: never more than the bucket
    /// holds, or a long line could never pass.
    fn cost(&self, size: f64) -> f64 {
        size.min(self.capacity)
    }

    fn has(&self, size: f64) -> bool {
        self.unlimited() || self.tokens >= self.cost(size)
    }

    fn take(&mut self, size: f64) {
        if !self.unlimited() {
            self.tokens -= self.cost(size);
        }
    }
}

/// Decides, line by line, whether a line fits the budget.
#[derive(Debug, Clone)]
pub(super) struct Gate {
    lines: Bucket,
    bytes: Bucket,
    last: Instant,
}

impl Gate {
    /// A gate with full buckets.
    pub(super) fn new(budget: &StderrBudget, now: Instant) -> Self {
        Gate {
            lines: Bucket::new(f64::from(budget.lines_per_sec), budget.burst),
            bytes: Bucket::new(budget.bytes_per_sec as f64, budget.burst),
            last: now,
        }
    }

    /// Whether a line of `len` bytes may be forwarded now; if so, it is paid for.
    pub(super) fn admit(&mut self, len: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now.max(self.last);
        self.lines.refill(elapsed);
        self.bytes.refill(elapsed);
        let len = len as f64;
        if self.lines.has(1.0) && self.bytes.has(len) {
            self.lines.take(1.0);
            self.bytes.take(len);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full gate at a fixed instant, and that instant.
    fn gate(lines: u32, bytes: u64, burst_secs: u64) -> (Gate, Instant) {
        let budget = StderrBudget {
            lines_per_sec: lines,
            bytes_per_sec: bytes,
            burst: Duration::from_secs(burst_secs),
            summary_every: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        (Gate::new(&budget, t0), t0)
    }

    fn admitted(gate: &mut Gate, len: usize, at: Instant, tries: usize) -> usize {
        (0..tries).filter(|_| gate.admit(len, at)).count()
    }

    #[test]
    fn a_flood_gets_the_burst_then_the_rate() {
        let (mut gate, t0) = gate(100, 0, 5);
        assert_eq!(admitted(&mut gate, 10, t0, 10_000), 500);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(admitted(&mut gate, 10, t1, 10_000), 100);
        // Ten seconds of flood: burst plus ten seconds of rate, not more.
        let mut total = 500 + 100;
        for s in 2..=10 {
            total += admitted(&mut gate, 10, t0 + Duration::from_secs(s), 10_000);
        }
        assert_eq!(total, 1500);
    }

    #[test]
    fn the_byte_bucket_limits_long_lines_and_a_line_longer_than_it_still_passes() {
        let (mut gate, t0) = gate(0, 1000, 1);
        assert_eq!(admitted(&mut gate, 100, t0, 1000), 10);
        let t1 = t0 + Duration::from_secs(1);
        // Costs the whole bucket, but passes once it is full again.
        assert!(gate.admit(50_000, t1));
        assert!(!gate.admit(1, t1));
    }

    #[test]
    fn unused_budget_is_saved_only_up_to_the_burst() {
        let (mut gate, t0) = gate(10, 0, 2);
        assert_eq!(admitted(&mut gate, 1, t0, 1000), 20);
        // An hour of silence buys two seconds' worth, not an hour's.
        assert_eq!(
            admitted(&mut gate, 1, t0 + Duration::from_secs(3600), 1000),
            20
        );
    }

    #[test]
    fn zero_rates_mean_unlimited() {
        let t0 = Instant::now();
        let mut gate = Gate::new(&StderrBudget::UNLIMITED, t0);
        assert_eq!(admitted(&mut gate, 4096, t0, 100_000), 100_000);
    }
}
