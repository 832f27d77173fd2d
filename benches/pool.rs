//! Pool overhead: uncontended get+return, and 4 tasks contending for 2 objects.
//!
//! `cargo bench --bench pool`. Goal: ≤ 200 ns for an uncontended get+return.

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

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
