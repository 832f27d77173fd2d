//! Point-in-time status and lifetime counters.

use crate::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the pool holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Slots taken: idle + checked out (or being recycled or destroyed) +
    /// being created (by a `get` or by maintenance) + granted to a waiter
    /// that has not yet collected it.
    pub size: usize,
    /// Objects waiting in the pool.
    pub idle: usize,
    /// Slots not idle (`size - idle`).
    pub in_use: usize,
    /// `get` calls waiting for an object.
    pub waiting: usize,
    /// `max_size`.
    pub max: usize,
    /// Whether the pool is closed.
    pub closed: bool,
    /// Whether the last `create` failed (no success since): a readiness
    /// signal, together with `size`.
    pub create_failing: bool,
}

/// What the pool has done since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Objects `create` returned.
    pub created: u64,
    /// Objects dropped by the pool (all paths).
    pub destroyed: u64,
    /// Successful `recycle` checks on checkout.
    pub recycled: u64,
    /// Objects destroyed because they were broken: `is_broken` on return,
    /// failed `recycle`, or explicitly discarded through the guard.
    pub broken: u64,
    /// Objects destroyed because `max_uses`, `max_lifetime` or `idle_timeout`
    /// retired them.
    pub retired: u64,
    /// `create` calls that failed or timed out.
    pub create_failures: u64,
    /// `get` calls that timed out (any stage).
    pub timeouts: u64,
    /// Total time `get` calls spent waiting for an object or a slot.
    pub wait_time: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    pub(crate) created: AtomicU64,
    pub(crate) destroyed: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) broken: AtomicU64,
    pub(crate) retired: AtomicU64,
    pub(crate) create_failures: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) wait_nanos: AtomicU64,
}

impl AtomicCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_wait(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            created: load(&self.created),
            destroyed: load(&self.destroyed),
            recycled: load(&self.recycled),
            broken: load(&self.broken),
            retired: load(&self.retired),
            create_failures: load(&self.create_failures),
            timeouts: load(&self.timeouts),
            wait_time: Duration::from_nanos(load(&self.wait_nanos)),
        }
    }
}
