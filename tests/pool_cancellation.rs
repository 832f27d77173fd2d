//! deadpool's `managed_cancellation` idea: every combination of create and
//! recycle behaving Ok / Err / slow / never, with `get` futures cut off by
//! timeouts at many points. Afterwards the pool must be bounded, have nobody
//! waiting, and serve `max_size` objects at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use stdiopool::pool::{Backoff, Manager, ObjectMeta, Pool, PoolConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    Ok,
    Err,
    Slow,
    Never,
}

const STEPS: [Step; 4] = [Step::Ok, Step::Err, Step::Slow, Step::Never];
const MAX: usize = 2;

impl Step {
    async fn run(self) -> Result<(), Fail> {
        match self {
            Step::Ok => Ok(()),
            Step::Err => Err(Fail),
            Step::Slow => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            }
            Step::Never => std::future::pending().await,
        }
    }

    fn from(raw: u8) -> Step {
        STEPS[usize::from(raw)]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step failed")]
struct Fail;

#[derive(Debug, Default)]
struct Behaviour {
    create: AtomicU8,
    recycle: AtomicU8,
    live: AtomicUsize,
    peak: AtomicUsize,
}

#[derive(Debug)]
struct Obj(Arc<Behaviour>);

impl Drop for Obj {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

#[derive(Debug)]
struct Mgr(Arc<Behaviour>);

impl Manager for Mgr {
    type Object = Obj;
    type Error = Fail;

    async fn create(&self) -> Result<Obj, Fail> {
        Step::from(self.0.create.load(SeqCst)).run().await?;
        let live = self.0.live.fetch_add(1, SeqCst) + 1;
        self.0.peak.fetch_max(live, SeqCst);
        Ok(Obj(self.0.clone()))
    }

    async fn recycle(&self, _obj: &mut Obj, _meta: &ObjectMeta) -> Result<(), Fail> {
        Step::from(self.0.recycle.load(SeqCst)).run().await
    }

    fn is_broken(&self, _obj: &Obj) -> bool {
        false
    }
}

async fn scenario(create: Step, recycle: Step, cutoff: Duration, warm: usize) {
    let behaviour = Arc::new(Behaviour::default());
    let mut config = PoolConfig::new(MAX);
    config.wait_timeout = None;
    config.create_timeout = None;
    config.recycle_timeout = None;
    config.create_backoff = Backoff::NONE;
    let pool = Pool::new(Mgr(behaviour.clone()), config);

    // Some idle objects first, so recycle paths are taken.
    let warmed: Vec<_> = (0..warm).map(|_| pool.get()).collect();
    for g in futures_util::future::join_all(warmed).await {
        drop(g.unwrap());
    }
    behaviour.create.store(create as u8, SeqCst);
    behaviour.recycle.store(recycle as u8, SeqCst);

    let gets: Vec<_> = (0..5)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                // Stagger so the cut-offs land at different points.
                tokio::time::sleep(Duration::from_millis(i * 3)).await;
                if let Ok(Ok(obj)) = tokio::time::timeout(cutoff, pool.get()).await {
                    tokio::time::sleep(Duration::from_millis(7)).await;
                    drop(obj);
                }
            })
        })
        .collect();
    for g in gets {
        g.await.unwrap();
    }
    let label = format!("create={create:?} recycle={recycle:?} cutoff={cutoff:?} warm={warm}");
    assert!(behaviour.peak.load(SeqCst) <= MAX, "bounded: {label}");
    let status = pool.status();
    assert!(status.size <= MAX, "size {}: {label}", status.size);
    assert_eq!(status.waiting, 0, "{label}");

    // Keeps serving: with healthy steps, `MAX` objects at once.
    behaviour.create.store(Step::Ok as u8, SeqCst);
    behaviour.recycle.store(Step::Ok as u8, SeqCst);
    let all: Vec<_> = futures_util::future::join_all((0..MAX).map(|_| pool.get()))
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}: {label}")))
        .collect();
    assert_eq!(pool.status().size, MAX, "{label}");
    drop(all);
    drop(pool);
    assert_eq!(behaviour.live.load(SeqCst), 0, "leaked objects: {label}");
}

#[tokio::test(start_paused = true)]
async fn every_step_outcome_with_every_cutoff_leaves_the_pool_bounded_and_serving() {
    let cutoffs = [0u64, 1, 5, 10, 19, 21, 40, 100].map(Duration::from_millis);
    for create in STEPS {
        for recycle in STEPS {
            for cutoff in cutoffs {
                for warm in 0..=MAX {
                    scenario(create, recycle, cutoff, warm).await;
                }
            }
        }
    }
}

// ---- maintain, cancelled (issue 11) -------------------------------------------

/// A manager whose `create` takes `delay` (or never finishes, with `None`).
#[derive(Debug)]
struct SlowMgr {
    delay: Option<Duration>,
    /// Creates left that finish at once, before `delay` applies.
    fast: AtomicUsize,
    live: Arc<AtomicUsize>,
}

impl Manager for SlowMgr {
    type Object = Obj2;
    type Error = Fail;

    async fn create(&self) -> Result<Obj2, Fail> {
        let fast = self
            .fast
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        match self.delay {
            _ if fast => {}
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
        self.live.fetch_add(1, SeqCst);
        Ok(Obj2(self.live.clone()))
    }

    async fn recycle(&self, _obj: &mut Obj2, _meta: &ObjectMeta) -> Result<(), Fail> {
        Ok(())
    }

    fn is_broken(&self, _obj: &Obj2) -> bool {
        false
    }
}

#[derive(Debug)]
struct Obj2(Arc<AtomicUsize>);

impl Drop for Obj2 {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

fn slow_pool(delay: Option<Duration>) -> (Pool<SlowMgr>, Arc<AtomicUsize>) {
    slow_pool_after(delay, 0)
}

/// A pool whose first `fast` creates finish at once.
fn slow_pool_after(delay: Option<Duration>, fast: usize) -> (Pool<SlowMgr>, Arc<AtomicUsize>) {
    let live = Arc::new(AtomicUsize::new(0));
    let mut config = PoolConfig::new(2);
    config.min_idle = 2;
    config.wait_timeout = Some(Duration::from_secs(2));
    config.create_timeout = None;
    let mgr = SlowMgr {
        delay,
        fast: AtomicUsize::new(fast),
        live: live.clone(),
    };
    (Pool::new(mgr, config), live)
}

/// The snippet: before the fix both slots stayed taken for the pool's
/// whole life and every later `get` timed out.
#[tokio::test(start_paused = true)]
async fn maintain_cancelled_mid_create_gives_its_slots_back() {
    let (pool, live) = slow_pool(Some(Duration::from_millis(300)));
    let cut = tokio::time::timeout(Duration::from_millis(50), pool.maintain()).await;
    assert!(cut.is_err(), "the pass must have been cut mid-create");
    let status = pool.status();
    assert_eq!((status.size, status.in_use), (0, 0), "{status:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let obj = tokio::time::timeout(Duration::from_secs(1), pool.get())
        .await
        .expect("get within a second")
        .expect("get");
    assert_eq!(pool.status().size, 1);
    drop(obj);
    drop(pool);
    assert_eq!(live.load(SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn maintain_cancelled_repeatedly_while_gets_run_keeps_the_pool_whole() {
    let (pool, live) = slow_pool(Some(Duration::from_millis(30)));
    for round in 0..20u64 {
        let gets: Vec<_> = (0..3u64)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let cut = Duration::from_millis(5 + (round * 7 + i * 11) % 60);
                    if let Ok(Ok(obj)) = tokio::time::timeout(cut, pool.get()).await {
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        drop(obj);
                    }
                })
            })
            .collect();
        let cut = Duration::from_millis((round * 13) % 45);
        let _ = tokio::time::timeout(cut, pool.maintain()).await;
        for g in gets {
            g.await.expect("get task");
        }
        let status = pool.status();
        assert_eq!(status.in_use, 0, "round {round}: {status:?}");
        assert_eq!(status.waiting, 0, "round {round}: {status:?}");
        assert_eq!(status.size, live.load(SeqCst), "round {round}: {status:?}");
    }
    let both = tokio::time::timeout(
        Duration::from_secs(1),
        futures_util::future::join(pool.get(), pool.get()),
    )
    .await
    .expect("two gets within a second");
    assert!(both.0.is_ok() && both.1.is_ok());
    assert_eq!(pool.status().size, 2);
}

/// The maintenance task's own pass is cancelled by `close`: a `create` that
/// never finishes does not keep the task (or the slots) alive.
#[tokio::test]
async fn close_cancels_a_maintenance_pass_stuck_in_create() {
    let (pool, live) = slow_pool(None);
    let task = pool.spawn_maintenance().expect("runtime");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.status().size < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "maintenance never started warming"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool.close();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the maintenance task ends on close")
        .expect("task");
    assert_eq!(pool.status().size, 0, "{:?}", pool.status());
    assert_eq!(live.load(SeqCst), 0);
}

/// DESIGN invariant 5, "at once": the last handle dropped while a maintenance
/// pass holds the shared state mid-`create` destroys the idle objects now,
/// not when that pass ends (here it never would), and the task ends. Fails
/// if the last-reference cleanup (`Drop for Handle`) is deleted.
#[tokio::test]
async fn last_handle_dropped_mid_maintenance_destroys_idle_objects_at_once() {
    let (pool, live) = slow_pool_after(None, 1);
    drop(pool.get().await.expect("the fast create"));
    assert_eq!((pool.status().idle, live.load(SeqCst)), (1, 1));
    let task = pool.spawn_maintenance().expect("runtime");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.status().size < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "maintenance never started warming"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(pool);
    assert_eq!(
        live.load(SeqCst),
        0,
        "the idle object outlived the last handle"
    );
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the maintenance task ends with the last handle")
        .expect("task");
}
