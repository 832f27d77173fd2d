//! The state every handle, guard and waiter shares, and the only code that
//! changes it.
//!
//! Everything that moves a slot happens under one mutex, and every path that
//! takes a slot has exactly one way to give it back:
//!
//! * a slot is *taken* by `reserve` (idle object or new slot), by a grant to a
//!   waiter, or by maintenance warming an object;
//! * it is *given back* by `return_object` (to a waiter or the idle list),
//!   `release_slot` (to a waiter as a fresh slot, or freed), or `close`.
//!
//! A second invariant removes the lost wake-up: **a waiter is queued only
//! while no idle object and no free slot exist**, and every operation that makes
//! one available serves the queue first. So "an object is idle (or a slot is
//! free) while someone waits" is a state the code never produces.
//!
//! Objects are dropped outside the lock, and an object's slot is released only
//! after it has been dropped, so the number of live objects never exceeds
//! `max_size` even for an instant. (The close path frees slots first and drops
//! after; it may, because a closed pool creates nothing.)
//!
//! Every slot is counted in exactly one place ([`Hold`]), and each function
//! that moves a slot names where it moves it from. In test and loom builds
//! (`sync::CHECK_INVARIANTS`) the state checks that accounting after every
//! locked section: see [`State::check`].

use crate::sync::Instant;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::task::{Context, Poll, Waker};

use super::config::PoolConfig;
use super::error::PoolError;
use super::manager::{Manager, ObjectMeta};
pub(crate) use super::state::{Destroy, Entry, Grant, Hold, Reserve, State};
use super::state::{Failure, Locked, Waiter};
use super::status::{AtomicCounters, Status};
use crate::sync::Mutex;

/// Side effects collected under the lock and performed after it is released.
struct Deferred<O> {
    wake: Vec<Waker>,
    destroy: Vec<(Entry<O>, Destroy)>,
}

impl<O> Deferred<O> {
    fn new() -> Self {
        Self {
            wake: Vec::new(),
            destroy: Vec::new(),
        }
    }
}

pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    state: Mutex<State<M::Object, M::Error>>,
    pub(crate) counters: AtomicCounters,
    /// Wakes the maintenance task early (an object was destroyed, the pool
    /// closed). Held in its own `Arc` so the task can wait on it without
    /// holding the pool.
    pub(crate) refill: std::sync::Arc<tokio::sync::Notify>,
    /// Cancelled by `close`: the maintenance task stops a pass mid-`create`
    /// on it instead of finishing the pass into a closed pool.
    pub(crate) closing: tokio_util::sync::CancellationToken,
}

impl<M: Manager> std::fmt::Debug for Shared<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, mut config: PoolConfig) -> Self {
        config.max_size = config.max_size.max(1);
        Self {
            manager,
            config,
            state: Mutex::new(State {
                idle: VecDeque::new(),
                size: 0,
                queue: BTreeSet::new(),
                waiters: HashMap::new(),
                next_waiter: 0,
                lent: 0,
                creating: 0,
                warming: 0,
                granted: 0,
                closed: false,
                failure: None,
            }),
            counters: AtomicCounters::default(),
            refill: std::sync::Arc::new(tokio::sync::Notify::new()),
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Locks the state; the end of the section is checked (see [`Locked`]).
    pub(crate) fn lock(&self) -> Locked<'_, M::Object, M::Error> {
        Locked {
            guard: self.state.lock(),
            max: self.config.max_size,
        }
    }

    pub(crate) fn status(&self) -> Status {
        let st = self.lock();
        Status {
            size: st.size,
            idle: st.idle.len(),
            in_use: st.size - st.idle.len(),
            waiting: st.queue.len(),
            max: self.config.max_size,
            closed: st.closed,
            create_failing: st.failure.is_some(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The retirement rule, written once: an object that has served
    /// `max_uses` checkouts or outlived `max_lifetime` is destroyed instead of
    /// being lent again. The guard applies it on return, `reserve` on
    /// checkout and maintenance to idle objects. (A broken object and an idle
    /// timeout are other reasons, each checked in one place.)
    pub(crate) fn retired(&self, meta: &ObjectMeta) -> bool {
        self.config.max_uses.is_some_and(|max| meta.uses >= max)
            || self
                .config
                .max_lifetime
                .is_some_and(|max| meta.created.elapsed() >= max)
    }

    /// Takes an idle object or a free slot, or queues the caller.
    pub(crate) fn reserve(
        &self,
        may_wait: bool,
    ) -> Result<Reserve<M::Object>, PoolError<M::Error>> {
        loop {
            let reserved = {
                let mut st = self.lock();
                self.reserve_locked(&mut st, may_wait)
            };
            match reserved {
                // Checked outside the lock (drop first, then free the slot)
                // so a retired object never coexists with its replacement.
                Ok(Reserve::Object(entry)) if self.retired(&entry.meta) => {
                    self.destroy(entry, Destroy::Retired);
                }
                other => return other,
            }
        }
    }

    fn reserve_locked(
        &self,
        st: &mut State<M::Object, M::Error>,
        may_wait: bool,
    ) -> Result<Reserve<M::Object>, PoolError<M::Error>> {
        if st.closed {
            return Err(PoolError::Closed);
        }
        // LIFO: the most recently used object is the warmest, and the cold
        // end of the list is left for `idle_timeout` to shrink.
        if let Some(entry) = st.idle.pop_back() {
            st.lent += 1;
            return Ok(Reserve::Object(entry));
        }
        if st.size < self.config.max_size {
            if let Some(failure) = &st.failure
                && Instant::now() < failure.until
            {
                return Err(PoolError::Backoff(failure.error.clone()));
            }
            st.size += 1;
            st.creating += 1;
            return Ok(Reserve::Slot);
        }
        if !may_wait {
            return Err(PoolError::Timeout(super::error::TimeoutStage::Wait));
        }
        let id = st.next_waiter;
        st.next_waiter += 1;
        st.queue.insert(id);
        st.waiters.insert(
            id,
            Waiter {
                waker: None,
                grant: None,
            },
        );
        Ok(Reserve::Queued(id))
    }

    /// Polls waiter `id` for its grant.
    pub(crate) fn poll_grant(
        &self,
        id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Grant<M::Object, M::Error>> {
        let mut st = self.lock();
        let Some(waiter) = st.waiters.get_mut(&id) else {
            // Unreachable by construction (only the waiter removes itself);
            // answering Closed keeps the caller safe if it ever happens.
            return Poll::Ready(Grant::Fail(PoolError::Closed));
        };
        if let Some(grant) = waiter.grant.take() {
            st.waiters.remove(&id);
            match grant {
                Grant::Object(_) => st.shift(Hold::Granted, Hold::Lent),
                Grant::Slot => st.shift(Hold::Granted, Hold::Creating),
                Grant::Fail(_) => {}
            }
            return Poll::Ready(grant);
        }
        match &mut waiter.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// A waiter went away without taking its grant: pass the grant on so the
    /// slot it holds is never lost.
    pub(crate) fn cancel_wait(&self, id: u64) {
        let mut deferred = Deferred::new();
        {
            let mut st = self.lock();
            if let Some(waiter) = st.waiters.remove(&id) {
                match waiter.grant {
                    None => {
                        st.queue.remove(&id);
                    }
                    Some(Grant::Object(entry)) => {
                        self.return_locked(&mut st, entry, Hold::Granted, &mut deferred);
                    }
                    Some(Grant::Slot) => {
                        self.release_slot_locked(&mut st, Hold::Granted, &mut deferred);
                    }
                    Some(Grant::Fail(_)) => {}
                }
            }
        }
        self.finish(deferred);
    }

    /// Gives a healthy lent object back: to the oldest waiter, else to the
    /// idle list.
    pub(crate) fn return_object(&self, entry: Entry<M::Object>) {
        let mut deferred = Deferred::new();
        {
            let mut st = self.lock();
            self.return_locked(&mut st, entry, Hold::Lent, &mut deferred);
        }
        self.finish(deferred);
    }

    fn return_locked(
        &self,
        st: &mut State<M::Object, M::Error>,
        entry: Entry<M::Object>,
        from: Hold,
        deferred: &mut Deferred<M::Object>,
    ) {
        *st.hold(from) -= 1;
        if st.closed {
            st.size -= 1;
            deferred.destroy.push((entry, Destroy::Closed));
        } else if let Some(id) = st.queue.pop_first() {
            st.grant(id, Grant::Object(entry), deferred);
        } else {
            st.idle.push_back(entry);
        }
    }

    /// Drops a lent object, then frees its slot.
    pub(crate) fn destroy(&self, entry: Entry<M::Object>, why: Destroy) {
        self.count_destroy(why);
        drop(entry);
        self.release_slot(Hold::Lent);
    }

    /// Frees one slot held `from` (a destroyed object, a failed or abandoned
    /// create): to the oldest waiter as a fresh slot, else back to the free
    /// count.
    pub(crate) fn release_slot(&self, from: Hold) {
        let mut deferred = Deferred::new();
        {
            let mut st = self.lock();
            self.release_slot_locked(&mut st, from, &mut deferred);
        }
        self.finish(deferred);
        self.refill.notify_one();
    }

    fn release_slot_locked(
        &self,
        st: &mut State<M::Object, M::Error>,
        from: Hold,
        deferred: &mut Deferred<M::Object>,
    ) {
        *st.hold(from) -= 1;
        let backing_off = st
            .failure
            .as_ref()
            .filter(|f| Instant::now() < f.until)
            .map(|f| f.error.clone());
        match (st.queue.pop_first(), backing_off) {
            (None, _) => st.size -= 1,
            (Some(id), None) => st.grant(id, Grant::Slot, deferred),
            // Handing the slot to a waiter would only spawn again into a
            // failing command: fail everyone waiting, fast, with the reason.
            (Some(id), Some(error)) => {
                st.size -= 1;
                let error = PoolError::Backoff(error);
                st.grant(id, Grant::Fail(error.clone()), deferred);
                fail_queue_locked(st, &error, deferred);
            }
        }
    }

    /// A `create` into a slot held `from` succeeded: the object is lent to
    /// the caller (or destroyed, if the pool closed meanwhile).
    pub(crate) fn created(
        &self,
        obj: M::Object,
        from: Hold,
    ) -> Result<Entry<M::Object>, PoolError<M::Error>> {
        AtomicCounters::bump(&self.counters.created);
        let entry = Entry {
            obj,
            meta: ObjectMeta::new(Instant::now()),
        };
        let closed = {
            let mut st = self.lock();
            st.failure = None;
            st.shift(from, Hold::Lent);
            st.closed
        };
        if closed {
            self.destroy(entry, Destroy::Closed);
            return Err(PoolError::Closed);
        }
        Ok(entry)
    }

    /// A `create` into a slot held `from` failed: remember it for the
    /// back-off and free the slot.
    pub(crate) fn create_failed(&self, error: M::Error, from: Hold) {
        AtomicCounters::bump(&self.counters.create_failures);
        let mut deferred = Deferred::new();
        {
            let mut st = self.lock();
            let consecutive = st.failure.as_ref().map_or(0, |f| f.consecutive) + 1;
            let until = Instant::now() + self.config.create_backoff.window(consecutive);
            st.failure = Some(Failure {
                error,
                consecutive,
                until,
            });
            self.release_slot_locked(&mut st, from, &mut deferred);
        }
        self.finish(deferred);
    }

    /// A `create` into a slot held `from` ran out of time: free the slot.
    pub(crate) fn create_timed_out(&self, from: Hold) {
        AtomicCounters::bump(&self.counters.create_failures);
        self.release_slot(from);
    }

    /// Closes the pool: idle objects are destroyed, waiters fail with
    /// `Closed`, and grants not yet taken are taken back. Idempotent.
    pub(crate) fn close(&self) {
        let mut deferred = Deferred::new();
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            while let Some(entry) = st.idle.pop_front() {
                st.size -= 1;
                deferred.destroy.push((entry, Destroy::Closed));
            }
            fail_queue_locked(&mut st, &PoolError::Closed, &mut deferred);
            let mut freed = 0;
            for waiter in st.waiters.values_mut() {
                match waiter.grant.take() {
                    Some(Grant::Object(entry)) => {
                        freed += 1;
                        deferred.destroy.push((entry, Destroy::Closed));
                    }
                    Some(Grant::Slot) => freed += 1,
                    Some(Grant::Fail(_)) | None => {}
                }
                waiter.grant = Some(Grant::Fail(PoolError::Closed));
                if let Some(w) = waiter.waker.take() {
                    deferred.wake.push(w);
                }
            }
            st.granted -= freed;
            st.size -= freed;
        }
        self.closing.cancel();
        self.finish(deferred);
        self.refill.notify_one();
    }

    /// One maintenance pass: drop broken and expired idle objects, then warm
    /// objects up to `min_idle`.
    ///
    /// Cancel-safe: the slots taken for warming are held by a [`Warming`]
    /// guard, which gives back every one not yet settled if this future is
    /// dropped mid-`create`.
    pub(crate) async fn maintain(&self) {
        if !self.reap() {
            return;
        }
        let mut warming = self.take_warming_slots();
        while warming.left > 0 {
            let outcome =
                crate::sync::timeout(self.config.create_timeout, self.manager.create()).await;
            // This slot is settled below, with no await in between.
            warming.left -= 1;
            match outcome {
                Ok(Ok(obj)) => {
                    if let Ok(entry) = self.created(obj, Hold::Warming) {
                        self.return_object(entry);
                    }
                }
                Ok(Err(error)) => {
                    self.create_failed(error, Hold::Warming);
                    // Backing off now: the guard gives the other slots back
                    // rather than spawning into a failing command again.
                    break;
                }
                Err(_elapsed) => {
                    self.create_timed_out(Hold::Warming);
                    break;
                }
            }
        }
    }

    /// Destroys broken, retired and idle-timed-out idle objects (never below
    /// `min_idle`). `false` if the pool is closed.
    fn reap(&self) -> bool {
        let now = Instant::now();
        let mut doomed = Vec::new();
        {
            let mut st = self.lock();
            if st.closed {
                return false;
            }
            let mut kept = VecDeque::with_capacity(st.idle.len());
            // Oldest first, so idle_timeout trims the cold end and keeps
            // `min_idle` of the warmest.
            let mut surplus = st.idle.len().saturating_sub(self.config.min_idle);
            while let Some(entry) = st.idle.pop_front() {
                let why = if self.manager.is_broken(&entry.obj) {
                    Some(Destroy::Broken)
                } else if self.retired(&entry.meta)
                    || (surplus > 0
                        && self.config.idle_timeout.is_some_and(|t| {
                            now.saturating_duration_since(entry.meta.last_used) >= t
                        }))
                {
                    Some(Destroy::Retired)
                } else {
                    None
                };
                match why {
                    Some(why) => {
                        surplus = surplus.saturating_sub(1);
                        st.lent += 1;
                        doomed.push((entry, why));
                    }
                    None => kept.push_back(entry),
                }
            }
            st.idle = kept;
        }
        // Their slots stay taken until each is dropped.
        for (entry, why) in doomed {
            self.destroy(entry, why);
        }
        true
    }

    /// Takes the slots maintenance will warm into, under a guard that gives
    /// back those not yet settled.
    fn take_warming_slots(&self) -> Warming<'_, M> {
        let mut st = self.lock();
        let backing_off = st
            .failure
            .as_ref()
            .is_some_and(|f| Instant::now() < f.until);
        let want = self
            .config
            .min_idle
            .min(self.config.max_size)
            .saturating_sub(st.idle.len() + st.warming);
        let room = self.config.max_size - st.size;
        let n = if st.closed || backing_off || !st.queue.is_empty() {
            0
        } else {
            want.min(room)
        };
        st.size += n;
        st.warming += n;
        Warming {
            shared: self,
            left: n,
        }
    }

    fn count_destroy(&self, why: Destroy) {
        AtomicCounters::bump(&self.counters.destroyed);
        match why {
            Destroy::Broken => AtomicCounters::bump(&self.counters.broken),
            Destroy::Retired => AtomicCounters::bump(&self.counters.retired),
            Destroy::Closed => {}
        }
    }

    /// Performs what was decided under the lock: drop objects, then wake.
    fn finish(&self, deferred: Deferred<M::Object>) {
        for (entry, why) in deferred.destroy {
            self.count_destroy(why);
            drop(entry);
        }
        for waker in deferred.wake {
            waker.wake();
        }
    }
}

impl<O, E> State<O, E> {
    /// Hands `grant` to waiter `id` (already taken off the queue).
    fn grant(&mut self, id: u64, grant: Grant<O, E>, deferred: &mut Deferred<O>) {
        if matches!(grant, Grant::Object(_) | Grant::Slot) {
            self.granted += 1;
        }
        if let Some(waiter) = self.waiters.get_mut(&id) {
            waiter.grant = Some(grant);
            if let Some(w) = waiter.waker.take() {
                deferred.wake.push(w);
            }
        }
    }
}

/// The slots one maintenance pass took to warm objects into. Dropped with
/// `left > 0` (the pass was cancelled mid-`create`, or stopped after a
/// failure), it gives each back, as a `get` future's `SlotGuard` does.
pub(crate) struct Warming<'a, M: Manager> {
    shared: &'a Shared<M>,
    left: usize,
}

impl<M: Manager> Drop for Warming<'_, M> {
    fn drop(&mut self) {
        for _ in 0..std::mem::take(&mut self.left) {
            self.shared.release_slot(Hold::Warming);
        }
    }
}

fn fail_queue_locked<O, E: Clone>(
    st: &mut State<O, E>,
    error: &PoolError<E>,
    deferred: &mut Deferred<O>,
) {
    while let Some(id) = st.queue.pop_first() {
        st.grant(id, Grant::Fail(error.clone()), deferred);
    }
}

#[cfg(test)]
mod tests;
