//! Request round trip through the upstream pool against the real fixture
//! server: a warm pooled process versus spawn-per-request (`max_uses = 1`,
//! what the seed did on every call: spawn, `initialize`, call, stop).
//!
//! `cargo bench --bench upstream`. Goal: pooled ≥ 10× faster.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use stdiopool::accounting::Accounting;
use stdiopool::pool::{Backoff, Pool, PoolConfig};
use stdiopool::upstream::process::ProcessSpec;
use stdiopool::upstream::{OutgoingRequest, UpstreamConfig, UpstreamManager};

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

fn pool(max_uses: Option<u64>, accounting: &Arc<Accounting>) -> Pool<UpstreamManager> {
    let spec = ProcessSpec::new(env!("CARGO_BIN_EXE_stdiopool-fixture")).name("fixture");
    let manager = UpstreamManager::new(UpstreamConfig::new(spec, Arc::clone(accounting)));
    let mut config = PoolConfig::new(1);
    config.max_uses = max_uses;
    config.create_backoff = Backoff::NONE;
    Pool::new(manager, config)
}

/// One `tools/call echo` through the pool: check out, call, return.
async fn round_trip(pool: &Pool<UpstreamManager>, n: u64) {
    let conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => panic!("pool: {e}"),
    };
    let req = OutgoingRequest::new(
        n,
        "tools/call",
        Some(json!({"name": "echo", "arguments": {"message": "hello"}})),
    );
    match conn.call(req, None).await {
        Ok(resp) if resp["result"]["content"][0]["text"] == "hello" => {}
        other => panic!("bad answer: {other:?}"),
    }
}

fn echo_round_trip(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("upstream_echo");
    group.measurement_time(Duration::from_secs(5));
    for (name, max_uses) in [("pooled_warm", None), ("spawn_per_request", Some(1))] {
        let accounting = Arc::new(Accounting::new());
        let pool = {
            let _g = rt.enter();
            pool(max_uses, &accounting)
        };
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                n += 1;
                round_trip(&pool, n)
            });
        });
        rt.block_on(async {
            drop(pool);
            accounting.wait_for_stops(Duration::from_secs(20)).await;
        });
    }
    group.finish();
}

criterion_group!(benches, echo_round_trip);
criterion_main!(benches);
