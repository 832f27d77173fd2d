//! A thousand requests through a small pool that keeps losing its processes
//! (crashes, use limits, a pool dropped and rebuilt) leave nothing behind: no
//! zombie, no child, no open descriptor. Alone in its own test binary because
//! it compares process-wide counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/upstream.rs"]
mod upstream_support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stdiopool::accounting::{Accounting, child_processes, open_fd_count, zombie_children};
use stdiopool::jsonrpc::code;
use stdiopool::upstream::process::become_subreaper;
use upstream_support::*;

const REQUESTS: u64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_spawn_crash_recycle_cycles_leave_no_zombie_child_or_fd() {
    become_subreaper().unwrap();
    let acc = Arc::new(Accounting::new());
    // Warm up: tokio opens its signal and pidfd machinery on the first spawn.
    {
        let warm = pool(manager(&acc), 1, None);
        let conn = warm.get().await.unwrap();
        pid_via_tool(&conn).await;
    }
    assert!(wait_no_live(&acc).await);
    assert_eq!(acc.wait_for_stops(LIMIT).await, 0);
    let baseline = open_fd_count().unwrap();
    let spawned_before = acc.snapshot().spawned;

    let mut crashes = 0u64;
    let mut pool_handle = pool(manager(&acc), 2, Some(3));
    for i in 0..REQUESTS {
        if i % 250 == 249 {
            // Rebuild the pool: the old one's processes are stopped on drop.
            pool_handle = pool(manager(&acc), 2, Some(3));
        }
        let p = pool_handle.clone();
        let one = async move {
            let conn = p.get().await.unwrap();
            if i % 7 == 3 {
                let err = conn
                    .call(tool(i, "crash", json!({})), None)
                    .await
                    .unwrap_err();
                assert_eq!(err.error_object().code, code::UPSTREAM_CLOSED);
                true
            } else {
                let resp = conn
                    .call(tool(i, "echo", json!({"message": i.to_string()})), None)
                    .await
                    .unwrap();
                assert_eq!(text(&resp), i.to_string());
                false
            }
        };
        // Two requests at a time, so both slots of the pool are exercised.
        let p2 = pool_handle.clone();
        let other = async move {
            let conn = p2.get().await.unwrap();
            let resp = conn
                .call(tool("side", "echo", json!({"message": "side"})), None)
                .await
                .unwrap();
            assert_eq!(text(&resp), "side");
        };
        let (crashed, ()) = tokio::time::timeout(LIMIT, futures_util::future::join(one, other))
            .await
            .unwrap();
        crashes += u64::from(crashed);
    }
    drop(pool_handle);

    // Dropped connections count as pending stops from the moment they are
    // dropped, so once none is running every process has been reaped.
    assert_eq!(acc.wait_for_stops(LIMIT).await, 0, "stops still running");
    assert!(
        acc.live_pids().is_empty(),
        "live: {:?}",
        acc.live_children()
    );
    let snap = acc.snapshot();
    assert_eq!(snap.live, 0);
    assert_eq!(snap.exited_nonzero, crashes, "{snap:?}");
    // Each crash is followed by a replacement, counted as a restart, except
    // where its pool was dropped before it created one (4 rebuilds and the
    // final drop).
    assert!(snap.restarts <= crashes, "{snap:?}");
    assert!(snap.restarts + 5 >= crashes, "{snap:?}");
    // Use limits and crashes forced many spawns.
    assert!(snap.spawned - spawned_before > REQUESTS / 3, "{snap:?}");
    assert_eq!(zombie_children().unwrap(), Vec::<u32>::new());
    assert_eq!(child_processes().unwrap(), vec![]);

    // Descriptors are closed by drops on worker threads; allow them a moment.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut now = open_fd_count().unwrap();
    while now != baseline && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = open_fd_count().unwrap();
    }
    assert_eq!(now, baseline, "open fds before {baseline}, after {now}");
}
