//! Pool overhead: uncontended get+return, 4 tasks contending for 2 objects,
//! and a storm of 10,000 queued `get`s cancelled (timed-out clients).
//!
//! `cargo bench --bench pool`. Goals: ≤ 200 ns for an uncontended get+return;
//! cancelling waiters costs O(log n) each under the lock, so 10,000 of them
//! take milliseconds, not the seconds an O(n) removal (n² in all) would.

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use stdiopool::pool::{Manager, ObjectMeta, Pool, PoolConfig};

#[derive(Debug, Clone, thiserror::Error)]
#[error("never")]
struct Never;

#[derive(Debug)]
struct Mgr;

impl Manager for Mgr {
    type Object = u64;
    type Error = Never;

    async fn create(&self) -> Result<u64, Never> {
        Ok(0)
    }

    async fn recycle(&self, obj: &mut u64, _meta: &ObjectMeta) -> Result<(), Never> {
        *obj += 1;
        Ok(())
    }

    fn is_broken(&self, _obj: &u64) -> bool {
        false
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}

fn uncontended(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("pool");
    for (name, timeouts) in [
        ("get_return_uncontended", true),
        ("get_return_uncontended_no_timeouts", false),
    ] {
        let mut config = PoolConfig::new(4);
        if !timeouts {
            config.recycle_timeout = None;
            config.wait_timeout = None;
        }
        let pool = Pool::new(Mgr, config);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                if let Ok(obj) = pool.get().await {
                    black_box(*obj);
                }
            })
        });
    }
    group.finish();
}

fn contended(c: &mut Criterion) {
    let rt = runtime();
    let pool = Pool::new(Mgr, PoolConfig::new(2));
    const PER_TASK: u64 = 1000;
    c.bench_function("pool/4_tasks_on_2_objects_per_get", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(4 * PER_TASK) {
                let start = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..4)
                        .map(|_| {
                            let pool = pool.clone();
                            tokio::spawn(async move {
                                for _ in 0..PER_TASK {
                                    if let Ok(obj) = pool.get().await {
                                        black_box(*obj);
                                        tokio::task::yield_now().await;
                                    }
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                });
                total += start.elapsed();
            }
            // Per get: the batches ran 4 × PER_TASK gets each.
            total.mul_f64(iters as f64 / (iters.div_ceil(4 * PER_TASK) * 4 * PER_TASK) as f64)
        })
    });
}

/// 10,000 `get`s queued behind the one object, then all dropped oldest first
/// (the order in which their wait timeouts would fire). Only the drops are
/// timed.
fn waiters_cancelling(c: &mut Criterion) {
    const WAITERS: usize = 10_000;
    let mut config = PoolConfig::new(1);
    config.wait_timeout = None;
    let pool = Pool::new(Mgr, config);
    let held = match futures_util::FutureExt::now_or_never(pool.get()) {
        Some(Ok(obj)) => obj,
        other => panic!("the first get is ready at once: {other:?}"),
    };
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut group = c.benchmark_group("pool");
    group.sample_size(10);
    group.bench_function("10000_waiters_cancelling", |b| {
        b.iter_batched(
            || {
                let mut queued = Vec::with_capacity(WAITERS);
                for _ in 0..WAITERS {
                    let mut get = Box::pin(pool.get());
                    assert!(get.as_mut().poll(&mut cx).is_pending(), "queued");
                    queued.push(get);
                }
                assert_eq!(pool.status().waiting, WAITERS);
                queued
            },
            drop,
            criterion::BatchSize::PerIteration,
        );
        assert_eq!(pool.status().waiting, 0);
    });
    group.finish();
    drop(held);
}

criterion_group!(benches, uncontended, contended, waiters_cancelling);
criterion_main!(benches);
