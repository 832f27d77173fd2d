//! The shared state's data: where every slot is counted ([`Hold`]), the
//! waiters, and the lock whose release checks the accounting ([`Locked`]).
//! Only `shared.rs` changes it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::task::Waker;

use super::error::PoolError;
use super::manager::ObjectMeta;
use crate::sync::{Instant, MutexGuard};

/// An object and its bookkeeping.
#[derive(Debug)]
pub(crate) struct Entry<O> {
    pub(crate) obj: O,
    pub(crate) meta: ObjectMeta,
}

/// What a waiter is handed.
#[derive(Debug)]
pub(crate) enum Grant<O, E> {
    /// An idle object, already counted in `size`.
    Object(Entry<O>),
    /// A reserved slot: the waiter must create an object (or give it back).
    Slot,
    /// The wait is over without an object.
    Fail(PoolError<E>),
}

/// What `reserve` found.
#[derive(Debug)]
pub(crate) enum Reserve<O> {
    Object(Entry<O>),
    Slot,
    /// Queued as waiter `id`.
    Queued(u64),
}

/// Why an object is destroyed (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destroy {
    Broken,
    Retired,
    Closed,
}

/// Where a taken slot is counted. Every slot in `size` is in exactly one of
/// these (or in the idle list); a function that gives a slot back or moves it
/// names the place it leaves, so the checker can hold the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// An object outside the idle list: checked out (a `Pooled`), being
    /// recycled, or on its way to being dropped.
    Lent,
    /// A slot reserved by a `get` that is creating into it.
    Creating,
    /// A slot maintenance is warming an object into.
    Warming,
    /// An object or slot granted to a waiter that has not collected it.
    Granted,
}

#[derive(Debug)]
pub(crate) struct Waiter<O, E> {
    pub(crate) waker: Option<Waker>,
    pub(crate) grant: Option<Grant<O, E>>,
}

#[derive(Debug)]
pub(crate) struct Failure<E> {
    pub(crate) error: E,
    pub(crate) consecutive: u32,
    pub(crate) until: Instant,
}

#[derive(Debug)]
pub(crate) struct State<O, E> {
    pub(crate) idle: VecDeque<Entry<O>>,
    /// Slots taken: idle + lent + creating + warming + granted.
    pub(crate) size: usize,
    /// Waiters without a grant, oldest first: ids only grow, so the ordered
    /// set is the FIFO, and a cancelled waiter leaves it in O(log n).
    pub(crate) queue: BTreeSet<u64>,
    /// Every live waiter, granted or not.
    pub(crate) waiters: HashMap<u64, Waiter<O, E>>,
    pub(crate) next_waiter: u64,
    /// Objects outside the idle list ([`Hold::Lent`]).
    pub(crate) lent: usize,
    /// Slots `get` is creating into ([`Hold::Creating`]).
    pub(crate) creating: usize,
    /// Maintenance creations in progress (they count toward `min_idle`).
    pub(crate) warming: usize,
    /// Objects or slots granted and not yet collected ([`Hold::Granted`]).
    pub(crate) granted: usize,
    pub(crate) closed: bool,
    pub(crate) failure: Option<Failure<E>>,
}

impl<O, E> State<O, E> {
    pub(crate) fn hold(&mut self, hold: Hold) -> &mut usize {
        match hold {
            Hold::Lent => &mut self.lent,
            Hold::Creating => &mut self.creating,
            Hold::Warming => &mut self.warming,
            Hold::Granted => &mut self.granted,
        }
    }

    /// Moves one slot's count from `from` to `to`.
    pub(crate) fn shift(&mut self, from: Hold, to: Hold) {
        *self.hold(from) -= 1;
        *self.hold(to) += 1;
    }

    /// The accounting every locked section must leave behind. Panics (with
    /// "pool accounting") on the first rule broken: a bug in this file.
    ///
    /// 1. size = idle + lent + creating + warming + granted ≤ max;
    /// 2. nobody is queued while an object is idle or a slot is free;
    /// 3. a closed pool has nothing idle and nobody queued;
    /// 4. every queued id is a live waiter without a grant.
    pub(crate) fn check(&self, max: usize) {
        let parts = self.idle.len() + self.lent + self.creating + self.warming + self.granted;
        assert!(
            self.size == parts && self.size <= max,
            "pool accounting: size {} != idle {} + lent {} + creating {} + warming {} + granted {} (max {max})",
            self.size,
            self.idle.len(),
            self.lent,
            self.creating,
            self.warming,
            self.granted,
        );
        assert!(
            self.queue.is_empty() || (self.idle.is_empty() && self.size == max),
            "pool accounting: {} queued while {} idle and size {}/{max}",
            self.queue.len(),
            self.idle.len(),
            self.size,
        );
        assert!(
            !self.closed || (self.idle.is_empty() && self.queue.is_empty()),
            "pool accounting: closed with {} idle and {} queued",
            self.idle.len(),
            self.queue.len(),
        );
        assert!(
            self.queue.len() <= self.waiters.len()
                && self
                    .queue
                    .first()
                    .is_none_or(|id| { self.waiters.get(id).is_some_and(|w| w.grant.is_none()) }),
            "pool accounting: the queue names a waiter that is gone or granted",
        );
    }
}

/// The lock on the state. Dropping it (the end of every locked section) runs
/// [`State::check`] in test and loom builds.
pub(crate) struct Locked<'a, O, E> {
    pub(crate) guard: MutexGuard<'a, State<O, E>>,
    pub(crate) max: usize,
}

impl<O, E> std::ops::Deref for Locked<'_, O, E> {
    type Target = State<O, E>;

    fn deref(&self) -> &State<O, E> {
        &self.guard
    }
}

impl<O, E> std::ops::DerefMut for Locked<'_, O, E> {
    fn deref_mut(&mut self) -> &mut State<O, E> {
        &mut self.guard
    }
}

impl<O, E> Drop for Locked<'_, O, E> {
    fn drop(&mut self) {
        // Not while unwinding: a second panic would abort and hide the first.
        if crate::sync::CHECK_INVARIANTS && !std::thread::panicking() {
            self.guard.check(self.max);
        }
    }
}
