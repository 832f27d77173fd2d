//! The pool over real fixture processes: reuse, bounded concurrency with
//! every response matched to its request, and replacement of crashed or
//! untrustworthy processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/upstream.rs"]
mod upstream_support;

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use stdiopool::accounting::Accounting;
use stdiopool::jsonrpc::{Id, code};
use stdiopool::upstream::{CallError, UpstreamManager};
use upstream_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sequential_requests_on_a_pool_of_one_use_one_process() {
    let acc = Arc::new(Accounting::new());
    let pool = pool(manager(&acc), 1, None);
    let first_pid = {
        let conn = pool.get().await.unwrap();
        pid_via_tool(&conn).await
    };
    for i in 0..1000u64 {
        let conn = tokio::time::timeout(LIMIT, pool.get())
            .await
            .unwrap()
            .unwrap();
        let msg = format!("n{i}");
        let resp = tokio::time::timeout(
            LIMIT,
            conn.call(tool(i, "echo", json!({"message": msg})), None),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(resp["id"], json!(i));
        assert_eq!(text(&resp), msg);
    }
    let conn = pool.get().await.unwrap();
    assert_eq!(pid_via_tool(&conn).await, first_pid);
    drop(conn);
    assert_eq!(acc.snapshot().spawned, 1);
    drop(pool);
    assert!(wait_no_live(&acc).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_on_a_pool_of_four_each_get_their_own_answer() {
    let acc = Arc::new(Accounting::new());
    let pool = pool(manager(&acc), 4, None);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let pool = pool.clone();
        // Mixed id kinds, including ones no u64 counter could hold.
        let id = match i % 5 {
            0 => Id::from(i),
            1 => Id::from(format!("req-{i}")),
            2 => id_from_json(&format!("12345678901234567890123456789{i}")),
            3 => Id::from(-(i as i64)),
            _ => Id::from(i.to_string()),
        };
        tasks.spawn(async move {
            let conn = pool.get().await.unwrap();
            let msg = format!("message {i} for {id}");
            let resp = conn
                .call(tool(id.clone(), "echo", json!({"message": msg})), None)
                .await
                .unwrap();
            assert_eq!(resp["id"], id.to_value(), "{resp}");
            assert_eq!(
                serde_json::to_string(&resp["id"]).unwrap(),
                serde_json::to_string(&id).unwrap()
            );
            assert_eq!(text(&resp), msg);
            pid_via_tool(&conn).await
        });
    }
    let mut pids = HashSet::new();
    let all = async {
        while let Some(res) = tasks.join_next().await {
            pids.insert(res.unwrap());
        }
    };
    tokio::time::timeout(LIMIT, all).await.unwrap();
    assert!(pids.len() <= 4, "{pids:?}");
    assert!(acc.snapshot().spawned <= 4);
    assert!(pool.status().size <= 4);
    drop(pool);
    assert!(wait_no_live(&acc).await);
}

#[tokio::test]
async fn a_big_and_a_negative_id_round_trip_exactly() {
    let acc = Arc::new(Accounting::new());
    let pool = pool(manager(&acc), 1, None);
    let conn = pool.get().await.unwrap();
    for raw in ["123456789012345678901234567890", "-42", "0", "\"0\""] {
        let id = id_from_json(raw);
        let resp = tokio::time::timeout(
            LIMIT,
            conn.call(tool(id, "echo", json!({"message": raw})), None),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(serde_json::to_string(&resp["id"]).unwrap(), raw);
        assert_eq!(text(&resp), raw);
    }
}

#[tokio::test]
async fn after_a_crash_the_next_request_runs_on_a_fresh_process() {
    let acc = Arc::new(Accounting::new());
    let pool = pool(manager(&acc), 1, None);
    let old_pid = {
        let conn = pool.get().await.unwrap();
        let pid = pid_via_tool(&conn).await;
        let res = tokio::time::timeout(QUICK, conn.call(tool(1i64, "crash", json!({})), None))
            .await
            .expect("a crash must fail the request, not hang it");
        let err = res.unwrap_err();
        assert!(matches!(err, CallError::Closed(_)), "{err:?}");
        assert_eq!(err.error_object().code, code::UPSTREAM_CLOSED);
        pid
    };
    let conn = tokio::time::timeout(LIMIT, pool.get())
        .await
        .unwrap()
        .unwrap();
    let resp = conn
        .call(tool(2i64, "echo", json!({"message": "after"})), None)
        .await
        .unwrap();
    assert_eq!(text(&resp), "after");
    let new_pid = pid_via_tool(&conn).await;
    assert_ne!(new_pid, old_pid);
    assert!(wait_gone(old_pid).await);
    let snap = acc.snapshot();
    assert_eq!(snap.spawned, 2);
    assert_eq!(snap.restarts, 1);
    assert_eq!(snap.exited_nonzero, 1);
}

#[tokio::test]
async fn an_oversize_frame_gets_the_connection_replaced() {
    let acc = Arc::new(Accounting::new());
    let mut cfg = config(&acc, &[]);
    cfg.max_frame = 64 * 1024;
    let pool = pool(UpstreamManager::new(cfg), 1, None);
    let old_pid = {
        let conn = pool.get().await.unwrap();
        let pid = pid_via_tool(&conn).await;
        let err = tokio::time::timeout(
            QUICK,
            conn.call(tool(1i64, "huge", json!({"bytes": 100_000})), None),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(err.error_object().code, code::UPSTREAM_PROTOCOL_ERROR);
        pid
    };
    let conn = pool.get().await.unwrap();
    // Below the limit it works, on another process.
    let resp = conn
        .call(tool(2i64, "huge", json!({"bytes": 1000})), None)
        .await
        .unwrap();
    assert_eq!(text(&resp).len(), 1000);
    assert_ne!(pid_via_tool(&conn).await, old_pid);
    assert!(wait_gone(old_pid).await);
}

#[tokio::test]
async fn a_garbage_line_keeps_the_pooled_process() {
    let acc = Arc::new(Accounting::new());
    let pool = pool(manager(&acc), 1, None);
    let pid = {
        let conn = pool.get().await.unwrap();
        let resp = conn
            .call(tool(1i64, "garbage", json!({})), None)
            .await
            .unwrap();
        assert_eq!(text(&resp), "wrote a garbage line");
        pid_via_tool(&conn).await
    };
    let conn = pool.get().await.unwrap();
    assert_eq!(pid_via_tool(&conn).await, pid);
    assert_eq!(acc.snapshot().spawned, 1);
}

#[tokio::test]
async fn an_idle_connection_is_pinged_on_checkout() {
    let acc = Arc::new(Accounting::new());
    let mut cfg = config(&acc, &[]);
    cfg.ping_after_idle = std::time::Duration::ZERO;
    let pool = pool(UpstreamManager::new(cfg), 1, None);
    let pid = {
        let conn = pool.get().await.unwrap();
        pid_via_tool(&conn).await
    };
    for _ in 0..3 {
        let conn = pool.get().await.unwrap();
        // The checkout's ping counts as a use of the connection.
        assert!(conn.uses() >= 2);
        assert_eq!(pid_via_tool(&conn).await, pid);
    }
    assert_eq!(acc.snapshot().spawned, 1);
}
