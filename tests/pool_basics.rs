//! The seed's checks, in spirit, plus the behaviours the pool promises
//! (reuse, retirement, back-off, maintenance, timeouts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use stdiopool::pool::{
    Backoff, Manager, ObjectMeta, Pool, PoolConfig, PoolError, Pooled, TimeoutStage,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("create failed: {0}")]
struct Fail(String);

#[derive(Debug, Default)]
struct Stats {
    created: AtomicU64,
    destroyed: AtomicU64,
    fail_create: AtomicBool,
    fail_recycle: AtomicBool,
}

#[derive(Debug)]
struct Obj {
    id: u64,
    broken: bool,
    stats: Arc<Stats>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.stats.destroyed.fetch_add(1, SeqCst);
    }
}

#[derive(Debug, Clone, Default)]
struct Mgr(Arc<Stats>);

impl Manager for Mgr {
    type Object = Obj;
    type Error = Fail;

    async fn create(&self) -> Result<Obj, Fail> {
        if self.0.fail_create.load(SeqCst) {
            return Err(Fail("no such command".into()));
        }
        let id = self.0.created.fetch_add(1, SeqCst);
        Ok(Obj {
            id,
            broken: false,
            stats: self.0.clone(),
        })
    }

    async fn recycle(&self, _obj: &mut Obj, _meta: &ObjectMeta) -> Result<(), Fail> {
        if self.0.fail_recycle.load(SeqCst) {
            return Err(Fail("stale".into()));
        }
        Ok(())
    }

    fn is_broken(&self, obj: &Obj) -> bool {
        obj.broken
    }
}

fn config(max: usize) -> PoolConfig {
    let mut config = PoolConfig::new(max);
    config.wait_timeout = Some(Duration::from_millis(200));
    config
}

#[tokio::test]
async fn one_object_serves_many_sequential_gets() {
    let mgr = Mgr::default();
    let pool = Pool::new(mgr.clone(), config(4));
    for _ in 0..1000 {
        let obj = pool.get().await.unwrap();
        assert_eq!(obj.id, 0);
    }
    assert_eq!(mgr.0.created.load(SeqCst), 1);
    assert_eq!(pool.counters().recycled, 999);
}

#[tokio::test]
async fn returned_objects_are_reused_most_recent_first() {
    let pool = Pool::new(Mgr::default(), config(4));
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let (ida, idb) = (a.id, b.id);
    drop(a);
    drop(b);
    assert_eq!(pool.get().await.unwrap().id, idb);
    assert_ne!(ida, idb);
    assert_eq!(pool.status().idle, 2);
}

#[tokio::test]
async fn last_handle_drop_cleans_up_and_a_clone_drop_does_not() {
    let mgr = Mgr::default();
    let pool = Pool::new(mgr.clone(), config(2));
    let held = pool.get().await.unwrap();
    drop(pool.get().await.unwrap()); // one idle
    let clone = pool.clone();
    drop(clone);
    assert_eq!(
        mgr.0.destroyed.load(SeqCst),
        0,
        "dropping a clone must not clean up"
    );
    assert_eq!(pool.status().idle, 1);
    drop(pool);
    assert_eq!(
        mgr.0.destroyed.load(SeqCst),
        1,
        "idle object destroyed by the last drop"
    );
    drop(held);
    assert_eq!(
        mgr.0.destroyed.load(SeqCst),
        2,
        "checked-out object destroyed on return"
    );
}

#[tokio::test]
async fn max_uses_one_is_spawn_per_request() {
    let mgr = Mgr::default();
    let mut config = config(1);
    config.max_uses = Some(1);
    let pool = Pool::new(mgr.clone(), config);
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(pool.get().await.unwrap().id);
    }
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(mgr.0.destroyed.load(SeqCst), 10);
    assert_eq!(pool.counters().retired, 10);
}

#[tokio::test]
async fn broken_and_discarded_objects_are_replaced() {
    let mgr = Mgr::default();
    let pool = Pool::new(mgr.clone(), config(1));
    let mut obj = pool.get().await.unwrap();
    obj.broken = true;
    drop(obj);
    let obj = pool.get().await.unwrap();
    assert_eq!(obj.id, 1);
    Pooled::discard(obj);
    assert_eq!(pool.get().await.unwrap().id, 2);
    assert_eq!(pool.counters().broken, 2);
}

#[tokio::test]
async fn failed_recycle_destroys_and_creates_afresh() {
    let mgr = Mgr::default();
    let pool = Pool::new(mgr.clone(), config(1));
    drop(pool.get().await.unwrap());
    mgr.0.fail_recycle.store(true, SeqCst);
    let obj = pool.get().await.unwrap();
    assert_eq!(obj.id, 1, "the stale object was replaced");
    assert_eq!(mgr.0.destroyed.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn exhausted_pool_times_out_waiting() {
    let pool = Pool::new(Mgr::default(), config(1));
    let _held = pool.get().await.unwrap();
    let err = pool.get().await.unwrap_err();
    assert_eq!(err, PoolError::Timeout(TimeoutStage::Wait));
    assert_eq!(pool.counters().timeouts, 1);
    assert!(pool.counters().wait_time >= Duration::from_millis(200));
    assert!(matches!(
        pool.try_get().await,
        Err(PoolError::Timeout(TimeoutStage::Wait))
    ));
}

#[tokio::test(start_paused = true)]
async fn failing_create_backs_off_and_fails_waiters_fast() {
    let mgr = Mgr::default();
    let mut config = config(2);
    config.wait_timeout = Some(Duration::from_secs(60));
    config.create_backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
    };
    let pool = Pool::new(mgr.clone(), config);
    let held = pool.get().await.unwrap();
    mgr.0.fail_create.store(true, SeqCst);
    assert_eq!(
        pool.get().await.unwrap_err(),
        PoolError::Create(Fail("no such command".into()))
    );
    // Within the window a get that would create fails at once, without calling create.
    let before = mgr.0.created.load(SeqCst);
    assert!(matches!(pool.get().await, Err(PoolError::Backoff(_))));
    assert_eq!(mgr.0.created.load(SeqCst), before);
    assert_eq!(pool.counters().create_failures, 1);
    // After the window it tries again (and fails again: the window doubles).
    tokio::time::advance(Duration::from_millis(1100)).await;
    assert!(matches!(pool.get().await, Err(PoolError::Create(_))));
    assert_eq!(pool.counters().create_failures, 2);
    // Recovery resets it.
    mgr.0.fail_create.store(false, SeqCst);
    tokio::time::advance(Duration::from_millis(2100)).await;
    assert!(pool.get().await.is_ok());
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_create_failure_fails_queued_waiters_instead_of_respawning() {
    let mgr = Mgr::default();
    let mut config = config(1);
    config.wait_timeout = Some(Duration::from_secs(60));
    config.create_backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(1),
    };
    let pool = Pool::new(mgr.clone(), config);
    let held = pool.get().await.unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(|o| o.id) })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(pool.status().waiting, 3);
    // The held object breaks; the first waiter gets its slot and its create
    // fails; the others are failed at once rather than each spawning again.
    mgr.0.fail_create.store(true, SeqCst);
    Pooled::discard(held);
    let mut outcomes = Vec::new();
    for w in waiters {
        outcomes.push(w.await.unwrap());
    }
    assert_eq!(
        mgr.0.created.load(SeqCst),
        1,
        "only the original object was ever created"
    );
    assert!(matches!(outcomes[0], Err(PoolError::Create(_))));
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o, Err(PoolError::Backoff(_))))
    );
    assert_eq!(pool.status().size, 0);
}

#[tokio::test(start_paused = true)]
async fn maintenance_keeps_min_idle_warm_and_trims_idle_objects() {
    let mgr = Mgr::default();
    let mut config = config(4);
    config.min_idle = 2;
    config.idle_timeout = Some(Duration::from_secs(10));
    let pool = Pool::new(mgr.clone(), config);
    pool.maintain().await;
    assert_eq!(pool.status().idle, 2);
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    pool.maintain().await; // two more warmed? room for only one
    assert_eq!(pool.status().size, 4);
    drop((a, b, c));
    assert_eq!(pool.status().idle, 4);
    tokio::time::advance(Duration::from_secs(11)).await;
    pool.maintain().await;
    assert_eq!(pool.status().idle, 2, "idle_timeout trims down to min_idle");
    assert_eq!(pool.counters().retired, 2);
}

#[tokio::test(start_paused = true)]
async fn maintenance_task_ends_when_the_last_handle_drops() {
    let mut config = config(2);
    config.min_idle = 1;
    let pool = Pool::new(Mgr::default(), config);
    let task = pool.spawn_maintenance().unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pool.status().idle, 1, "maintenance warmed min_idle");
    drop(pool);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_retires_objects_on_checkout_and_return() {
    let mgr = Mgr::default();
    let mut config = config(1);
    config.max_lifetime = Some(Duration::from_secs(5));
    let pool = Pool::new(mgr.clone(), config);
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(6)).await;
    let obj = pool.get().await.unwrap();
    assert_eq!(obj.id, 1);
    tokio::time::advance(Duration::from_secs(6)).await;
    drop(obj);
    assert_eq!(pool.status().size, 0);
    assert_eq!(pool.counters().retired, 2);
}

#[tokio::test]
async fn close_is_final() {
    let mgr = Mgr::default();
    let pool = Pool::new(mgr.clone(), config(2));
    let held = pool.get().await.unwrap();
    drop(pool.get().await.unwrap());
    pool.close();
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    assert_eq!(mgr.0.destroyed.load(SeqCst), 1);
    drop(held);
    assert_eq!(mgr.0.destroyed.load(SeqCst), 2);
    assert_eq!(pool.status().size, 0);
}

#[tokio::test]
async fn concurrent_gets_never_exceed_max_size() {
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let pool = Pool::new(Mgr::default(), config(3));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (pool, live, peak) = (pool.clone(), live.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let Ok(_obj) = pool.get().await else { continue };
                let now = live.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                tokio::task::yield_now().await;
                live.fetch_sub(1, SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(SeqCst) <= 3);
    assert!(pool.status().size <= 3);
    assert_eq!(pool.status().waiting, 0);
}

#[tokio::test]
async fn the_handle_reports_its_config_manager_status_and_closing() {
    let mgr = Mgr::default();
    let mut config = config(3);
    config.min_idle = 1;
    let pool = Pool::new(mgr.clone(), config.clone());
    assert_eq!(pool.config(), &config);
    assert!(Arc::ptr_eq(&pool.manager().0, &mgr.0));
    assert!(!pool.is_closed());
    let held = pool.get().await.unwrap();
    let debug = format!("{pool:?}");
    assert!(
        debug.contains("Pool") && debug.contains("size: 1") && debug.contains("max: 3"),
        "{debug}"
    );
    assert!(format!("{held:?}").contains("Pooled"));
    let status = pool.status();
    assert_eq!(
        (status.size, status.idle, status.in_use, status.max),
        (1, 0, 1, 3)
    );
    assert!(!status.closed && !status.create_failing);
    drop(held);
    pool.close();
    assert!(pool.is_closed());
    assert!(pool.status().closed);
}

#[test]
fn a_pool_config_holds_at_least_one_object() {
    assert_eq!(PoolConfig::new(0).max_size, 1);
    assert_eq!(PoolConfig::new(7).max_size, 7);
    let mut config = PoolConfig::new(1);
    config.max_size = 0;
    let pool = Pool::new(Mgr::default(), config);
    assert_eq!(pool.config().max_size, 1);
}

#[test]
fn pool_errors_say_what_ran_out() {
    let timeout: PoolError<Fail> = PoolError::Timeout(TimeoutStage::Wait);
    assert_eq!(timeout.to_string(), "timed out waiting for a free object");
    assert_eq!(
        PoolError::<Fail>::Timeout(TimeoutStage::Create).to_string(),
        "timed out creating an object"
    );
    assert_eq!(
        PoolError::<Fail>::Timeout(TimeoutStage::Recycle).to_string(),
        "timed out recycling an object"
    );
}

#[tokio::test]
async fn a_guard_reports_its_object_meta_and_counts_uses() {
    let pool = Pool::new(Mgr::default(), config(1));
    let obj = pool.get().await.unwrap();
    assert_eq!(Pooled::meta(&obj).uses, 1);
    drop(obj);
    let obj = pool.get().await.unwrap();
    let meta = Pooled::meta(&obj);
    assert_eq!(meta.uses, 2);
    assert!(meta.last_used >= meta.created);
    assert_eq!(pool.counters().recycled, 1);
    assert_eq!(pool.counters().created, 1);
}

/// The back-off window doubles with each consecutive failure (1 s, 2 s, 4 s …
/// up to `max`).
#[tokio::test(start_paused = true)]
async fn the_backoff_window_doubles_with_each_failure() {
    let mgr = Mgr::default();
    let mut config = config(1);
    config.create_backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(3),
    };
    let pool = Pool::new(mgr.clone(), config);
    mgr.0.fail_create.store(true, SeqCst);
    assert!(matches!(pool.get().await, Err(PoolError::Create(_))));
    let mut window_ends = Vec::new();
    for _ in 0..5 {
        // Backing off: gets fail fast until the window ends; the first get
        // after it tries to create, fails, and opens the next window.
        let start = tokio::time::Instant::now();
        loop {
            match pool.get().await {
                Err(PoolError::Backoff(_)) => {
                    tokio::time::advance(Duration::from_millis(250)).await;
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "back-off never ends"
                    );
                }
                Err(PoolError::Create(_)) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        window_ends.push(start.elapsed());
    }
    // Windows after failures 1..=5: 1 s, 2 s, then capped at 3 s.
    assert_eq!(
        window_ends,
        [1000, 2000, 3000, 3000, 3000].map(Duration::from_millis),
        "{window_ends:?}"
    );
}

/// Polls `fut` once with `waker`.
fn poll_with<F: std::future::Future + Unpin>(
    fut: &mut F,
    waker: &std::task::Waker,
) -> std::task::Poll<F::Output> {
    std::pin::Pin::new(fut).poll(&mut std::task::Context::from_waker(waker))
}

/// Counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Closing takes back what was granted to a waiter that has not yet polled
/// for it (an object, or a slot), and the waiter then sees `Closed`.
#[tokio::test]
async fn close_takes_back_grants_not_yet_collected() {
    for discard in [false, true] {
        let mgr = Mgr::default();
        let pool = Pool::new(mgr.clone(), config(1));
        let held = pool.get().await.unwrap();
        let mut waiter = Box::pin(pool.get());
        assert!(poll_with(&mut waiter, std::task::Waker::noop()).is_pending());
        if discard {
            Pooled::discard(held); // the waiter is granted the slot
        } else {
            drop(held); // the waiter is granted the object
        }
        pool.close();
        assert_eq!(pool.status().size, 0, "discard={discard}");
        assert_eq!(
            mgr.0.destroyed.load(SeqCst),
            mgr.0.created.load(SeqCst),
            "discard={discard}"
        );
        assert!(matches!(
            poll_with(&mut waiter, std::task::Waker::noop()),
            std::task::Poll::Ready(Err(PoolError::Closed))
        ));
    }
}

/// A waiter polled again from another task (a new waker) is woken through
/// the new waker, not the stale one.
#[tokio::test]
async fn a_waiter_is_woken_through_its_latest_waker() {
    let pool = Pool::new(Mgr::default(), config(1));
    let held = pool.get().await.unwrap();
    let first = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let latest = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let mut waiter = Box::pin(pool.get());
    assert!(poll_with(&mut waiter, &first.clone().into()).is_pending());
    assert!(poll_with(&mut waiter, &latest.clone().into()).is_pending());
    drop(held);
    assert_eq!(latest.0.load(SeqCst), 1, "the latest waker is woken");
    assert_eq!(first.0.load(SeqCst), 0);
    assert!(poll_with(&mut waiter, std::task::Waker::noop()).is_ready());
}

/// A `create` that outlives `create_timeout` fails that `get` with
/// `Timeout(Create)` and frees its slot, on the `get` path and in maintenance.
#[tokio::test(start_paused = true)]
async fn a_create_timeout_frees_its_slot() {
    #[derive(Debug)]
    struct Slow(Arc<AtomicBool>);
    impl Manager for Slow {
        type Object = ();
        type Error = Fail;
        async fn create(&self) -> Result<(), Fail> {
            if self.0.load(SeqCst) {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(())
        }
        async fn recycle(&self, _obj: &mut (), _meta: &ObjectMeta) -> Result<(), Fail> {
            Ok(())
        }
        fn is_broken(&self, _obj: &()) -> bool {
            false
        }
    }
    let slow = Arc::new(AtomicBool::new(true));
    let mut config = config(1);
    config.min_idle = 1;
    config.create_timeout = Some(Duration::from_secs(1));
    let pool = Pool::new(Slow(slow.clone()), config);
    assert_eq!(
        pool.get().await.unwrap_err(),
        PoolError::Timeout(TimeoutStage::Create)
    );
    assert_eq!(pool.status().size, 0);
    pool.maintain().await;
    assert_eq!(pool.status().size, 0, "maintenance's timed-out create");
    assert_eq!(pool.counters().create_failures, 2);
    slow.store(false, SeqCst);
    assert!(pool.get().await.is_ok());
}

/// While creation is backing off, maintenance does not spawn into the failing
/// command; after the window it warms again.
#[tokio::test(start_paused = true)]
async fn maintenance_does_not_warm_while_backing_off() {
    let mgr = Mgr::default();
    let mut config = config(2);
    config.min_idle = 2;
    config.create_backoff = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
    };
    let pool = Pool::new(mgr.clone(), config);
    mgr.0.fail_create.store(true, SeqCst);
    assert!(matches!(pool.get().await, Err(PoolError::Create(_))));
    mgr.0.fail_create.store(false, SeqCst);
    pool.maintain().await;
    assert_eq!(mgr.0.created.load(SeqCst), 0, "warmed while backing off");
    assert_eq!(pool.status().size, 0);
    tokio::time::advance(Duration::from_secs(6)).await;
    pool.maintain().await;
    assert_eq!(pool.status().idle, 2);
}

/// Two maintenance passes at once: the second counts the first's warming
/// slots toward `min_idle` and takes none.
#[tokio::test]
async fn concurrent_maintenance_passes_warm_min_idle_once() {
    #[derive(Debug)]
    struct Gate(Arc<tokio::sync::Semaphore>);
    impl Manager for Gate {
        type Object = ();
        type Error = Fail;
        async fn create(&self) -> Result<(), Fail> {
            match self.0.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return Err(Fail("closed".into())),
            }
            Ok(())
        }
        async fn recycle(&self, _obj: &mut (), _meta: &ObjectMeta) -> Result<(), Fail> {
            Ok(())
        }
        fn is_broken(&self, _obj: &()) -> bool {
            false
        }
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut config = config(4);
    config.min_idle = 2;
    let pool = Pool::new(Gate(gate.clone()), config);
    let mut first = Box::pin(pool.maintain());
    assert!(poll_with(&mut first, std::task::Waker::noop()).is_pending());
    assert_eq!(pool.status().size, 2, "the first pass warms two");
    let mut second = Box::pin(pool.maintain());
    assert!(poll_with(&mut second, std::task::Waker::noop()).is_ready());
    assert_eq!(pool.status().size, 2, "the second pass takes none");
    gate.add_permits(2);
    first.await;
    assert_eq!(pool.status().idle, 2);
}
