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
