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

use crate::sync::Instant;
use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};

use super::config::PoolConfig;
use super::error::PoolError;
use super::manager::{Manager, ObjectMeta};
use super::status::{AtomicCounters, Status};
use crate::sync::Mutex;

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

#[derive(Debug)]
struct Waiter<O, E> {
    waker: Option<Waker>,
    grant: Option<Grant<O, E>>,
}

#[derive(Debug)]
struct Failure<E> {
    error: E,
    consecutive: u32,
    until: Instant,
}

#[derive(Debug)]
struct State<O, E> {
    idle: VecDeque<Entry<O>>,
    /// Slots taken: idle + checked out + granted + being created.
    size: usize,
    /// Waiters without a grant, oldest first.
    queue: VecDeque<u64>,
    /// Every live waiter, granted or not.
    waiters: HashMap<u64, Waiter<O, E>>,
    next_waiter: u64,
    /// Maintenance creations in progress (they count toward `min_idle`).
    warming: usize,
    closed: bool,
    failure: Option<Failure<E>>,
}

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
                queue: VecDeque::new(),
                waiters: HashMap::new(),
                next_waiter: 0,
                warming: 0,
                closed: false,
                failure: None,
            }),
            counters: AtomicCounters::default(),
            refill: std::sync::Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub(crate) fn status(&self) -> Status {
        let st = self.state.lock();
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
        self.state.lock().closed
    }

    fn outlived(&self, meta: &ObjectMeta) -> bool {
        self.config
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
                let mut st = self.state.lock();
                self.reserve_locked(&mut st, may_wait)
            };
            match reserved {
                // Checked outside the lock (drop first, then free the slot)
                // so a retired object never coexists with its replacement.
                Ok(Reserve::Object(entry)) if self.outlived(&entry.meta) => {
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
            return Ok(Reserve::Object(entry));
        }
        if st.size < self.config.max_size {
            if let Some(failure) = &st.failure
                && Instant::now() < failure.until
            {
                return Err(PoolError::Backoff(failure.error.clone()));
            }
            st.size += 1;
            return Ok(Reserve::Slot);
        }
        if !may_wait {
            return Err(PoolError::Timeout(super::error::TimeoutStage::Wait));
        }
        let id = st.next_waiter;
        st.next_waiter += 1;
        st.queue.push_back(id);
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
        let mut st = self.state.lock();
        let Some(waiter) = st.waiters.get_mut(&id) else {
            // Unreachable by construction (only the waiter removes itself);
            // answering Closed keeps the caller safe if it ever happens.
            return Poll::Ready(Grant::Fail(PoolError::Closed));
        };
        if let Some(grant) = waiter.grant.take() {
            st.waiters.remove(&id);
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
            let mut st = self.state.lock();
            if let Some(waiter) = st.waiters.remove(&id) {
                match waiter.grant {
                    None => st.queue.retain(|&q| q != id),
                    Some(Grant::Object(entry)) => self.return_locked(&mut st, entry, &mut deferred),
                    Some(Grant::Slot) => self.release_slot_locked(&mut st, &mut deferred),
                    Some(Grant::Fail(_)) => {}
                }
            }
        }
        self.finish(deferred);
    }

    /// Gives a healthy object back: to the oldest waiter, else to the idle list.
    pub(crate) fn return_object(&self, entry: Entry<M::Object>) {
        let mut deferred = Deferred::new();
        {
            let mut st = self.state.lock();
            self.return_locked(&mut st, entry, &mut deferred);
        }
        self.finish(deferred);
    }

    fn return_locked(
        &self,
        st: &mut State<M::Object, M::Error>,
        entry: Entry<M::Object>,
        deferred: &mut Deferred<M::Object>,
    ) {
        if st.closed {
            st.size -= 1;
            deferred.destroy.push((entry, Destroy::Closed));
        } else if let Some(id) = st.queue.pop_front() {
            grant_locked(st, id, Grant::Object(entry), deferred);
        } else {
            st.idle.push_back(entry);
        }
    }

    /// Drops an object, then frees its slot.
    pub(crate) fn destroy(&self, entry: Entry<M::Object>, why: Destroy) {
        self.count_destroy(why);
        drop(entry);
        self.release_slot();
    }

    /// Frees one slot (a destroyed object, a failed or abandoned create): to
    /// the oldest waiter as a fresh slot, else back to the free count.
    pub(crate) fn release_slot(&self) {
        let mut deferred = Deferred::new();
        {
            let mut st = self.state.lock();
            self.release_slot_locked(&mut st, &mut deferred);
        }
        self.finish(deferred);
        self.refill.notify_one();
    }

    fn release_slot_locked(
        &self,
        st: &mut State<M::Object, M::Error>,
        deferred: &mut Deferred<M::Object>,
    ) {
        let backing_off = st
            .failure
            .as_ref()
            .filter(|f| Instant::now() < f.until)
            .map(|f| f.error.clone());
        match (st.queue.is_empty(), backing_off) {
            (true, _) => st.size -= 1,
            (false, None) => {
                if let Some(id) = st.queue.pop_front() {
                    grant_locked(st, id, Grant::Slot, deferred);
                }
            }
            // Handing the slot to a waiter would only spawn again into a
            // failing command: fail everyone waiting, fast, with the reason.
            (false, Some(error)) => {
                st.size -= 1;
                fail_queue_locked(st, &PoolError::Backoff(error), deferred);
            }
        }
    }

    /// A `create` succeeded on a reserved slot.
    pub(crate) fn created(&self, obj: M::Object) -> Result<Entry<M::Object>, PoolError<M::Error>> {
        AtomicCounters::bump(&self.counters.created);
        let entry = Entry {
            obj,
            meta: ObjectMeta::new(Instant::now()),
        };
        let closed = {
            let mut st = self.state.lock();
            st.failure = None;
            st.closed
        };
        if closed {
            self.destroy(entry, Destroy::Closed);
            return Err(PoolError::Closed);
        }
        Ok(entry)
    }

    /// A `create` on a reserved slot failed: remember it for the back-off and
    /// free the slot.
    pub(crate) fn create_failed(&self, error: M::Error) {
        AtomicCounters::bump(&self.counters.create_failures);
        let mut deferred = Deferred::new();
        {
            let mut st = self.state.lock();
            let consecutive = st.failure.as_ref().map_or(0, |f| f.consecutive) + 1;
            let until = Instant::now() + self.config.create_backoff.window(consecutive);
            st.failure = Some(Failure {
                error,
                consecutive,
                until,
            });
            self.release_slot_locked(&mut st, &mut deferred);
        }
        self.finish(deferred);
    }

    /// Closes the pool: idle objects are destroyed, waiters fail with
    /// `Closed`, and grants not yet taken are taken back. Idempotent.
    pub(crate) fn close(&self) {
        let mut deferred = Deferred::new();
        {
            let mut st = self.state.lock();
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
            st.size -= freed;
        }
        self.finish(deferred);
        self.refill.notify_one();
    }

    /// One maintenance pass: drop broken and expired idle objects, then warm
    /// objects up to `min_idle`.
    pub(crate) async fn maintain(&self) {
        let now = Instant::now();
        let mut doomed = Vec::new();
        {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            let mut kept = VecDeque::with_capacity(st.idle.len());
            // Oldest first, so idle_timeout trims the cold end and keeps
            // `min_idle` of the warmest.
            let mut surplus = st.idle.len().saturating_sub(self.config.min_idle);
            while let Some(entry) = st.idle.pop_front() {
                let why = if self.manager.is_broken(&entry.obj) {
                    Some(Destroy::Broken)
                } else if self.outlived(&entry.meta)
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
        let to_warm = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
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
            let n = if backing_off || !st.queue.is_empty() {
                0
            } else {
                want.min(room)
            };
            st.size += n;
            st.warming += n;
            n
        };
        for _ in 0..to_warm {
            let outcome =
                crate::sync::timeout(self.config.create_timeout, self.manager.create()).await;
            self.state.lock().warming -= 1;
            match outcome {
                Ok(Ok(obj)) => {
                    if let Ok(entry) = self.created(obj) {
                        self.return_object(entry);
                    }
                }
                Ok(Err(error)) => self.create_failed(error),
                Err(_elapsed) => {
                    AtomicCounters::bump(&self.counters.create_failures);
                    self.release_slot();
                }
            }
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

fn grant_locked<O, E>(
    st: &mut State<O, E>,
    id: u64,
    grant: Grant<O, E>,
    deferred: &mut Deferred<O>,
) {
    if let Some(waiter) = st.waiters.get_mut(&id) {
        waiter.grant = Some(grant);
        if let Some(w) = waiter.waker.take() {
            deferred.wake.push(w);
        }
    }
}

fn fail_queue_locked<O, E: Clone>(
    st: &mut State<O, E>,
    error: &PoolError<E>,
    deferred: &mut Deferred<O>,
) {
    while let Some(id) = st.queue.pop_front() {
        grant_locked(st, id, Grant::Fail(error.clone()), deferred);
    }
}
