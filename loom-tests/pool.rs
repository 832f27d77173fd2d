//! Loom models of the pool core: one model per invariant of DESIGN §3, each
//! named after it, plus a negative control that shows the models can fail.
//!
//! Run (release, as tokio's CI does):
//!
//! ```text
//! RUSTFLAGS="--cfg stdiopool_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test --release --test loom_pool
//! ```
//!
//! Each model is small: two or three threads, one scenario, assertions about
//! the end state. A lost wake-up or a lost slot shows up as a `get` that never
//! completes, which loom reports as a deadlock.
#![cfg(stdiopool_loom)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use loom::future::block_on;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;

use stdiopool::pool::{Backoff, Manager, ObjectMeta, Pool, PoolConfig, PoolError, Pooled};

#[derive(Debug, Clone, thiserror::Error)]
#[error("test manager error")]
struct TestError;

/// Counts live, created and destroyed objects with loom atomics, and checks
/// the bound at the moment of creation.
#[derive(Debug, Clone)]
struct Tally {
    live: Arc<AtomicUsize>,
    created: Arc<AtomicUsize>,
    destroyed: Arc<AtomicUsize>,
}

impl Tally {
    fn new() -> Self {
        Self {
            live: Arc::new(AtomicUsize::new(0)),
            created: Arc::new(AtomicUsize::new(0)),
            destroyed: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Every object made was destroyed exactly once, and none is alive.
    fn assert_all_destroyed_once(&self) {
        assert_eq!(self.live.load(SeqCst), 0, "an object outlived the pool");
        assert_eq!(
            self.created.load(SeqCst),
            self.destroyed.load(SeqCst),
            "created and destroyed differ"
        );
    }
}

#[derive(Debug)]
struct Obj {
    tally: Tally,
    broken: bool,
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.tally.live.fetch_sub(1, SeqCst);
        self.tally.destroyed.fetch_add(1, SeqCst);
    }
}

#[derive(Debug)]
struct Mgr {
    tally: Tally,
    max: usize,
    /// `create` is pending once (waking itself) before it makes the object,
    /// so a caller can be cut mid-create.
    yield_in_create: bool,
}

/// Pending once, waking itself, then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Manager for Mgr {
    type Object = Obj;
    type Error = TestError;

    async fn create(&self) -> Result<Obj, TestError> {
        if self.yield_in_create {
            YieldOnce(false).await;
        }
        let live = self.tally.live.fetch_add(1, SeqCst) + 1;
        assert!(
            live <= self.max,
            "bounded: {live} objects alive, max {}",
            self.max
        );
        self.tally.created.fetch_add(1, SeqCst);
        Ok(Obj {
            tally: self.tally.clone(),
            broken: false,
        })
    }

    async fn recycle(&self, _obj: &mut Obj, _meta: &ObjectMeta) -> Result<(), TestError> {
        Ok(())
    }

    fn is_broken(&self, obj: &Obj) -> bool {
        obj.broken
    }
}

fn pool(max: usize) -> (Pool<Mgr>, Tally) {
    pool_with(max, 0, false)
}

fn pool_with(max: usize, min_idle: usize, yield_in_create: bool) -> (Pool<Mgr>, Tally) {
    let tally = Tally::new();
    let mut config = PoolConfig::new(max);
    config.min_idle = min_idle;
    config.wait_timeout = None;
    config.create_timeout = None;
    config.recycle_timeout = None;
    config.create_backoff = Backoff::NONE;
    let mgr = Mgr {
        tally: tally.clone(),
        max,
        yield_in_create,
    };
    (Pool::new(mgr, config), tally)
}

fn get(pool: &Pool<Mgr>) -> Pooled<Mgr> {
    block_on(pool.get()).expect("get")
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    fut.poll(&mut cx)
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

// ---- bounded ----------------------------------------------------------------

#[test]
fn bounded_two_threads_contend_for_one_slot() {
    model(|| {
        let (pool, tally) = pool(1);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || drop(get(&pool)))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let status = pool.status();
        assert_eq!((status.size, status.idle, status.waiting), (1, 1, 0));
        assert_eq!(tally.created.load(SeqCst), 1);
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

#[test]
fn bounded_when_broken_objects_are_replaced_concurrently() {
    model(|| {
        let (pool, tally) = pool(1);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let mut obj = get(&pool);
                    obj.broken = true; // destroyed on return, slot re-used
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.status().size, 0);
        assert_eq!(tally.created.load(SeqCst), 2);
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

// ---- no lost wake-up --------------------------------------------------------

#[test]
fn no_lost_wakeup_when_return_races_a_new_waiter() {
    model(|| {
        let (pool, tally) = pool(1);
        let held = get(&pool);
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || drop(get(&pool)))
        };
        drop(held);
        waiter.join().unwrap(); // a lost wake-up deadlocks here
        assert_eq!(pool.status().idle, 1);
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

#[test]
fn no_lost_wakeup_when_a_discarded_object_frees_the_slot() {
    model(|| {
        let (pool, tally) = pool(1);
        let held = get(&pool);
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || drop(get(&pool)))
        };
        Pooled::discard(held);
        waiter.join().unwrap();
        assert_eq!(tally.created.load(SeqCst), 2);
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

// ---- no lost slot -------------------------------------------------------------

/// A `get` queued behind a checkout is dropped while the checkout is returned:
/// wherever the drop lands (before the grant, or after it and before the next
/// poll), the object ends up idle and the pool still serves.
#[test]
fn no_lost_slot_when_a_waiting_get_is_dropped() {
    model(|| {
        let (pool, tally) = pool(1);
        let held = get(&pool);
        let canceller = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut fut = pin!(pool.get());
                if let Poll::Ready(obj) = poll_once(fut.as_mut()) {
                    drop(obj.expect("get"));
                }
                // dropped here: queued, or granted but never polled again
            })
        };
        drop(held);
        canceller.join().unwrap();
        let status = pool.status();
        assert_eq!((status.size, status.idle, status.waiting), (1, 1, 0));
        drop(get(&pool)); // a lost slot deadlocks here
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

/// As above, but the slot is granted as a fresh slot (the held object is
/// discarded): the abandoned grant must free the slot.
#[test]
fn no_lost_slot_when_a_get_granted_a_slot_is_dropped_unpolled() {
    model(|| {
        let (pool, tally) = pool(1);
        let held = get(&pool);
        let canceller = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut fut = pin!(pool.get());
                if let Poll::Ready(obj) = poll_once(fut.as_mut()) {
                    drop(obj.expect("get"));
                }
            })
        };
        Pooled::discard(held);
        canceller.join().unwrap();
        assert_eq!(pool.status().waiting, 0);
        drop(get(&pool));
        assert_eq!(pool.status().size, 1);
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

/// A maintenance pass is cut mid-`create` (its future dropped) while a `get`
/// runs on another thread: the slots the pass took must come back, so the
/// `get` is served wherever the cut lands (issue 11: before the fix, the
/// pass's slots were lost and the `get` waited forever, which loom reports
/// as a deadlock).
#[test]
fn no_lost_slot_when_maintain_is_cancelled_mid_create() {
    model(|| {
        let (pool, tally) = pool_with(1, 1, true);
        let getter = {
            let pool = pool.clone();
            thread::spawn(move || drop(get(&pool)))
        };
        {
            let mut pass = pin!(pool.maintain());
            let _ = poll_once(pass.as_mut());
            // dropped here: before taking a slot, mid-create, or done
        }
        getter.join().unwrap(); // deadlocks if the pass's slot was lost
        let status = pool.status();
        assert_eq!((status.in_use, status.waiting), (0, 0));
        drop(get(&pool));
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

/// The pool is closed while a maintenance pass is mid-`create`, and the pass
/// is then cut (as the maintenance task does on close): nothing stays
/// counted, and `get` fails fast.
#[test]
fn close_is_final_for_a_maintenance_pass_cut_mid_create() {
    model(|| {
        let (pool, tally) = pool_with(1, 1, true);
        let closer = {
            let pool = pool.clone();
            thread::spawn(move || pool.close())
        };
        {
            let mut pass = pin!(pool.maintain());
            let _ = poll_once(pass.as_mut());
        }
        closer.join().unwrap();
        let status = pool.status();
        assert_eq!((status.size, status.idle), (0, 0));
        assert!(matches!(block_on(pool.get()), Err(PoolError::Closed)));
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

/// A cancelled waiter and a live waiter: the grant the cancelled one abandons
/// must reach the live one.
#[test]
fn no_lost_slot_handoff_passes_on_to_the_next_waiter() {
    model(|| {
        let (pool, tally) = pool(1);
        let held = get(&pool);
        let mut cancelled = {
            let pool = pool.clone();
            Box::pin(async move { pool.get().await.map(drop) })
        };
        assert!(poll_once(cancelled.as_mut()).is_pending());
        let live = {
            let pool = pool.clone();
            thread::spawn(move || drop(get(&pool)))
        };
        let canceller = thread::spawn(move || drop(cancelled));
        drop(held);
        canceller.join().unwrap();
        live.join().unwrap(); // deadlocks if the hand-off vanished
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

// ---- exactly-once destruction ---------------------------------------------------

#[test]
fn exactly_once_destruction_across_reuse_breakage_and_close() {
    model(|| {
        let (pool, tally) = pool(2);
        let a = {
            let pool = pool.clone();
            thread::spawn(move || {
                drop(get(&pool));
                let mut obj = get(&pool);
                obj.broken = true;
            })
        };
        let b = {
            let pool = pool.clone();
            thread::spawn(move || {
                let obj = get(&pool);
                drop(obj);
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        let created = tally.created.load(SeqCst);
        assert!((1..=3).contains(&created));
        drop(pool);
        tally.assert_all_destroyed_once();
    });
}

// ---- last reference ---------------------------------------------------------------

/// The shape shared by the real model and the negative control: two handles
/// dropped at once on two threads must run the cleanup exactly once.
fn two_handles_dropped_at_once<P: Send + 'static>(
    make: impl Fn() -> (P, P, Box<dyn Fn() -> usize>),
) {
    let (p1, p2, cleanups) = make();
    let t1 = thread::spawn(move || drop(p1));
    let t2 = thread::spawn(move || drop(p2));
    t1.join().unwrap();
    t2.join().unwrap();
    assert_eq!(
        cleanups(),
        1,
        "last-reference cleanup must run exactly once"
    );
}

#[test]
fn last_reference_two_clones_dropped_at_once() {
    model(|| {
        two_handles_dropped_at_once(|| {
            let (pool, tally) = pool(1);
            drop(get(&pool)); // one idle object that only the cleanup destroys
            let destroyed = tally.destroyed.clone();
            let clone = pool.clone();
            (pool, clone, Box::new(move || destroyed.load(SeqCst)))
        });
    });
}

#[test]
fn last_reference_dropping_a_clone_changes_nothing() {
    model(|| {
        let (pool, tally) = pool(1);
        drop(get(&pool));
        let clone = pool.clone();
        thread::spawn(move || drop(clone)).join().unwrap();
        assert!(!pool.is_closed());
        assert_eq!(pool.status().idle, 1);
        assert_eq!(tally.destroyed.load(SeqCst), 0);
        drop(get(&pool));
    });
}

#[test]
fn last_reference_guard_returned_while_the_last_handle_drops() {
    model(|| {
        let (pool, tally) = pool(1);
        let held = get(&pool);
        let t1 = thread::spawn(move || drop(held));
        let t2 = thread::spawn(move || drop(pool));
        t1.join().unwrap();
        t2.join().unwrap();
        tally.assert_all_destroyed_once();
    });
}

// ---- close is final -------------------------------------------------------------

#[test]
fn close_is_final_for_waiters_and_returns() {
    model(|| {
        let (pool, tally) = pool(1);
        let held = get(&pool);
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || block_on(pool.get()).map(drop))
        };
        pool.close();
        drop(held); // returned into a closed pool: destroyed
        let outcome = waiter.join().unwrap();
        assert!(matches!(outcome, Err(PoolError::Closed)), "{outcome:?}");
        assert!(matches!(block_on(pool.get()), Err(PoolError::Closed)));
        assert_eq!(pool.status().size, 0);
        tally.assert_all_destroyed_once();
    });
}

// ---- negative control ------------------------------------------------------------

/// The seed's racy design: cleanup in `Drop for Pool`, guarded by
/// `Arc::strong_count(&self.inner) == 1`.
struct RacyPool {
    inner: Arc<RacyInner>,
}

struct RacyInner {
    cleanups: Arc<AtomicUsize>,
}

impl Drop for RacyPool {
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            self.inner.cleanups.fetch_add(1, SeqCst);
        }
    }
}

/// Passes only if loom finds the interleaving where both handles read a count
/// of 2 and nobody cleans up: proof that `two_handles_dropped_at_once` can fail.
#[test]
fn negative_control_strong_count_drop_is_caught() {
    let caught = std::panic::catch_unwind(|| {
        model(|| {
            two_handles_dropped_at_once(|| {
                let cleanups = Arc::new(AtomicUsize::new(0));
                let p1 = RacyPool {
                    inner: Arc::new(RacyInner {
                        cleanups: cleanups.clone(),
                    }),
                };
                let p2 = RacyPool {
                    inner: p1.inner.clone(),
                };
                (p1, p2, Box::new(move || cleanups.load(SeqCst)))
            });
        });
    });
    assert!(
        caught.is_err(),
        "loom did not find the strong_count race: the models cannot be trusted"
    );
}
