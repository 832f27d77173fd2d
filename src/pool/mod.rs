//! The concurrency core: a bounded, cancel-safe pool of exclusive objects.
//!
//! No I/O, no processes, no JSON: a [`Manager`] supplies objects, the pool
//! lends them out. The pool's invariants (docs/ARCHITECTURE.md, "Why each invariant holds";
//! docs/VERIFICATION.md) and where each is proven:
//!
//! | invariant | holds because | proven by |
//! |---|---|---|
//! | bounded | every slot is taken under the lock against `max_size` | `loom_pool::bounded_*`, `pool_state_machine` |
//! | no lost slot | each slot-taking step has a guard whose `Drop` gives it back (`get`: `Wait`, `Checkout`, `SlotGuard`; `maintain`: `shared::Warming`) | `loom_pool::no_lost_slot_*`, `pool_cancel_points`, `pool_cancellation`, the state checker |
//! | no lost wake-up | waiters queue only when nothing is free; freeing serves the queue first | `loom_pool::no_lost_wakeup_*` |
//! | exactly-once destruction | objects move by value; every path ends in one drop | `loom_pool::exactly_once_destruction`, `pool_state_machine` |
//! | last reference | cleanup is `Drop` of the handle's inner value, run once by `Arc` | `loom_pool::last_reference_*` (+ the negative control) |
//! | close is final | `closed` is checked under the lock by every entry point | `loom_pool::close_is_final` |
//!
//! In test and loom builds the state checks its own accounting after every
//! locked section (`shared::State::check`). See docs/ARCHITECTURE.md for the
//! state machine and the table of every await, and docs/VERIFICATION.md for
//! how each proof is rerun.

mod config;
mod error;
mod guard;
mod manager;
mod shared;
mod state;
mod status;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use crate::sync::Instant;
pub use config::{Backoff, PoolConfig};
pub use error::{PoolError, TimeoutStage};
pub use guard::Pooled;
pub use manager::{Manager, ObjectMeta};
pub use status::{Counters, Status};

use shared::{Destroy, Entry, Grant, Hold, Reserve, Shared};
use status::AtomicCounters;

/// A handle to a pool. Clones share one pool; dropping the last handle closes
/// it (see [`Pool::close`]).
pub struct Pool<M: Manager> {
    handle: crate::sync::Arc<Handle<M>>,
}

/// The value behind every handle. Its `Drop` is the last-reference cleanup:
/// `Arc` runs it exactly once, when the last handle goes, whichever thread
/// that is. (Checking `Arc::strong_count` in `Drop for Pool` instead races:
/// two handles dropped at once can both see 2. `loom-tests/pool.rs` keeps
/// that variant as a negative control.)
struct Handle<M: Manager> {
    shared: std::sync::Arc<Shared<M>>,
}

impl<M: Manager> Drop for Handle<M> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("shared", &self.handle.shared)
            .finish()
    }
}

/// `spawn_maintenance` was called outside a tokio runtime.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("pool maintenance needs a tokio runtime")]
pub struct NoRuntime;

impl<M: Manager> Pool<M> {
    /// A pool of objects made by `manager`. No object is created until asked
    /// for (or until maintenance warms `min_idle`).
    pub fn new(manager: M, config: PoolConfig) -> Self {
        Self {
            handle: crate::sync::Arc::new(Handle {
                shared: std::sync::Arc::new(Shared::new(manager, config)),
            }),
        }
    }

    fn shared(&self) -> &std::sync::Arc<Shared<M>> {
        &self.handle.shared
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.shared().manager
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.shared().config
    }

    /// Checks out an object: an idle one (recycled first), a new one if a slot
    /// is free, or the next one returned, waiting up to `wait_timeout`.
    ///
    /// Cancel-safe: dropping the future at any await gives back whatever it
    /// held (a queued place, a granted object, a slot being created into).
    #[must_use = "a checked-out object is returned as soon as its guard is dropped"]
    pub async fn get(&self) -> Result<Pooled<M>, PoolError<M::Error>> {
        get(self.shared(), true).await
    }

    /// Like [`get`](Self::get) but never waits for another checkout to be
    /// returned: fails with `Timeout(Wait)` when the pool is at `max_size` with
    /// nothing idle. (It may still create or recycle.)
    #[must_use = "a checked-out object is returned as soon as its guard is dropped"]
    pub async fn try_get(&self) -> Result<Pooled<M>, PoolError<M::Error>> {
        get(self.shared(), false).await
    }

    /// Closes the pool: `get` fails with `Closed` from now on, idle objects are
    /// destroyed, waiters are woken with `Closed`, and checked-out objects are
    /// destroyed when their guards drop. Idempotent.
    pub fn close(&self) {
        self.shared().close();
    }

    /// Whether the pool is closed.
    pub fn is_closed(&self) -> bool {
        self.shared().is_closed()
    }

    /// What the pool holds right now.
    pub fn status(&self) -> Status {
        self.shared().status()
    }

    /// What the pool has done since it was built.
    pub fn counters(&self) -> Counters {
        self.shared().counters.snapshot()
    }

    /// Runs one maintenance pass now: destroys broken, outlived and
    /// idle-timed-out idle objects, then creates objects up to `min_idle`.
    ///
    /// Cancel-safe: dropping the future mid-`create` gives back every slot
    /// the pass took and has not yet filled.
    pub async fn maintain(&self) {
        self.shared().maintain().await;
    }

    /// Starts the maintenance task on the current tokio runtime. It holds only
    /// a `Weak` to the pool and ends by itself once the pool is closed or its
    /// last handle dropped.
    pub fn spawn_maintenance(&self) -> Result<tokio::task::JoinHandle<()>, NoRuntime> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NoRuntime)?;
        let weak = std::sync::Arc::downgrade(self.shared());
        let refill = self.shared().refill.clone();
        let closing = self.shared().closing.clone();
        let interval = self.config().maintenance_interval;
        Ok(runtime.spawn(async move {
            loop {
                {
                    let Some(shared) = weak.upgrade() else { break };
                    // Closing ends the task, and cancels a pass stuck in a
                    // slow `create` (its guard gives the slots back) so the
                    // pool is let go at once.
                    tokio::select! {
                        biased;
                        () = closing.cancelled() => break,
                        () = shared.maintain() => {}
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = refill.notified() => {}
                }
            }
            tracing::debug!("pool maintenance ended");
        }))
    }
}

async fn get<M: Manager>(
    shared: &std::sync::Arc<Shared<M>>,
    may_wait: bool,
) -> Result<Pooled<M>, PoolError<M::Error>> {
    // Read the clock only if this get has to wait.
    let mut start: Option<Instant> = None;
    loop {
        let acquired = match shared.reserve(may_wait)? {
            Reserve::Queued(id) => {
                let start = *start.get_or_insert_with(Instant::now);
                let wait = Wait {
                    shared,
                    id,
                    done: false,
                };
                let budget = shared
                    .config
                    .wait_timeout
                    .map(|t| t.saturating_sub(start.elapsed()));
                let granted = crate::sync::timeout(budget, wait).await;
                shared.counters.add_wait(start.elapsed());
                match granted {
                    Ok(Grant::Object(entry)) => Acquired::Object(entry),
                    Ok(Grant::Slot) => Acquired::Slot,
                    Ok(Grant::Fail(error)) => return Err(error),
                    Err(_elapsed) => {
                        AtomicCounters::bump(&shared.counters.timeouts);
                        return Err(PoolError::Timeout(TimeoutStage::Wait));
                    }
                }
            }
            Reserve::Object(entry) => Acquired::Object(entry),
            Reserve::Slot => Acquired::Slot,
        };
        match acquired {
            Acquired::Object(entry) => {
                if let Some(entry) = recycle(shared, entry).await {
                    return Ok(Pooled::new(entry, std::sync::Arc::downgrade(shared)));
                }
                // Recycling failed and destroyed it; its slot went to the
                // queue or back to the free count. Try again.
            }
            Acquired::Slot => return create(shared).await,
        }
    }
}

enum Acquired<O> {
    Object(Entry<O>),
    Slot,
}

/// Recycles a checked-out idle object; `None` if it failed (and was destroyed).
async fn recycle<M: Manager>(
    shared: &Shared<M>,
    entry: Entry<M::Object>,
) -> Option<Entry<M::Object>> {
    // If this future is dropped mid-recycle, the object is in an unknown
    // state: destroy it and free the slot (deadpool's `UnreadyObject`).
    let mut checkout = Checkout {
        shared,
        entry: Some(entry),
    };
    let outcome = match checkout.entry.as_mut() {
        Some(entry) => {
            let meta = entry.meta;
            crate::sync::timeout(
                shared.config.recycle_timeout,
                shared.manager.recycle(&mut entry.obj, &meta),
            )
            .await
        }
        None => return None,
    };
    match outcome {
        Ok(Ok(())) => {
            AtomicCounters::bump(&shared.counters.recycled);
            checkout.entry.take()
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "recycle failed; destroying the object");
            None // `checkout` drops here and destroys it.
        }
        Err(_elapsed) => {
            tracing::debug!("recycle timed out; destroying the object");
            None
        }
    }
}

/// Creates into a reserved slot.
async fn create<M: Manager>(
    shared: &std::sync::Arc<Shared<M>>,
) -> Result<Pooled<M>, PoolError<M::Error>> {
    // Dropped mid-create (the caller gave up), the slot is given back.
    let slot = SlotGuard {
        shared,
        armed: true,
    };
    let outcome = crate::sync::timeout(shared.config.create_timeout, shared.manager.create()).await;
    slot.disarm();
    match outcome {
        Ok(Ok(obj)) => {
            let entry = shared.created(obj, Hold::Creating)?;
            Ok(Pooled::new(entry, std::sync::Arc::downgrade(shared)))
        }
        Ok(Err(error)) => {
            shared.create_failed(error.clone(), Hold::Creating);
            Err(PoolError::Create(error))
        }
        Err(_elapsed) => {
            AtomicCounters::bump(&shared.counters.timeouts);
            shared.create_timed_out(Hold::Creating);
            Err(PoolError::Timeout(TimeoutStage::Create))
        }
    }
}

/// A queued `get`. Dropping it before it completes passes on whatever it was
/// granted, so a slot handed to a future that is never polled again is not lost.
struct Wait<'a, M: Manager> {
    shared: &'a Shared<M>,
    id: u64,
    done: bool,
}

impl<M: Manager> Future for Wait<'_, M> {
    type Output = Grant<M::Object, M::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let poll = self.shared.poll_grant(self.id, cx);
        if poll.is_ready() {
            self.done = true;
        }
        poll
    }
}

impl<M: Manager> Drop for Wait<'_, M> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancel_wait(self.id);
        }
    }
}

/// An object between checkout and a finished `recycle`.
struct Checkout<'a, M: Manager> {
    shared: &'a Shared<M>,
    entry: Option<Entry<M::Object>>,
}

impl<M: Manager> Drop for Checkout<'_, M> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.shared.destroy(entry, Destroy::Broken);
        }
    }
}

/// A reserved slot whose `create` has not finished.
struct SlotGuard<'a, M: Manager> {
    shared: &'a Shared<M>,
    armed: bool,
}

impl<M: Manager> SlotGuard<'_, M> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<M: Manager> Drop for SlotGuard<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.release_slot(Hold::Creating);
        }
    }
}
